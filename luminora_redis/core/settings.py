"""Store settings and per-session configuration, validated before use."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from difflib import get_close_matches
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from luminora_redis.core.errors import InvalidInput, InvalidSettings

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_AFFINITY_LEVELS",
    "DEFAULT_BUCKETS",
    "SessionConfig",
    "SettingsModel",
    "StoreSettings",
    "describe_invalid",
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


def describe_invalid(error: ValidationError, fields: Iterable[str] = ()) -> str:
    """One line naming each refused field and what is wrong with it (pydantic's own
    text spans lines and links to its site). ``fields``: the known field names, to
    suggest one for a misspelt keyword."""
    reasons = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            close = get_close_matches(where, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            reasons.append(f"unknown setting {where!r}{hint}")
            continue
        message = str(item["msg"]).removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        got = repr(item.get("input"))
        got = got if len(got) <= 60 else got[:57] + "..."
        reason = f"{message}, not {got}" if item["type"] != "value_error" else message
        reasons.append(f"{where}: {reason}" if where else reason)
    return "; ".join(reasons).replace("\n", " ")


class SettingsModel(BaseModel):
    """A pydantic model of settings whose refusals are ``InvalidSettings``.

    Building one (``Model(...)``, ``Model.model_validate(...)``) raises the library's
    error with a one-line message instead of pydantic's ``ValidationError``, which
    rides along as its ``__cause__``.
    """

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            _refuse(type(self), error)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        try:
            return super().model_validate(obj, **options)
        except ValidationError as error:
            _refuse(cls, error)

    @classmethod
    def model_validate_json(cls, json_data: Any, **options: Any) -> Self:
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as error:
            _refuse(cls, error)


def _refuse(model: type[BaseModel], error: ValidationError) -> NoReturn:
    # pydantic validates a mapping by calling the model's __init__ (a custom one, here),
    # and wraps what that raised, already described, as a ValueError of its own.
    errors = error.errors(include_url=False)
    inner = errors[0].get("ctx", {}).get("error") if len(errors) == 1 else None
    if isinstance(inner, InvalidSettings):
        raise inner
    reasons = describe_invalid(error, model.model_fields)
    raise InvalidSettings(f"invalid {model.__name__}: {reasons}", reasons) from error


class SessionConfig(SettingsModel):
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


class StoreSettings(SettingsModel):
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

    ``acknowledge`` says when a write returns: ``"primary"`` once the primary ran
    it (a failover can lose it), ``"replicas"`` once ``acknowledge_replicas``
    replicas have it too (``WAIT``), ``"aof"`` once the primary's append-only file
    has it on disk (``WAITAOF``, Redis 7.2+ with ``appendonly yes``). Each wait is
    bounded by ``acknowledge_timeout`` seconds; a write not acknowledged within it
    raises ``NotAcknowledged`` (see ``luminora_redis.io.acknowledge``). Not on Redis
    Cluster.

    ``token_counter`` counts each message's tokens once, when it is written (None:
    the fast estimate of ``luminora_redis.core.tokens``); budgets sum the stored counts.

    ``buckets`` fixes how users spread over hash slots. It is recorded in Redis
    on first use; ``None`` adopts the recorded count (or 1024 on a fresh
    keyspace), and an explicit count that disagrees with the record is refused.
    An invalid setting raises ``InvalidSettings``.
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
    acknowledge: Literal["primary", "replicas", "aof"] = "primary"
    acknowledge_replicas: int = Field(1, ge=1, le=1000)
    acknowledge_timeout: Seconds = 1.0
    #: Counts a text's tokens, once, when it is written (``luminora_redis.core.tokens``);
    #: None: ``estimate_tokens``.
    token_counter: Callable[[str], int] | None = None

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
    except InvalidSettings as error:
        raise InvalidInput(f"invalid session_config: {error.reasons}") from error.__cause__
