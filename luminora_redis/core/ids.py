"""Random ids that writes carry so that a script recognises a resend of the same call.

When a connection breaks after a write landed and before its reply arrived,
redis-py sends the same EVALSHA again. Each create carries a nonce and each
appending turn or memory write a turn id; the script stores the last one it
applied and answers a resend as the original, writing nothing (see the
headers of ``create_session.lua``, ``chat_turn.lua``, ``update_affinity.lua``
and ``record_trait.lua``). Session ids themselves are ``KeySpace.new_session_id``:
they carry the bucket they route to.
"""

from __future__ import annotations

import os
import random
import secrets

__all__ = ["new_nonce", "new_turn_id"]


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


_turn_random = random.Random()
_turn_bits = _turn_random.getrandbits
os.register_at_fork(after_in_child=_turn_random.seed)
