"""Random ids that writes carry so that a script recognises a resend of the same call.

When a connection breaks after a write landed and before its reply arrived,
redis-py sends the same EVALSHA again. Each create carries a nonce and each
appending turn or memory write a turn id; the script stores the last one it
applied and answers a resend as the original, writing nothing (see the
headers of ``create_session.lua``, ``chat_turn.lua``, ``update_affinity.lua``
and ``record_trait.lua``). Session ids themselves are ``KeySpace.new_session_id``:
they carry the bucket they route to.

A caller may name a turn itself (``chat_turn(..., turn_id=...)``) so that its own
retry of that turn, not only redis-py's resend, is recognised: ``caller_turn_id``
checks the name and gives it a prefix that no random turn id (digits only) has.
"""

from __future__ import annotations

import os
import random
import re
import secrets

from luminora_redis.core.errors import InvalidInput

__all__ = ["CALLER_TURN_PREFIX", "caller_turn_id", "new_nonce", "new_turn_id"]

#: What a caller's turn id is stored with: random turn ids are decimal digits only,
#: so the two can never be equal.
CALLER_TURN_PREFIX = "c:"
_CALLER_TURN = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def new_nonce() -> str:
    """A random id that lets a script recognise a resend of the same call."""
    return secrets.token_hex(8)


def new_turn_id() -> int:
    """A turn's (or a memory write's) id: random, so that a resend of this call is told
    from the previous one. Uniqueness is all it needs (nothing is guessed from it), so
    it comes from a private ``random.Random`` seeded by the OS, and reseeded in a forked
    child: cheaper than the OS per call, and untouched by ``random.seed`` elsewhere in
    the process (a seeded global generator would repeat ids across runs or processes)."""
    return _turn_bits(63)


def caller_turn_id(value: object) -> str:
    """The turn id a script gets for a caller's own ``turn_id``: 1 to 64 characters of
    ``A-Z a-z 0-9 _ - . :``, prefixed with ``CALLER_TURN_PREFIX``; else InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"turn_id must be a string, not {type(value).__name__}")
    if _CALLER_TURN.fullmatch(value) is None:
        raise InvalidInput(f"turn_id must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', "
                           f"'.' and ':', not {value[:80]!r}")
    return CALLER_TURN_PREFIX + value


_turn_random = random.Random()
_turn_bits = _turn_random.getrandbits
os.register_at_fork(after_in_child=_turn_random.seed)
