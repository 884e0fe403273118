"""The personality's replies: a few rules standing in for an LLM, and a sentiment score.

Replace `reply` with a call to your model; `sentiment` is how many affinity
points a user's message is worth (positive words up, negative words down).
"""

from __future__ import annotations

import re

__all__ = ["POINTS_PER_WORD", "reply", "sentiment"]

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
