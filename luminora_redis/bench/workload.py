"""The chat turn every system runs: append a user and an assistant message of 200
characters each, refresh the session's expiry, read the last 10 messages. Sessions
rotate every 20 turns, so histories stay short and comparable across systems."""

from __future__ import annotations

CHARS = 200
LAST = 10
#: The token budget of the "chat_turn with budget" row: wide enough for the last LAST turns.
BUDGET = 100_000
#: The token budget of the "budget binds" row: every message of the workload counts 51
#: tokens with the default estimate, so 280 takes the newest 5 of the LAST asked for
#: (about half) once a session holds more than 5 messages, from its third turn on.
BINDING_BUDGET = 280
TURNS_PER_SESSION = 20
TTL_SECONDS = 3600
PERSONALITY = "alicia"


def _text(role: str, turn: int) -> str:
    head = f"{role} turn {turn}: "
    body = "the quick brown fox jumps over the lazy dog ñ " * (CHARS // 40 + 1)
    return (head + body)[:CHARS]


USER = [_text("user", i) for i in range(TURNS_PER_SESSION)]
ASSISTANT = [_text("assistant", i) for i in range(TURNS_PER_SESSION)]


def describe() -> dict[str, int | str]:
    """The workload, for the JSON report."""
    return {"message_chars": CHARS, "messages_per_turn": 2, "read_last": LAST,
            "turns_per_session": TURNS_PER_SESSION, "session_ttl_seconds": TTL_SECONDS}
