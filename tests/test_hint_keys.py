"""The due-bucket hint keys: which key a bucket's hint goes to and which keys a sweep
takes, on a single server (16 group keys, one call) and on a cluster (one key per
primary node, from the client's slot map: one call per node).

The slot map here is a stand-in for redis-py's (the methods ``NodeHintKeys`` uses:
``nodes_manager.get_node_from_slot``, ``keyslot``, ``get_primaries``), so a reshard and
a failover are one assignment each; ``tests/test_sweeper.py`` runs the sweeps on the
real 3-primary cluster."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot
from redis.exceptions import SlotNotCoveredError

from luminora_redis.core.context import Context
from luminora_redis.core.keys import HINT_GROUPS, KeySpace
from luminora_redis.core.scripts import Batch, Call
from luminora_redis.core.settings import StoreSettings
from luminora_redis.io import hint_slots
from luminora_redis.io.hint_slots import NodeHintKeys
from luminora_redis.ops import scans

SLOTS = 16384


class Node:
    def __init__(self, name: str) -> None:
        self.name = name


class SlotMap:
    """A cluster client's slot map: slot -> primary name, and the primaries."""

    def __init__(self, ranges: dict[str, range]) -> None:
        self.owners: dict[int, str] = {slot: name for name, slots in ranges.items()
                                       for slot in slots}
        self.primaries = set(ranges)
        self.lookups = 0
        self.nodes_manager = self

    def get_node_from_slot(self, slot: int) -> Node:
        self.lookups += 1
        if slot not in self.owners:
            raise SlotNotCoveredError(f"slot {slot}")
        return Node(self.owners[slot])

    def keyslot(self, key: str) -> int:
        return key_slot(key.encode())

    def get_primaries(self) -> list[Node]:
        return [Node(name) for name in sorted(self.primaries)]


def three() -> SlotMap:
    return SlotMap({"a": range(0, 5461), "b": range(5461, 10923), "c": range(10923, SLOTS)})


def smallest_tag(owners: dict[int, str], name: str) -> int:
    return next(tag for tag in range(1 << 20)
                if owners.get(key_slot(f"h{tag:x}".encode())) == name)


KEYS = KeySpace("lr", 1024)


def test_each_node_has_one_key_the_smallest_tag_it_serves() -> None:
    client = three()
    hints = NodeHintKeys(client, KEYS)
    expected = {name: KEYS.hint_key(smallest_tag(client.owners, name)) for name in "abc"}
    assert sorted(hints.to_take()) == sorted(expected.values())
    for bucket in range(KEYS.buckets):
        owner = client.owners[key_slot(KEYS.tag(bucket).encode())]
        assert hints.of_bucket(bucket) == expected[owner], bucket
    # Every hint key lives on the node it stands for.
    for name, key in expected.items():
        assert client.owners[client.keyslot(key)] == name
    assert set(hints.retired()).isdisjoint(hints.to_take())
    assert set(KEYS.hints) - set(hints.to_take()) <= set(hints.retired())


def test_a_writers_lookup_is_a_few_dict_lookups() -> None:
    client = three()
    hints = NodeHintKeys(client, KEYS)
    hints.of_bucket(0)
    lookups = client.lookups
    for bucket in range(100):
        hints.of_bucket(bucket)
    # Its bucket's owner each time; the check of the tags (a few lookups) at most every
    # RECHECK_SECONDS.
    assert client.lookups - lookups <= 100 + 3 * 20


def test_a_reshard_moves_a_node_to_its_new_smallest_tag_and_retires_the_old(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hint_slots, "RECHECK_SECONDS", 0.0)
    client = three()
    hints = NodeHintKeys(client, KEYS)
    before = dict(zip("abc", (smallest_tag(client.owners, name) for name in "abc")))
    assert sorted(hints.to_take()) == sorted(KEYS.hint_key(tag) for tag in before.values())
    # The node with the largest tag takes over the slot of the others' smallest tags.
    last = max(before, key=lambda name: before[name])
    first = min(before.values())
    client.owners[key_slot(f"h{first:x}".encode())] = last
    after = {name: smallest_tag(client.owners, name) for name in "abc"}
    assert after[last] == first != before[last]
    assert sorted(hints.to_take()) == sorted(KEYS.hint_key(tag) for tag in after.values())
    moved = next(b for b in range(KEYS.buckets)
                 if client.owners[key_slot(KEYS.tag(b).encode())] == last)
    assert hints.of_bucket(moved) == KEYS.hint_key(first)
    assert KEYS.hint_key(before[last]) in hints.retired()


def test_a_writer_follows_a_reshard_within_the_recheck_interval() -> None:
    """Without a take in between (a writer's process): the smallest tag is checked again
    once RECHECK_SECONDS passed."""
    client = three()
    hints = NodeHintKeys(client, KEYS)
    tags = {name: smallest_tag(client.owners, name) for name in "abc"}
    last = max(tags, key=lambda name: tags[name])
    moved = next(b for b in range(KEYS.buckets)
                 if client.owners[key_slot(KEYS.tag(b).encode())] == last)
    assert hints.of_bucket(moved) == KEYS.hint_key(tags[last])
    client.owners[key_slot(f"h{min(tags.values()):x}".encode())] = last
    hints._checked -= hint_slots.RECHECK_SECONDS  # as if that much time passed
    assert hints.of_bucket(moved) == KEYS.hint_key(min(tags.values()))


def test_a_failover_keeps_the_keys() -> None:
    """A replica promoted serves the same slots under another name: the same tag."""
    client = three()
    hints = NodeHintKeys(client, KEYS)
    keys, retired = hints.to_take(), hints.retired()
    client.owners = {slot: "b2" if name == "b" else name for slot, name in client.owners.items()}
    client.primaries = {"a", "b2", "c"}
    assert hints.to_take() == keys and hints.retired() == retired


def test_a_primary_without_slots_has_no_key_and_an_unserved_slot_gets_its_group_key() -> None:
    client = SlotMap({"a": range(0, 8192), "b": range(8192, SLOTS - 1), "empty": range(0)})
    hints = NodeHintKeys(client, KEYS)
    assert len(hints.to_take()) == 2
    unserved = [b for b in range(KEYS.buckets)
                if key_slot(KEYS.tag(b).encode()) == SLOTS - 1]
    for bucket in unserved:
        assert hints.of_bucket(bucket) == KEYS.hint(bucket)


def test_a_node_with_one_slot_finds_its_tag() -> None:
    lone = 12345
    client = SlotMap({"a": range(0, lone), "b": range(lone + 1, SLOTS), "c": range(lone, lone + 1)})
    hints = NodeHintKeys(client, KEYS)
    assert KEYS.hint_key(smallest_tag(client.owners, "c")) in hints.to_take()
    assert len(hints.to_take()) == 3


# -- the operations, on a context whose hint keys are given -------------------------------


class TwoNodes:
    """Even buckets on one node's key, odd ones on the other's; one key left behind."""

    def __init__(self, keys: KeySpace) -> None:
        self.keys = keys

    def of_bucket(self, bucket: int) -> str:
        return self.keys.hint_key(bucket % 2)

    def to_take(self) -> tuple[str, ...]:
        return self.keys.hint_key(0), self.keys.hint_key(1)

    def retired(self) -> tuple[str, ...]:
        return (self.keys.hint_key(7),)


CLUSTER = Context(StoreSettings(), 1024, cluster=True, hints=TwoNodes)
SINGLE = Context(StoreSettings(), 1024)


def run(op: Any, *replies: Any) -> tuple[list[Any], Any]:
    steps = [next(op)]
    try:
        for reply in replies:
            steps.append(op.send(reply))
    except StopIteration as done:
        return steps, done.value
    raise AssertionError("the operation asked more")


def test_a_cluster_take_is_one_call_per_node_key() -> None:
    steps, due = run(scans.take_hints(CLUSTER), [[1000, 1500, 1, 4], [1001, 1200, 2, 3, 5]])
    assert steps == [Batch([Call("take_hints", (CLUSTER.keys.hint_key(0),), (1024, 0, 0)),
                            Call("take_hints", (CLUSTER.keys.hint_key(1),), (1024, 0, 0))])]
    assert due == scans.DueBuckets([3, 4, 5], 1001, 1200)


def test_a_single_server_take_is_one_call_over_the_group_keys() -> None:
    steps, _ = run(scans.take_hints(SINGLE), [[1000, -1, 0]])
    assert steps == [Batch([Call("take_hints", SINGLE.keys.hints, (1024, 0, 0))])]
    assert len(SINGLE.keys.hints) == HINT_GROUPS


def test_a_put_back_is_one_call_per_node_key() -> None:
    steps, _ = run(scans.lower_hints(CLUSTER, {1: 10, 2: 20, 3: 30, 4: 40}), [1, 1])
    assert steps == [Batch([Call("lower_hints", (CLUSTER.keys.hint_key(1),), ("abs", 10, 1, 30, 3)),
                            Call("lower_hints", (CLUSTER.keys.hint_key(0),), ("abs", 20, 2, 40, 4))])]


def test_a_cluster_writer_lowers_the_hint_of_its_buckets_node_in_the_same_round_trip() -> None:
    create = Call("create_session", ("k",), ("a",))
    steps, reply = run(scans.create_hinted(CLUSTER, create, 5, 60_000), ["sid", 1])
    assert steps == [Batch([create, Call("lower_hints", (CLUSTER.keys.hint_key(1),),
                                         ("rel", 60_000 - scans.HINT_MARGIN_MS, 5))])]
    assert reply == "sid"


def test_a_full_sweeps_scan_takes_the_retired_keys_in_its_round_trip_and_no_other_does() -> None:
    """Only the sweeper's full scan (every bucket, the auto_cleanup index) writes: a
    partial one, and get_expired_sessions' (the manual index too), stay reads."""
    idle = [[1000, -1]] * 1024
    steps, scan = run(scans.scan_due(CLUSTER, None), [*idle, [1000, -1, 1, 2]])
    calls = steps[0].calls
    assert len(calls) == 1025 and calls[-1] == Call("take_hints", (CLUSTER.keys.hint_key(7),),
                                                    (1024, 0, 0))
    assert scan.session_ids == [] and scan.next_deadlines == {}
    steps, _ = run(scans.scan_due(CLUSTER, range(1023)), [[1000, -1]] * 1023)
    assert all(call.script == "due_sessions" for call in steps[0].calls)
    steps, _ = run(scans.scan_due(CLUSTER, None, manual=True), [[1000, -1]] * 2048)
    assert all(call.script == "due_sessions" for call in steps[0].calls)


# -- a real reshard ------------------------------------------------------------------------


def _move_empty_slot(cluster: Any, slot: int, target: int) -> None:
    """Give an empty slot to primary ``target`` (an index into ``primaries()``), on every
    node, as ``redis-cli --cluster reshard`` ends a move."""
    nodes = cluster.primaries()
    clients = [node.client() for node in nodes]
    try:
        ids = [client.execute_command("CLUSTER", "MYID").decode() for client in clients]
        port = next(row[2][1] for row in clients[0].execute_command("CLUSTER", "SLOTS")
                    if int(row[0]) <= slot <= int(row[1]))
        source = next(n for n, node in enumerate(nodes) if node.port == port)
        assert source != target and clients[source].execute_command(
            "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        clients[target].execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        clients[source].execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        for n in (target, source, *(n for n in range(len(nodes)) if n not in (source, target))):
            clients[n].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
    finally:
        for client in clients:
            client.close()


@pytest.mark.cluster
@pytest.mark.slow
async def test_after_a_reshard_the_sweep_takes_the_new_keys_and_archives_through_them() -> None:
    """The slot of one node's tag (``{h0}``) moves to another node. The store's client
    learns the new map (MOVED), its hint keys follow it (the new owner's smallest tag
    is now 0, the old owner's a larger one), a take stays one call per node, and
    sessions created afterwards by a fresh client are archived through their hints,
    with no full sweep after the start."""
    from luminora_redis import SessionStore
    from luminora_redis.listener.expiry_listener import ExpiryListener
    from luminora_redis.testing import LocalCluster

    from conftest import until
    from listener_support import MIN_TTL, create_sessions, running

    with LocalCluster(primaries=3) as cluster:
        store = SessionStore.from_url(cluster.url, cluster=True)
        try:
            ctx = await store.context()
            hints = ctx.hints
            assert ctx.keys.hint_key(0) in hints.to_take()
            ports = [node.port for node in cluster.primaries()]
            slot = key_slot(b"h0")
            old = next(n for n, port in enumerate(ports)
                       if store.client.nodes_manager.get_node_from_slot(slot).port == port)
            target = (old + 1) % len(ports)
            _move_empty_slot(cluster, slot, target)
            listener = ExpiryListener(store, notifications=False, sweep_interval=0.05,
                                      full_sweep_interval=3600)
            async with running(listener):
                await until(lambda: listener._sweeper.full_sweeps == 1)
                # The takes of {h0} on its old node meet MOVED; the client maps again.
                await until(lambda: store.client.nodes_manager.get_node_from_slot(slot).port
                            == ports[target], timeout=30)
                keys = hints.to_take()
                assert len(keys) == 3 and ctx.keys.hint_key(0) in keys
                owners = {store.client.nodes_manager.get_node_from_slot(
                    store.client.keyslot(key)).port for key in keys}
                assert owners == set(ports), "one key on each node"
                assert hints.of_bucket(next(
                    b for b in range(ctx.keys.buckets)
                    if store.client.nodes_manager.get_node_from_slot(
                        key_slot(ctx.keys.tag(b).encode())).port == ports[target])
                ) == ctx.keys.hint_key(0)
                archived = listener.archived
                owned = await create_sessions(store, 12, 12, [MIN_TTL] * 12)
                assert any(hints.of_bucket(int(sid[:4], 16)) == ctx.keys.hint_key(0)
                           for sid in owned), "some in a bucket of the new owner"
                await until(lambda: listener.archived == archived + 12, timeout=60)
                assert listener._sweeper.full_sweeps == 1, "through the hints"
            found = [c.session_id for user in set(owned.values())
                     for c in await store.get_archived_conversations(user)]
            assert sorted(owned) == sorted(found)
        finally:
            await store.aclose()
