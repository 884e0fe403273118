"""Token counts: how many tokens a text costs in a model's context window.

A message's count is computed once, when it is written, by the store's
``token_counter`` (``fn(text: str) -> int``, a ``StoreSettings`` field and a
keyword of ``from_url`` and the constructors), and stored with the record, so a
token budget is summed inside Redis without re-reading or re-counting.

The default, ``estimate_tokens``, is a fast estimate with no model files: one
token per four bytes of UTF-8, rounded up (English prose averages about four
characters a token in the GPT and Llama tokenizers; scripts of several bytes per
character count more, as their tokenizers do). Where the exact count matters,
pass the model's own counter.
"""

from __future__ import annotations

from collections.abc import Callable

from luminora_redis.core.errors import ConfigurationError

__all__ = ["TokenCounter", "count_tokens", "estimate_tokens"]

#: A function that counts the tokens of a text.
TokenCounter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """One token per four bytes of UTF-8, rounded up; 0 for an empty text."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // 4)


def count_tokens(counter: TokenCounter | None, text: str) -> int:
    """``counter(text)`` (``estimate_tokens`` when None), checked: a counter that
    returns anything but a non-negative int is a configuration error, named here
    rather than stored."""
    count = estimate_tokens(text) if counter is None else counter(text)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigurationError(
            f"token_counter must return a non-negative int, but returned {count!r:.60} "
            f"for a text of {len(text)} characters")
    return count
