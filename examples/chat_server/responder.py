"""The personality's replies: a few rules standing in for an LLM, and a sentiment score.

Replace `reply` with a call to your model; `sentiment` is how many affinity
points a user's message is worth (positive words up, negative words down).
"""

from __future__ import annotations

import re

__all__ = ["NEGATIVE", "POINTS_PER_WORD", "POSITIVE", "facts_in", "reply", "sentiment", "welcome"]

POINTS_PER_WORD = 5

POSITIVE = frozenset({
    "love", "like", "thanks", "thank", "great", "awesome", "nice", "happy", "wonderful",
    "cool", "amazing", "gracias", "genial", "encanta",
})
NEGATIVE = frozenset({
    "hate", "boring", "bad", "stupid", "annoying", "awful", "terrible", "sad", "odio", "aburrido",
})
GREETINGS = frozenset({"hi", "hello", "hey", "hola"})

_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def sentiment(text: str) -> int:
    """Affinity points for one user message: +5 per positive word, -5 per negative word."""
    words = _words(text)
    return POINTS_PER_WORD * (sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words))


def reply(personality: str, text: str, level: str) -> str:
    """What ``personality`` answers to ``text``, given how close the user is (``level``)."""
    words = _words(text)
    score = sentiment(text)
    if any(word in GREETINGS for word in words[:2]):
        return f"Hello! I'm {personality}. We are {level}s so far; tell me about yourself."
    if score > 0:
        return "That makes me happy! I feel we are getting closer."
    if score < 0:
        return "Oh... that hurts a little. Let's talk about something else?"
    if text.rstrip().endswith("?"):
        return "Good question. What do you think?"
    longest = max(words, key=len, default="that")
    return f"Tell me more about {longest}."


_FACTS = (
    (re.compile(r"\bmy name is ([\w' -]{1,40}?)(?:[.,!?]|$)", re.I), "personal_info", "name"),
    (re.compile(r"\bi live in ([\w' -]{1,40}?)(?:[.,!?]|$)", re.I), "personal_info", "city"),
    (re.compile(r"\bi (?:love|like) ([\w' -]{1,40}?)(?:[.,!?]|$)", re.I), "preferences", "likes"),
)


def facts_in(text: str) -> list[tuple[str, str, str]]:
    """The (category, key, value) facts a user message states: ``my name is ...``,
    ``i live in ...``, ``i love ...`` or ``i like ...``."""
    found = []
    for pattern, category, key in _FACTS:
        match = pattern.search(text)
        if match and match.group(1).strip():
            found.append((category, key, match.group(1).strip()))
    return found


def welcome(personality: str, name: str | None, last_title: str | None) -> str:
    """What ``personality`` says when a session starts, given what it recalls."""
    if last_title:
        who = f", {name}" if name else ""
        return f"Welcome back{who}! Last time you told me: \u201c{last_title}\u201d."
    return f"Hi, I'm {personality}. Tell me about yourself."
