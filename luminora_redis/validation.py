"""Checks on every id and name a caller passes, made before anything is written.

Ids may hold any printable unicode, braces, colons and glob characters (they
are percent-encoded into keys, so they stay isolated); what is refused is the
empty id, control characters (NUL, newline, ...), lone surrogates, and ids
longer than ``max_id_bytes`` of UTF-8.
"""

from __future__ import annotations

import math
import unicodedata

from luminora_redis.errors import InvalidInput

__all__ = ["check_integer", "check_name", "check_number", "check_text"]


def check_name(value: object, what: str, max_bytes: int) -> str:
    """Return ``value`` if it is a usable id or name, else raise InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid unicode (lone surrogate)") from None
    if size > max_bytes:
        raise InvalidInput(f"{what} is {size} bytes of UTF-8; the limit is {max_bytes}")
    if not value.isprintable() and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise InvalidInput(f"{what} must not contain control characters: {value[:40]!r}")
    return value


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a string that encodes to UTF-8, else raise InvalidInput."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    return value


def check_integer(value: object, what: str, limit: int = 10**12) -> int:
    """Return ``value`` if it is an int (not a bool) within ±limit, else raise InvalidInput."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer, not {type(value).__name__}")
    if abs(value) > limit:
        raise InvalidInput(f"{what} must be within ±{limit}")
    return value


def check_number(value: object, what: str, low: float, high: float) -> float:
    """Return ``value`` as a float if it is a finite real number in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{what} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidInput(f"{what} must be between {low} and {high}, not {value!r}")
    return number
