"""The due-bucket hint keys of a cluster store: one per primary node, from the slot map.

A script may declare keys of one slot only, so on a cluster the 16 group keys
of a single server (``<prefix>:{h<g>}:due``) would cost a sweep one
``take_hints`` call per key, about 5 per node. Instead each primary node N has
one hint key, ``<prefix>:{h<t>}:due`` with t the smallest integer (in hex) whose
tag ``h<t>`` hashes to a slot N serves; a bucket's hint goes to the key of the
node serving the bucket's slot. So a sweep takes one key per node (one call per
node per interval), and a writer's hint lands on the node its ``create_session``
ran on, in the same pipeline.

Every process computes the same keys from the same slot map (redis-py's cluster
client keeps it: ``keyslot``, ``get_primaries`` and, through
``redis_internals.slot_primary``, ``nodes_manager.get_node_from_slot``). A
failover keeps them (the new primary serves the same slots, so it gets the same
tag). A reshard can change them, and while two processes' maps disagree a
writer's hint may land in a key the sweeper does not take: that hint is lost,
and the next full sweep (every bucket) archives what it was for and puts every
bucket's hint back into the current keys. A key a
reshard (or the 16-key layout of earlier versions) left behind holds at most
one entry per bucket; a full sweep takes the passed entries of every such key
it knows (``HintKeys.retired``: tags 0 up to the largest in use, at least 15,
and every tag this process used), so those keys empty as their entries pass. A
tag above that range that only an earlier process used is not known here: its
key stays, bounded by the bucket count.

The mapping is memoized and checked against the slot map: a take (once per
interval) looks up the owners of tags 0 up to the largest one in use (a few
lookups with a handful of nodes) and the set of primaries, and maps again when
one of them changed; a writer's lookup (every ``create_session`` on a cluster)
looks up its bucket's owner and does that check at most every
`RECHECK_SECONDS`, so a reshard's new tags reach it within that much of its
client's slot map.
"""

from __future__ import annotations

import time
from typing import Any

from luminora_redis.core.keys import HINT_GROUPS, KeySpace
from luminora_redis.io.redis_internals import slot_primary

__all__ = ["MAX_TAG", "RECHECK_SECONDS", "NodeHintKeys"]

#: How often, at most, a writer's lookup checks the tags against the slot map.
RECHECK_SECONDS = 0.05

#: The largest tag searched for a node: far beyond what it takes to reach every one of
#: the 16,384 slots, so a node serving even one slot finds its tag.
MAX_TAG = 1 << 20
_SLOTS = 16384


class NodeHintKeys:
    """`HintKeys <luminora_redis.core.keys.HintKeys>` of a cluster store, from its
    client's slot map (asyncio and blocking cluster clients alike)."""

    __slots__ = ("_bucket_slots", "_checked", "_client", "_keys", "_owners", "_primaries",
                 "_tag_slots", "_tags", "_used")

    def __init__(self, client: Any, keys: KeySpace) -> None:
        self._client = client
        self._keys = keys
        self._tag_slots: list[int] = []  # slot of tag t, at index t
        self._bucket_slots: dict[int, int] = {}
        self._owners: list[str | None] = []  # owner of each tag's slot, tags 0..max in use
        self._tags: dict[str, int] = {}  # primary node name -> its tag
        self._primaries: frozenset[str] = frozenset()
        self._used: set[int] = set()  # every tag this process has used
        self._checked = -RECHECK_SECONDS  # time.monotonic() of the last check

    def of_bucket(self, bucket: int) -> str:
        if time.monotonic() - self._checked >= RECHECK_SECONDS:
            self._check(primaries=False)
        slot = self._bucket_slots.get(bucket)
        if slot is None:
            slot = self._bucket_slots[bucket] = self._client.keyslot(self._keys.tag(bucket))
        tag = self._tags.get(self._owner(slot) or "")
        if tag is None:  # a slot map that changed beyond the tags checked, or a hole in it
            self._map()
            tag = self._tags.get(self._owner(slot) or "")
        # A slot no node serves: no node to sweep it either; the group key stands in, and
        # a full sweep finds the bucket once a node serves it.
        return self._keys.hint(bucket) if tag is None else self._keys.hint_key(tag)

    def to_take(self) -> tuple[str, ...]:
        self._check(primaries=True)
        return tuple(self._keys.hint_key(tag) for tag in sorted(self._tags.values()))

    def retired(self) -> tuple[str, ...]:
        self._check(primaries=True)
        current = set(self._tags.values())
        known = self._used.union(range(max(HINT_GROUPS, len(self._owners))))
        return tuple(self._keys.hint_key(tag) for tag in sorted(known - current))

    def _owner(self, slot: int) -> str | None:
        """The name of the primary serving ``slot`` in the client's map; None: none does."""
        return slot_primary(self._client, slot)

    def _slot_of_tag(self, tag: int) -> int:
        slots = self._tag_slots
        if tag >= len(slots):
            # Grown into a new list, not appended to: the blocking store's threads share
            # it, and each of them must find the slot of tag t at index t.
            more = range(len(slots), max(tag + 1, 2 * len(slots)))
            slots = self._tag_slots = [*slots, *(self._client.keyslot(self._keys.hint_key(t))
                                                 for t in more)]
        return slots[tag]

    def _check(self, *, primaries: bool) -> None:
        """Map again when a checked tag's slot changed owner (or, with ``primaries``, when
        the set of primaries changed): the tags would no longer be the smallest."""
        self._checked = time.monotonic()
        stale = not self._owners or any(self._owner(self._slot_of_tag(tag)) != owner
                                        for tag, owner in enumerate(self._owners))
        if not stale and primaries:
            stale = frozenset(node.name for node in self._client.get_primaries()) != self._primaries
        if stale:
            self._map()

    def _map(self) -> None:
        """Give each primary that serves a slot its tag: the smallest whose slot it serves."""
        self._primaries = frozenset(node.name for node in self._client.get_primaries())
        serving = {owner for slot in range(_SLOTS) if (owner := self._owner(slot)) is not None}
        tags: dict[str, int] = {}
        owners: list[str | None] = []
        for tag in range(MAX_TAG):
            if len(tags) == len(serving):
                break
            owner = self._owner(self._slot_of_tag(tag))
            owners.append(owner)
            if owner is not None and owner not in tags:
                tags[owner] = tag
        self._tags, self._owners = tags, owners
        self._used.update(tags.values())
