"""The Lua scripts, and the steps an operation asks a store to run.

Scripts ship inside the wheel as ``luminora_redis/lua/*.lua``. In a source
checkout (an editable install) they live in the repository's top-level
``lua/`` folder, so the loader falls back to that when the package has no
``lua`` folder of its own.

An operation is written once, as a generator: it yields a ``Call`` (one
script, run by ``redis-py``'s ``Script``: EVALSHA, reloaded on NOSCRIPT) or a
``Batch`` of calls (one pipeline, grouped per node on a cluster), receives
the reply, and finally returns its result. The asyncio and blocking stores
only differ in how they run a step.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

__all__ = ["Batch", "Call", "Op", "Step", "lua_dir", "script_sources"]

T = TypeVar("T")


class Call(NamedTuple):
    """Run one script: EVALSHA ``script`` with ``keys`` and ``args``."""

    script: str
    keys: Sequence[str]
    args: Sequence[Any]


class Batch(NamedTuple):
    """Run several calls in one round trip per node; the reply is the list of replies."""

    calls: Sequence[Call]


Step = Call | Batch
Op = Generator[Step, Any, T]


def lua_dir() -> Path:
    """Where the ``.lua`` files are: inside the package, else the source checkout."""
    packaged = resources.files("luminora_redis").joinpath("lua")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "lua"


@cache
def script_sources() -> dict[str, str]:
    """Every script's source text, by name (the file name without ``.lua``)."""
    folder = lua_dir()
    sources = {path.stem: path.read_text("utf-8") for path in sorted(folder.glob("*.lua"))}
    if not sources:
        raise RuntimeError(f"no Lua scripts found in {folder}")
    return sources
