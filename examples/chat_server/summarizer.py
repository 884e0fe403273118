"""An extractive summarizer with no model: what the personality keeps of a conversation.

`summarize_conversation` turns an archived conversation into the episode the
user's memory keeps (a `SessionSummary`: title, summary, importance, sentiment):
the title is the user's first message, the summary the user's sentences that
carry the conversation's most frequent words, the importance grows with how
much the user wrote, and the sentiment comes from a small word list.
`summarize_messages` does the same for the running summary of a live session.

Both are pure functions: swap them for a call to a language model, for example::

    async def summarize_with_llm(conversation: ArchivedConversation) -> dict | None:
        lines = [f"{m.role.value}: {m.content}" for m in conversation.messages]
        if not lines:
            return None
        answer = await llm.chat.completions.create(model="...", messages=[
            {"role": "system", "content": "Summarize this chat. Reply with JSON: "
                                          "title, summary, importance (0-10), sentiment."},
            {"role": "user", "content": "\\n".join(lines)}])
        return json.loads(answer.choices[0].message.content)

and pass it as ``summarize=`` to the listener (``create_app(summarize=...)``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from examples.chat_server.responder import NEGATIVE, POSITIVE
from luminora_redis import SessionSummary
from luminora_redis.core.models import ArchivedConversation, Role, Sentiment

__all__ = ["importance_of", "sentiment_of", "summarize_conversation", "summarize_messages"]

TITLE_CHARACTERS = 60
SUMMARY_SENTENCES = 2
SUMMARY_CHARACTERS = 400

STOPWORDS = frozenset("""
a an and are as at be but by do for from have i i'm in is it it's me my of on or so that the
this to was we what with you your yes no not just about can how like really very too
el la los las de del que y en un una es por con para mi me yo tu te lo
""".split())

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")
_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and not w.isdigit()]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def summarize_messages(texts: Sequence[str]) -> str:
    """The ``SUMMARY_SENTENCES`` sentences of ``texts`` whose words are the most frequent
    in all of them, in the order they were said; empty for no text."""
    sentences = [s.strip() for text in texts for s in _SENTENCE.findall(text) if s.strip()]
    if not sentences:
        return ""
    frequency = Counter(w for s in sentences for w in _words(s))

    def weight(index: int) -> float:
        words = _words(sentences[index])
        return sum(frequency[w] for w in words) / (len(words) or 1) if words else 0.0

    best = sorted(range(len(sentences)), key=lambda i: (-weight(i), i))[:SUMMARY_SENTENCES]
    return _shorten(" ".join(sentences[i] for i in sorted(best)), SUMMARY_CHARACTERS)


def sentiment_of(texts: Iterable[str]) -> Sentiment:
    """``positive``, ``negative``, ``mixed`` or ``neutral`` by the responder's word lists."""
    words = [w for text in texts for w in _WORD.findall(text.lower())]
    good = sum(w in POSITIVE for w in words)
    bad = sum(w in NEGATIVE for w in words)
    if good and bad and min(good, bad) * 2 >= max(good, bad):
        return Sentiment.MIXED
    if good > bad:
        return Sentiment.POSITIVE
    return Sentiment.NEGATIVE if bad > good else Sentiment.NEUTRAL


def importance_of(texts: Sequence[str]) -> float:
    """1 to 10: one point, plus one per 200 characters the user wrote."""
    return float(min(10, 1 + sum(len(t) for t in texts) // 200))


def summarize_conversation(conversation: ArchivedConversation) -> SessionSummary | None:
    """The episode to keep for ``conversation``; None when the user said nothing."""
    said = [m.content for m in conversation.messages if m.role is Role.USER]
    if not said:
        return None
    return SessionSummary(title=_shorten(said[0], TITLE_CHARACTERS), summary=summarize_messages(said),
                          importance=importance_of(said), sentiment=sentiment_of(said))
