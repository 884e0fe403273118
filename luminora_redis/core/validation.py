"""Checks on every id, name and value a caller passes, made before anything is written.

Ids may hold any printable unicode, braces, colons and glob characters (they
are percent-encoded into keys, so they stay isolated); what is refused is the
empty id, control characters (NUL, newline, ...), lone surrogates, and ids
longer than ``max_id_bytes`` of UTF-8.

Free-form values (message metadata, fact values) are stored as msgpack and
must read back equal to what was given, at every depth. ``check_plain`` is
written by hand because msgpack itself accepts more than it returns: it
packs tuples (read back as lists), maps with int or bytes keys (refused on
read by ``strict_map_key``) and nests deeper than its reader allows.
"""

from __future__ import annotations

import math
import unicodedata

from luminora_redis.core.errors import InvalidInput

__all__ = ["MAX_DEPTH", "check_integer", "check_name", "check_number", "check_plain"]

#: Deepest nesting of lists and maps a stored value may have.
MAX_DEPTH = 64
#: The integers msgpack can store: int64 and uint64.
INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1
_SCALARS = (str, float, bytes, bytearray)
_PLAIN = "None, bool, int, float, str, bytes, list, and dict with str keys"


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


class _Refused(Exception):
    """Why a value cannot be stored, and where in it (outermost step first once raised)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


def check_plain(value: object, what: str, strict_text: bool = False) -> None:
    """Raise InvalidInput unless ``value`` reads back from msgpack equal to itself.

    Accepted: None, bool, int within int64/uint64, float (NaN and infinities
    included: stored as the same IEEE 754 double), str, bytes and bytearray
    (read back as bytes), and lists and dicts of these with str keys, nested
    at most ``MAX_DEPTH`` deep. Subclasses of these read back as the base type
    and compare equal, so they are accepted too. Refused: tuples (read back as
    lists), sets, non-str map keys, and anything else. Text with lone surrogates
    is refused by the packer; ``strict_text`` checks it here too, to say where.
    """
    try:
        _walk(value, 0, strict_text)
    except _Refused as refused:
        where = what + "".join(reversed(refused.path))
        raise InvalidInput(f"{where}: {refused.reason}") from None


def _walk(value: object, depth: int, strict_text: bool) -> None:
    kind = type(value)
    if type(value) is str:
        if strict_text:
            _check_utf8(value)
        return
    if value is None or kind is float or kind is bool or kind is bytes:
        return
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _Refused(f"integer {value} is outside the 64-bit range msgpack stores")
        return
    if isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
        is_map = isinstance(value, dict)
        for key, item in value.items() if is_map else enumerate(value):  # type: ignore[union-attr]
            if is_map and not isinstance(key, str):
                raise _Refused(f"map key {key!r:.40} is {type(key).__name__}; keys must be str")
            try:
                if strict_text and isinstance(key, str):  # a map key (a list's are ints)
                    _check_utf8(key)
                _walk(item, depth + 1, strict_text)
            except _Refused as refused:
                refused.path.append(f"[{key!r:.40}]")
                raise
        return
    if isinstance(value, _SCALARS):
        if strict_text and isinstance(value, str):
            _check_utf8(value)
        return
    if isinstance(value, tuple):
        raise _Refused("a tuple would read back as a list; pass a list")
    if isinstance(value, (set, frozenset)):
        raise _Refused("a set cannot be stored; pass a list")
    raise _Refused(f"{type(value).__name__} cannot be stored; only {_PLAIN} are")


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Refused(f"text {text[:40]!r} is not valid unicode (lone surrogate)") from None
