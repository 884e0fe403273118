"""Store settings and per-session configuration, validated before use."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from luminora_redis.errors import InvalidInput

__all__ = [
    "DEFAULT_AFFINITY_LEVELS",
    "DEFAULT_BUCKETS",
    "SessionConfig",
    "StoreSettings",
    "parse_session_config",
]

DEFAULT_BUCKETS = 1024
DEFAULT_AFFINITY_LEVELS: tuple[tuple[str, int], ...] = (
    ("stranger", 0),
    ("acquaintance", 25),
    ("friend", 50),
)
_TEN_YEARS = 10 * 365 * 24 * 3600.0

Seconds = Annotated[float, Field(gt=0, le=_TEN_YEARS, allow_inf_nan=False, strict=True)]


class SessionConfig(BaseModel):
    """How long one session lives.

    ``ttl`` is the absolute lifetime and ``max_idle`` the sliding idle timeout,
    both in seconds (floats allowed). ``max_idle`` may exceed ``ttl``: the
    absolute deadline then binds. With ``auto_cleanup`` off, an expired session
    is not archived automatically; ``cleanup_expired_sessions`` archives it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: Seconds = 3600.0
    max_idle: Seconds = 1800.0
    auto_cleanup: StrictBool = True

    @property
    def ttl_ms(self) -> int:
        return max(1, math.ceil(self.ttl * 1000))

    @property
    def max_idle_ms(self) -> int:
        return max(1, math.ceil(self.max_idle * 1000))


class StoreSettings(BaseModel):
    """Settings shared by every operation of one store.

    ``max_history`` messages stay in a session's live history; older ones move
    to its overflow list, and once that holds ``max_overflow`` messages it is
    renamed (O(1)) into the user's archive area as the session's next segment,
    so a live session's keys stay bounded and no message is dropped.
    ``page_size`` bounds how many messages (or records) one script reply
    carries: longer reads take several pages.

    ``deliveries``: every archive records a delivery to the listeners'
    ``on_archived`` hook in the bucket's outbox, in the same atomic step; it
    waits there until a listener with a hook delivers it. Set it False where no
    listener has a hook, or the outbox grows with every archive.

    ``compress_archives``: right after a conversation is archived, its
    message lists are replaced by zstd frames (see ``compaction``); off, they
    stay lists until ``compact_archives`` or ``luminora-redis migrate``.

    ``buckets`` fixes how users spread over hash slots. It is recorded in Redis
    on first use; ``None`` adopts the recorded count (or 1024 on a fresh
    keyspace), and an explicit count that disagrees with the record is refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = Field("lr", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    buckets: int | None = Field(None, ge=1, le=65536)
    default_ttl: Seconds = 3600.0
    default_max_idle: Seconds = 1800.0
    max_history: int = Field(1000, ge=1, le=1_000_000)
    max_overflow: int = Field(1000, ge=1, le=1_000_000)
    page_size: int = Field(500, ge=1, le=100_000)
    max_message_bytes: int = Field(2 * 1024 * 1024, ge=1, le=256 * 1024 * 1024)
    max_id_bytes: int = Field(256, ge=1, le=4096)
    archive_retention: int | None = Field(None, ge=0)
    deliveries: StrictBool = True
    compress_archives: StrictBool = True
    affinity_levels: tuple[tuple[str, int], ...] = DEFAULT_AFFINITY_LEVELS

    @field_validator("affinity_levels")
    @classmethod
    def _levels_ascend_from_zero(cls, levels: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
        if not levels or levels[0][1] != 0:
            raise ValueError("affinity levels must start with a level at 0 points")
        minimums = [minimum for _, minimum in levels]
        if minimums != sorted(set(minimums)):
            raise ValueError("affinity level minimums must be strictly ascending")
        if any(not name for name, _ in levels):
            raise ValueError("affinity level names must not be empty")
        return levels

    @model_validator(mode="after")
    def _defaults_are_valid_sessions(self) -> StoreSettings:
        SessionConfig(ttl=self.default_ttl, max_idle=self.default_max_idle)
        return self

    def level_for(self, points: int) -> str:
        """The affinity level name for a number of points."""
        level = self.affinity_levels[0][0]
        for name, minimum in self.affinity_levels:
            if points >= minimum:
                level = name
        return level


def parse_session_config(settings: StoreSettings, config: object) -> SessionConfig:
    """Validate a caller's ``session_config`` mapping, filling gaps from the store defaults."""
    if config is None:
        config = {}
    if isinstance(config, SessionConfig):
        return config
    if not isinstance(config, dict):
        raise InvalidInput(f"session_config must be a mapping, not {type(config).__name__}")
    merged = {"ttl": settings.default_ttl, "max_idle": settings.default_max_idle, **config}
    try:
        return SessionConfig.model_validate(merged)
    except ValidationError as error:
        raise InvalidInput(f"invalid session_config: {error}") from None
