"""What every operation needs to know: the key layout and the store settings."""

from __future__ import annotations

from collections.abc import Callable

from luminora_redis.core.errors import InvalidInput
from luminora_redis.core.keys import GroupHintKeys, HintKeys, KeySpace, SessionKeys, UserKeys
from luminora_redis.core.settings import StoreSettings
from luminora_redis.core.validation import check_name

__all__ = ["Context"]

# Sessions whose keys are remembered: a chat turn derives them without a regex or
# f-strings. About 1 KiB each; the cache starts over when full.
_CACHED_SESSIONS = 10_000
#: The largest count a caller may pass (a signed 64-bit integer, as Redis takes counts).
MAX_COUNT = (1 << 63) - 1


class Context:
    """The key layout and settings one store's operations share; immutable once built.
    ``cluster``: the store talks to a Redis Cluster. ``hints`` makes the due-bucket
    hint keys from the key space (a cluster store's follow its client's slot map);
    None: the 16 group keys (``GroupHintKeys``)."""

    __slots__ = ("_session_keys", "cluster", "hints", "keys", "settings", "turn_page")

    def __init__(self, settings: StoreSettings, buckets: int, cluster: bool = False,
                 hints: Callable[[KeySpace], HintKeys] | None = None) -> None:
        self.settings = settings
        #: The most messages a chat turn returns in its own reply (more are paged).
        self.turn_page = min(settings.page_size, settings.max_history)
        self.keys = KeySpace(settings.prefix, buckets)
        self.cluster = cluster
        #: Which due-bucket hint keys a bucket's hint goes to and a sweep takes.
        self.hints: HintKeys = GroupHintKeys(self.keys) if hints is None else hints(self.keys)
        self._session_keys: dict[str, SessionKeys] = {}

    @property
    def scan_scripts(self) -> bool:
        """Whether one script may read many buckets at once: on a single server (a
        cluster refuses a script's declared keys of several slots)."""
        return not self.cluster

    def session_keys(self, session_id: object) -> SessionKeys | None:
        """The keys of a session, or None when the id is not a session id of this layout.

        A malformed id never becomes a key: it is treated as a session that
        does not exist, without asking Redis. An id that is not a string at all is
        the caller's mistake: InvalidInput.
        """
        cached = self._session_keys.get(session_id) if isinstance(session_id, str) else None
        if cached is not None:
            return cached
        bucket = self.keys.bucket_of_session(session_id)
        if bucket is None:
            if not isinstance(session_id, str):
                raise InvalidInput(f"a session id must be a string, not {type(session_id).__name__}")
            return None
        assert isinstance(session_id, str)
        keys = self.keys.session(session_id, bucket)
        if len(self._session_keys) >= _CACHED_SESSIONS:
            self._session_keys.clear()  # cheaper than LRU bookkeeping on every turn
        self._session_keys[session_id] = keys
        return keys

    def user_id(self, user_id: object) -> str:
        return check_name(user_id, "user_id", self.settings.max_id_bytes)

    def name(self, value: object, what: str) -> str:
        return check_name(value, what, self.settings.max_id_bytes)

    def user_keys(self, user_id: object) -> UserKeys:
        return self.keys.user(self.user_id(user_id))

    def limit(self, value: object, what: str = "limit") -> int:
        """A caller's optional count as a script argument: -1 for None (all)."""
        if value is None:
            return -1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise InvalidInput(f"{what} must be a non-negative 64-bit integer or None, "
                               f"not {value!r:.60}")
        return value

    def capped(self, value: object, cap: int, what: str = "limit") -> int:
        """A caller's optional count for a read with a cap: None (no limit of the
        caller's) is the cap, and a larger count is clipped to it."""
        count = self.limit(value, what)
        return cap if count < 0 else min(count, cap)

    def count(self, value: object, what: str) -> int:
        """A caller's count that has no "all" (None): an integer from 0 to ``MAX_COUNT``."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
            raise InvalidInput(f"{what} must be a non-negative 64-bit integer, not {value!r:.60}")
        return value
