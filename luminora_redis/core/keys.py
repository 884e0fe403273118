"""The key layout: every Redis key luminora-redis reads or writes, and why it exists.

A user maps to one of N buckets (BLAKE2b of the user id, modulo N; N is
recorded in ``<prefix>:layout``). The bucket is the hash tag, so one user's
keys and the keys of that user's sessions share one hash slot, every script
is single-slot on Redis Cluster, and the sweeper walks N small indexes instead
of the keyspace. A session id starts with its bucket (``0417-<32 hex>``), so
an id alone routes to its slot. User ids are percent-encoded into keys, so no
id can contain ``{``, ``}`` or ``:`` there, and two ids never share a key.

Per session (``b`` = bucket in hex, e.g. ``{b0417}``)::

    lr:{b}:s:<sid>          HASH   user, pers, created, abs, idle, last, auto, mood.
                                   PEXPIREAT min(last + idle, abs): its existence is liveness.
    lr:{b}:s:<sid>:m        HASH   user, pers, created, abs, auto, idle: what archiving needs
                                   after the session hash is gone; segs, base: how many
                                   segments the session has and how many messages they
                                   hold; mood: a copy of the session's, for its archive
                                   record. Deleted when archived.
    lr:{b}:s:<sid>:h        LIST   live history, msgpack messages, at most max_history.
    lr:{b}:s:<sid>:o        LIST   older messages moved out of the live history. Once it
                                   holds max_overflow messages it is RENAMEd (O(1)) to the
                                   session's next segment (a:<sid>:g:<n>, below).

Per bucket::

    lr:{b}:deadlines        ZSET   sid -> a lower bound of the effective deadline ms,
                                   auto_cleanup sessions: create_session writes the first
                                   deadline; chat turns slide the deadline (which never
                                   decreases) without rewriting it; whoever finds the
                                   entry due while the session is live raises it to the
                                   real expiry (read_meta, archive_session). The sweeper's
                                   guarantee and get_expired_sessions.
    lr:{b}:manual           ZSET   the same for auto_cleanup=False sessions, which only
                                   cleanup_expired_sessions archives.
    lr:{b}:outbox           ZSET   sid -> ms when its delivery to on_archived may next be
                                   attempted; written by the archive script itself.
    lr:{b}:outbox:d         HASH   sid -> msgpack delivery body (user, sid, attempts,
                                   created ms, ended ms, reason). Kept while pending or dead.
    lr:{b}:outbox:dead      ZSET   sid -> ms quarantined: deliveries that failed max attempts.
    lr:{b}:failures         HASH   sid -> how often archiving it failed in a sweep.
    lr:{b}:quarantine       ZSET   sid -> ms quarantined: index entries that failed too
                                   often; out of the deadline index, their keys kept.

Per user (none of these ever gets a TTL)::

    lr:{b}:u:<uid>              HASH  first_seen, last_seen, evolution_seq, archive_seq
    lr:{b}:u:<uid>:sessions     ZSET  sid -> created ms, sessions not yet archived
    lr:{b}:u:<uid>:affinity     HASH  personality -> points
    lr:{b}:u:<uid>:facts        HASH  msgpack [category, key] -> fact
    lr:{b}:u:<uid>:episodes     ZSET  episode id -> importance
    lr:{b}:u:<uid>:episodes:b   HASH  episode id -> episode
    lr:{b}:u:<uid>:evolution    ZSET  msgpack record -> sequence number (the record holds
                                      the time; a sequence orders records of one millisecond)
    lr:{b}:u:<uid>:archive      ZSET  sid -> end time ms * 1000 + archive_seq mod 1000
    lr:{b}:u:<uid>:a:<sid>      HASH  pers, created, ended, reason, count, segs, nonce, mood;
                                      zstd: how many units (below) are zstd frames
    lr:{b}:u:<uid>:a:<sid>:g:<n> LIST segment n (1, 2, ...) of a session's conversation:
                                      an overflow list RENAMEd here while the session was
                                      live, so a long session's keys stay bounded. Its
                                      oldest messages: a conversation reads segments 1..segs,
                                      then the overflow, then the history. Archived with
                                      the session (the record copies segs), deleted by
                                      delete_session.
    lr:{b}:u:<uid>:a:<sid>:h    LIST  the archived live history (RENAMEd, O(1))
    lr:{b}:u:<uid>:a:<sid>:o    LIST  the archived overflow (RENAMEd, O(1))

An archived conversation's units are its segments 1..segs, then its tail (the
overflow, then the history). Right after archiving, compaction replaces each
unit, in order, by one zstd frame under the same name (``compaction``): a
segment key becomes a STRING, the tail's frame goes to the ``:h`` key (a
STRING) and ``:o`` is deleted; an empty unit has no key. The record's zstd
field counts the units done, so the type of each key follows from the record,
and no key is added: whatever deletes the lists deletes the frames.

Per prefix::

    lr:layout                   HASH  buckets: the bucket count, fixed on first use;
                                      version: the layout version (none recorded = 1)
    lr:listeners                ZSET  listener name -> ms (server clock) until which it
                                      counts as alive; refreshed while it runs
    lr:deliverers               ZSET  the same, of the listeners with an on_archived hook
    lr:sweeper                  STRING the id of the listener that runs the periodic
                                      full sweeps, with a TTL of one lease; renewed by it
    lr:deliverer                STRING the same, of the listener with a hook that runs
                                      the periodic full outbox scans
    lr:{h<g>}:due               ZSET  bucket number -> a lower bound (ms, server clock) of
                                      the earliest score in that bucket's deadline index,
                                      on a single server for the buckets of group g
                                      (bucket mod 16; all 16 read in one call). Writers
                                      that add a deadline lower it (ZADD LT); the sweeper
                                      takes the due entries and puts back each bucket's
                                      next score, so a sweep reads only the buckets with
                                      something due. A hint, not the truth: a lost entry
                                      is restored by the next full sweep
                                      (``luminora_redis.listener.sweeper``).
    lr:{h<t>}:due               ZSET  the same on a cluster, one key per primary node: t
                                      (hex) is the smallest integer whose tag's slot the
                                      node serves, and the key holds the buckets that node
                                      serves, so a sweep takes one key per node in one
                                      call (``luminora_redis.io.hint_slots``). Keys a
                                      reshard left behind (and the group keys) empty at
                                      full sweeps as their entries pass.

The LuminoraCore adapter adds its own keys beside these (alias records of
caller-chosen session ids, and the fields LuminoraCore stores beyond our
models): see ``luminora_redis.compat.lc_aliases``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import NamedTuple, Protocol
from urllib.parse import quote

__all__ = ["HINT_GROUPS", "BucketKeys", "GroupHintKeys", "HintKeys", "KeySpace", "SessionKeys",
           "UserKeys"]

#: How many due-bucket hint keys a prefix has on a single server
#: (``<prefix>:{h<g>}:due``, g = bucket mod this), all read in one call; a cluster store
#: has one per primary node instead (`HintKeys`).
HINT_GROUPS = 16

_SESSION_ID = re.compile(r"([0-9a-f]{4})-[0-9a-f]{32}")


class HintKeys(Protocol):
    """Which due-bucket hint keys a store writes and reads (``Context.hints``).

    A single server has the `HINT_GROUPS` group keys (`GroupHintKeys`), read in one
    script call. A cluster store has one key per primary node, filled from its
    client's slot map by the io layer (``luminora_redis.io.hint_slots``), so a sweep
    takes one key per node and a writer's hint lands on the node of its bucket."""

    def of_bucket(self, bucket: int) -> str:
        """The hint key that holds ``bucket``'s earliest deadline (a lower bound)."""
        ...

    def to_take(self) -> tuple[str, ...]:
        """Every hint key the sweeper takes, at most one per node."""
        ...

    def retired(self) -> tuple[str, ...]:
        """Hint keys this layout may have written before and reads no more (a cluster's
        earlier node keys, the group keys of the 16-key layout), for a full sweep to
        empty: it scans every bucket anyway."""
        ...


class GroupHintKeys:
    """The `HINT_GROUPS` group keys: bucket b's hint in ``<prefix>:{h<b mod 16>}:due``."""

    __slots__ = ("_keys",)

    def __init__(self, keys: KeySpace) -> None:
        self._keys = keys

    def of_bucket(self, bucket: int) -> str:
        return self._keys.hint(bucket)

    def to_take(self) -> tuple[str, ...]:
        return self._keys.hints

    def retired(self) -> tuple[str, ...]:
        return ()


class SessionKeys(NamedTuple):
    """The keys of one session and of its bucket."""

    session: str
    meta: str
    history: str
    overflow: str
    deadlines: str
    manual: str

    @property
    def summary(self) -> str:
        """The running summary hash (``set_summary``): lr:{b}:s:<sid>:sum."""
        return f"{self.session}:sum"


class BucketKeys(NamedTuple):
    """The per-bucket keys of deliveries and quarantined sweep entries."""

    outbox: str
    bodies: str
    dead: str
    failures: str
    quarantine: str
    deadlines: str
    manual: str


class UserKeys(NamedTuple):
    """The keys of one user."""

    user: str
    sessions: str
    affinity: str
    facts: str
    episodes: str
    episode_bodies: str
    evolution: str
    archive: str
    archived_prefix: str

    def archived(self, session_id: str) -> tuple[str, str, str]:
        """Record, history and overflow keys of one archived conversation."""
        record = f"{self.archived_prefix}{session_id}"
        return record, f"{record}:h", f"{record}:o"

    def segment(self, session_id: str, number: int) -> str:
        """Segment ``number`` (from 1) of a session's conversation, live or archived."""
        return f"{self.archived_prefix}{session_id}:g:{number}"

    def segments(self, session_id: str, count: int) -> list[str]:
        """Segments 1..count of a session's conversation, oldest first."""
        return [self.segment(session_id, number) for number in range(1, count + 1)]


class KeySpace:
    """Builds every key from a prefix and a bucket count; pure and cheap."""

    __slots__ = ("buckets", "deliverer", "deliverers", "hints", "layout", "listeners",
                 "prefix", "sweeper")

    def __init__(self, prefix: str, buckets: int) -> None:
        self.prefix = prefix
        self.buckets = buckets
        self.layout = f"{prefix}:layout"
        self.listeners = f"{prefix}:listeners"
        self.deliverers = f"{prefix}:deliverers"
        self.sweeper = f"{prefix}:sweeper"
        self.deliverer = f"{prefix}:deliverer"
        #: The due-bucket hint keys, group g at index g (see `hint`).
        self.hints = tuple(self.hint_key(group) for group in range(HINT_GROUPS))

    def hint(self, bucket: int) -> str:
        """The group hint key that holds ``bucket``'s earliest deadline (a lower bound) on
        a single server; a cluster store's context says which key instead
        (``Context.hints``, `HintKeys`)."""
        return self.hints[bucket % HINT_GROUPS]

    def hint_key(self, tag: int) -> str:
        """The due-bucket hint key with hash tag ``{h<tag in hex>}``."""
        return f"{self.prefix}:{{h{tag:x}}}:due"

    def tag(self, bucket: int) -> str:
        """The hash-tagged key prefix of one bucket."""
        return f"{self.prefix}:{{b{bucket:04x}}}"

    def bucket_of_user(self, user_id: str) -> int:
        """The bucket of a user: stable across processes, hosts and versions."""
        digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.buckets

    def new_session_id(self, user_id: str) -> str:
        """A fresh session id in the user's bucket, with 128 random bits."""
        return f"{self.bucket_of_user(user_id):04x}-{secrets.token_hex(16)}"

    def bucket_of_session(self, session_id: object) -> int | None:
        """The bucket a session id routes to, or None when it is not one of ours."""
        if not isinstance(session_id, str):
            return None
        match = _SESSION_ID.fullmatch(session_id)
        if match is None:
            return None
        bucket = int(match.group(1), 16)
        return bucket if bucket < self.buckets else None

    def session(self, session_id: str, bucket: int) -> SessionKeys:
        tag = self.tag(bucket)
        base = f"{tag}:s:{session_id}"
        return SessionKeys(base, f"{base}:m", f"{base}:h", f"{base}:o",
                           f"{tag}:deadlines", f"{tag}:manual")

    def index(self, bucket: int) -> tuple[str, str]:
        """The deadline and manual indexes of one bucket."""
        tag = self.tag(bucket)
        return f"{tag}:deadlines", f"{tag}:manual"

    def bucket(self, bucket: int) -> BucketKeys:
        """The outbox, quarantine and index keys of one bucket."""
        tag = self.tag(bucket)
        return BucketKeys(f"{tag}:outbox", f"{tag}:outbox:d", f"{tag}:outbox:dead",
                          f"{tag}:failures", f"{tag}:quarantine", f"{tag}:deadlines",
                          f"{tag}:manual")

    def user(self, user_id: str) -> UserKeys:
        base = f"{self.tag(self.bucket_of_user(user_id))}:u:{quote(user_id, safe='')}"
        return UserKeys(base, f"{base}:sessions", f"{base}:affinity", f"{base}:facts",
                        f"{base}:episodes", f"{base}:episodes:b", f"{base}:evolution",
                        f"{base}:archive", f"{base}:a:")

    def session_id_of_key(self, key: str) -> str | None:
        """The session id of a session hash key (as named in an ``expired`` event), else None."""
        head = f"{self.prefix}:{{b"
        if not key.startswith(head):
            return None
        rest = key[len(head):]
        # {bXXXX}:s:<sid>, and the sid's own bucket must match the tag.
        if len(rest) < 8 or rest[4:8] != "}:s:":
            return None
        session_id = rest[8:]
        bucket = self.bucket_of_session(session_id)
        if bucket is None or f"{bucket:04x}" != rest[:4]:
            return None
        return session_id
