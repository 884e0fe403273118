"""A restricted unpickler for LuminoraCore's legacy values: plain builtins only.

LuminoraCore stored its records with ``pickle.dumps`` and read them back
with ``pickle.loads``, so whoever could write a key could run code in every
reader. Migrating that data must not inherit the hole. ``safe_loads`` uses
the standard library's documented way to restrict unpickling
(``Unpickler.find_class`` allow-list): only plain containers, scalars and
``datetime`` types can be named by a pickle; any other global (``os.system``,
``builtins.eval``, a class with ``__reduce__``) raises ``UnsafePickle``
before anything is called.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["ALLOWED", "UnsafePickle", "looks_pickled", "safe_loads"]

ALLOWED: frozenset[tuple[str, str]] = frozenset(
    [("builtins", name) for name in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes",
                                     "bytearray", "int", "float", "bool", "complex")]
    + [("datetime", name) for name in ("datetime", "date", "time", "timedelta", "timezone")]
)


class UnsafePickle(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list; nothing of it was executed."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"refused to load {module}.{name}")
        self.global_name = f"{module}.{name}"


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickle(module, name)


def looks_pickled(data: bytes) -> bool:
    """True for data that starts like a pickle of protocol 2 or later."""
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def safe_loads(data: bytes) -> Any:
    """Unpickle ``data`` admitting only plain builtins and datetimes."""
    return _Restricted(io.BytesIO(data)).load()
