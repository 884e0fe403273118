"""The user-map file of a legacy migration: which old ids are which user.

CSV (two columns, old id then user id; a first row naming the columns is
ignored) or JSON (an object ``{"old id": "user id"}`` or a list of
``{"old_id": ..., "user_id": ...}``). Several old ids may name one user.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from luminora_redis.core.errors import InvalidInput

__all__ = ["load_user_map"]

_HEADERS = {"old_id", "old", "session_id", "legacy_id", "source"}


def load_user_map(path: str | Path) -> dict[str, str]:
    """Old id -> user id, from a CSV or JSON file; InvalidInput when it is malformed."""
    text = Path(path).read_text("utf-8")
    if text.lstrip().startswith(("{", "[")):
        return _from_json(text)
    mapping: dict[str, str] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            raise InvalidInput(f"user map line {number}: expected old id,user id")
        old, new = (cell.strip() for cell in row)
        if number == 1 and old.lower() in _HEADERS:
            continue
        _add(mapping, old, new, f"line {number}")
    return mapping


def _from_json(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise InvalidInput(f"user map is not valid JSON: {error}") from None
    mapping: dict[str, str] = {}
    if isinstance(data, dict):
        for old, new in data.items():
            _add(mapping, old, new, repr(old))
    elif isinstance(data, list):
        for n, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvalidInput(f"user map entry {n} is not an object")
            _add(mapping, item.get("old_id"), item.get("user_id"), f"entry {n}")
    else:
        raise InvalidInput("user map JSON must be an object or a list")
    return mapping


def _add(mapping: dict[str, str], old: object, new: object, where: str) -> None:
    if not isinstance(old, str) or not isinstance(new, str) or not old or not new:
        raise InvalidInput(f"user map {where}: old id and user id must be non-empty text")
    if mapping.get(old, new) != new:
        raise InvalidInput(f"user map {where}: {old!r} is mapped to two users")
    mapping[old] = new
