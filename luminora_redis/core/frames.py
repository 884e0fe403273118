"""Archived messages as zstd frames: one frame per unit (a segment, or the tail).

A frame holds a msgpack array: ``[2, roles, contents, metadata, ts_deltas]``
when every message is a well-formed ``[role, content, metadata, ts]`` record,
``[3, roles, contents, metadata, ts_deltas, tokens]`` when some carry their
token count (``[role, content, metadata, tokens, ts]``; None in ``tokens`` for
those that do not)
(columns compress better than rows: the roles line up, and each timestamp
becomes its small distance from the one before), else ``[1, [raw, ...]]``,
the stored bytes as they were. Reading turns either back into message records
that decode exactly as the originals did. A frame that cannot be read is
skipped with a warning and counted as one unreadable record (see ``codec``),
so it never fails the reads of other conversations; ``read_frame`` tells its
caller so (``None``), and the archive reader counts the messages it held in
the conversation's ``unreadable_messages``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import msgpack
import zstandard

from luminora_redis.core import codec

__all__ = ["LEVEL", "pack_frame", "read_frame", "unpack_frame"]

#: zstd level: archives are written off the hot path, and level 9 costs about
#: 30 µs per 4 KiB conversation.
LEVEL = 9

ROWS, COLUMNS, COUNTED = 1, 2, 3

_local = threading.local()


def _compressor() -> Any:
    found = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return found


def _decompressor() -> Any:
    found = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def _columns(raws: Sequence[bytes]) -> list[Any] | None:
    """The messages as columns, or None when some record is not a plain message."""
    roles, contents, metadata, deltas = [], [], [], []
    counts: list[int | None] = []
    previous = 0
    try:
        for raw in raws:
            record = codec.unpack(raw)
            if len(record) == 5:
                role, content, meta, tokens, ts = record
                if (type(tokens) is not int or not 0 <= tokens <= codec.MAX_TOKENS
                        or raw[-14] != 0xCE):
                    return None
            else:
                (role, content, meta, ts), tokens = record, None
            if (not isinstance(role, str) or not isinstance(content, str)
                    or not (meta is None or isinstance(meta, dict))
                    or isinstance(ts, bool) or not isinstance(ts, int)):
                return None
            roles.append(role)
            contents.append(content)
            metadata.append(meta)
            counts.append(tokens)
            deltas.append(ts - previous)
            previous = ts
    except Exception:  # any record that does not unpack as a message: keep the rows
        return None
    if all(count is None for count in counts):
        return [COLUMNS, roles, contents, metadata, deltas]
    return [COUNTED, roles, contents, metadata, deltas, counts]


def pack_frame(raws: Sequence[bytes]) -> bytes:
    """One zstd frame of stored message records (oldest first)."""
    body = _columns(raws) or [ROWS, list(raws)]
    return bytes(_compressor().compress(msgpack.packb(body, use_bin_type=True)))


def _rows(body: Any) -> list[bytes]:
    if body[0] == ROWS:
        return list(body[1])
    if body[0] == COLUMNS:
        _, roles, contents, metadata, deltas = body
        counts = [None] * len(roles)
    elif body[0] == COUNTED:
        _, roles, contents, metadata, deltas, counts = body
    else:
        raise ValueError(f"unknown frame layout {body[0]!r}")
    rows, ts = [], 0
    for role, content, meta, delta, tokens in zip(roles, contents, metadata, deltas, counts,
                                                  strict=True):
        ts += delta
        if tokens is None:
            rows.append(msgpack.packb([role, content, meta, ts], use_bin_type=True))
        else:  # as the store wrote it: the count a fixed uint32 before the timestamp
            head = msgpack.packb([role, content, meta], use_bin_type=True)
            rows.append(b"\x95" + head[1:] + b"\xce" + tokens.to_bytes(4, "big")
                        + msgpack.packb(ts))
    return rows


def read_frame(frame: bytes, owner: str = "?") -> list[bytes] | None:
    """The message records of a frame, oldest first; None (logged, and counted as one
    unreadable record) when the frame cannot be read."""
    try:
        return _rows(codec.unpack(_decompressor().decompress(frame)))
    except Exception as error:  # decoding is pure: whatever it raises, the frame is unreadable
        codec._unreadable.skip("archive frame", owner, 0, bytes(frame[:64]), error)
        return None


def unpack_frame(frame: bytes, owner: str = "?") -> list[bytes]:
    """The message records of a frame, oldest first; [] (logged and counted) when the
    frame cannot be read (``read_frame`` tells that apart from an empty frame)."""
    rows = read_frame(frame, owner)
    return [] if rows is None else rows
