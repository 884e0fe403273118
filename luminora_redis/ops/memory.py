"""User memory operations: affinity, facts, episodes and the evolution log.

All of it is keyed by the persistent user id, never by a session, and none
of it expires. Each write is one script call; reads go in pages (a cursor and
at most ``page_size`` items per script reply), since a user's memory grows
with the user's lifetime.
"""

from __future__ import annotations

import json
import secrets

from luminora_redis.core.codec import (
    decode_episodes,
    decode_evolutions,
    decode_facts,
    from_ms,
    pack,
    prefix,
)
from luminora_redis.core.context import Context
from luminora_redis.core.errors import InvalidInput, ReplyCode
from luminora_redis.core.ids import new_turn_id
from luminora_redis.core.models import (
    Affinity,
    Episode,
    EvolutionEvent,
    EvolutionKind,
    Fact,
    Recall,
    Sentiment,
    SessionSummary,
)
from luminora_redis.core.scripts import Call, Op
from luminora_redis.core.tokens import count_tokens
from luminora_redis.core.validation import check_integer, check_number

__all__ = [
    "delete_episode",
    "delete_fact",
    "episode_body",
    "episode_text",
    "fact_body",
    "fact_text",
    "get_affinities",
    "get_affinity",
    "get_episodes",
    "get_evolution",
    "get_facts",
    "recall",
    "record_trait",
    "save_episode",
    "save_fact",
    "save_session_summary",
    "session_summary_id",
    "update_affinity",
]

MAX_IMPORTANCE = 10.0
#: The most facts one ``recall`` returns (with any budget, or none).
MAX_RECALL_FACTS = 100
#: The most episodes one ``recall`` returns, and how many of the most important it
#: considers (before keeping those of the personality).
MAX_RECALL_EPISODES = 50
RECALL_EPISODES_EXAMINED = 500
#: The ``episode_type`` of the episode a session's summary is kept as.
SESSION_SUMMARY = "session_summary"
#: The largest token count a record stores (a uint32); a larger count is stored as this.
MAX_TOKENS = 0xFFFF_FFFF
#: The most evolution records one ``get_evolution`` call returns (``limit=None`` too);
#: ``after`` pages on. The log grows with every affinity change of the user's lifetime.
MAX_EVOLUTION = 1000


def _optional_name(ctx: Context, value: object, what: str) -> str | None:
    return None if value is None else ctx.name(value, what)


# -- token counts ------------------------------------------------------------------------
#
# A fact or an episode stores its token count, computed once when it is written by the
# store's token_counter, as the element before the timestamp the script appends, always
# as a msgpack uint32 (0xce and 4 bytes, big-endian). With the timestamp (always a uint64:
# 0xcf and 8 bytes, Unix ms) that puts the count at a fixed distance from the record's
# end, so recall.lua reads it without decoding the record. Records written before counts
# were stored have one element fewer (their array header says so) and no count.


def fact_text(category: str, key: str, value: object) -> str:
    """The text of a fact whose tokens are counted: ``"<category> <key>: <value>"``, the
    value as it is when a string, else as JSON (what an app puts into a prompt; its
    ``repr`` where JSON has no form for it)."""
    if isinstance(value, str):
        shown = value
    else:
        try:
            shown = json.dumps(value, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):  # a mapping with keys JSON has no form for (bytes)
            shown = repr(value)
    return f"{category} {key}: {shown}"


def episode_text(title: str, summary: str) -> str:
    """The text of an episode whose tokens are counted: ``"<title>: <summary>"``."""
    return f"{title}: {summary}"


def _count(ctx: Context, text: str) -> bytes:
    count = min(count_tokens(ctx.settings.token_counter, text), MAX_TOKENS)
    return b"\xce" + count.to_bytes(4, "big")


def fact_body(ctx: Context, category: str, key: str, value: object, confidence: float) -> bytes:
    """A fact as stored, lacking the timestamp: [value, confidence, tokens, ts]."""
    return prefix(4, (value, confidence)) + _count(ctx, fact_text(category, key, value))


def episode_body(ctx: Context, episode_id: str, kind: str, title: str, summary: str,
                 importance: float, sentiment: Sentiment, personality: str | None) -> bytes:
    """An episode as stored, lacking the timestamp: [id, type, title, summary, importance,
    sentiment, personality, tokens, ts]."""
    return (prefix(9, (episode_id, kind, title, summary, importance, sentiment.value,
                       personality))
            + _count(ctx, episode_text(title, summary)))


def update_affinity(ctx: Context, user_id: object, personality_name: object, points_delta: object,
                    interaction_type: object = None) -> Op[Affinity]:
    user_id = ctx.user_id(user_id)
    personality = ctx.name(personality_name, "personality_name")
    delta = check_integer(points_delta, "points_delta")
    interaction = _optional_name(ctx, interaction_type, "interaction_type")
    user = ctx.keys.user(user_id)
    levels = [item for name, minimum in ctx.settings.affinity_levels for item in (name, minimum)]
    record = prefix(8, (EvolutionKind.AFFINITY.value, personality, delta, interaction))
    reply = yield Call("update_affinity", (user.affinity, user.evolution, user.user),
                       (personality, delta, record, new_turn_id(), *levels))
    return Affinity.model_construct(user_id=user_id, personality_name=personality,
                                    points=reply[1], level=reply[2].decode())


def get_affinity(ctx: Context, user_id: object, personality_name: object) -> Op[Affinity | None]:
    user_id = ctx.user_id(user_id)
    personality = ctx.name(personality_name, "personality_name")
    reply = yield Call("get_affinity", (ctx.keys.user(user_id).affinity,), (personality,))
    if reply[0] is None:
        return None
    points = int(reply[0])
    return Affinity.model_construct(user_id=user_id, personality_name=personality, points=points,
                                    level=ctx.settings.level_for(points))


def get_affinities(ctx: Context, user_id: object) -> Op[list[Affinity]]:
    user_id = ctx.user_id(user_id)
    reply = yield Call("get_affinity", (ctx.keys.user(user_id).affinity,), ("",))
    result = []
    for name, raw in zip(reply[::2], reply[1::2]):
        points = int(raw)
        result.append(Affinity.model_construct(user_id=user_id, personality_name=name.decode(),
                                               points=points, level=ctx.settings.level_for(points)))
    return sorted(result, key=lambda affinity: affinity.personality_name)


def save_fact(ctx: Context, user_id: object, category: object, key: object, value: object,
              confidence: object = 1.0) -> Op[Fact]:
    user = ctx.user_keys(user_id)
    category = ctx.name(category, "category")
    key = ctx.name(key, "key")
    confidence = check_number(confidence, "confidence", 0.0, 1.0)
    body = fact_body(ctx, category, key, value, confidence)
    if len(body) > ctx.settings.max_message_bytes:
        raise InvalidInput(f"fact value is {len(body)} bytes; the limit is "
                           f"{ctx.settings.max_message_bytes} (max_message_bytes)")
    reply = yield Call("save_fact", (user.facts,), (pack([category, key]), body))
    return Fact.model_construct(category=category, key=key, value=value, confidence=confidence,
                                updated_at=from_ms(reply[1]))


def get_facts(ctx: Context, user_id: object, category: object = None) -> Op[list[Fact]]:
    """Every fact (of one category when given), read by HSCAN pages of about
    ``page_size`` fields (``scan_hash.lua``), so no reply grows with the user's lifetime;
    a field HSCAN returns twice is kept once."""
    user = ctx.user_keys(user_id)
    wanted = _optional_name(ctx, category, "category")
    raws: dict[bytes, bytes] = {}
    cursor: bytes | int = 0
    while True:
        reply = yield Call("scan_hash", (user.facts,), (cursor, ctx.settings.page_size))
        cursor = reply[0]
        raws.update(zip(reply[1::2], reply[2::2]))
        if cursor in (b"0", 0):
            break
    facts = decode_facts([item for pair in raws.items() for item in pair], user.facts)
    if wanted is not None:
        facts = [fact for fact in facts if fact.category == wanted]
    return sorted(facts, key=lambda fact: (fact.category, fact.key))


def delete_fact(ctx: Context, user_id: object, category: object, key: object) -> Op[bool]:
    user = ctx.user_keys(user_id)
    field = pack([ctx.name(category, "category"), ctx.name(key, "key")])
    reply = yield Call("delete_fact", (user.facts,), (field,))
    return bool(reply[0] == ReplyCode.OK)


def save_episode(ctx: Context, user_id: object, episode_type: object, title: object,
                 summary: object, importance: object = 5.0, sentiment: object = Sentiment.NEUTRAL,
                 personality_name: object = None) -> Op[Episode]:
    episode = yield from _save_episode(ctx, user_id, episode_type, title, summary, importance,
                                       sentiment, personality_name)
    assert episode is not None  # saved unconditionally
    return episode


def _save_episode(ctx: Context, user_id: object, episode_type: object, title: object,
                  summary: object, importance: object, sentiment: object,
                  personality_name: object, summarized: str | None = None) -> Op[Episode | None]:
    """Save an episode under a new random id; with ``summarized`` (a session id), as that
    session's summary (replacing the one saved before), and only while the session's
    conversation is in the user's archive (None otherwise)."""
    user = ctx.user_keys(user_id)
    kind = ctx.name(episode_type, "episode_type")
    if not isinstance(title, str) or not isinstance(summary, str):
        raise InvalidInput("title and summary must be strings")
    weight = check_number(importance, "importance", 0.0, MAX_IMPORTANCE)
    try:
        mood = Sentiment(sentiment)
    except ValueError:
        raise InvalidInput(f"sentiment must be one of {[s.value for s in Sentiment]}, "
                           f"not {sentiment!r}") from None
    personality = _optional_name(ctx, personality_name, "personality_name")
    episode_id = secrets.token_hex(8) if summarized is None else session_summary_id(summarized)
    body = episode_body(ctx, episode_id, kind, title, summary, weight, mood, personality)
    if len(body) > ctx.settings.max_message_bytes:
        raise InvalidInput(f"episode is {len(body)} bytes; the limit is "
                           f"{ctx.settings.max_message_bytes} (max_message_bytes)")
    keys = [user.episodes, user.episode_bodies]
    args = [episode_id, repr(weight), body]
    if summarized is not None:
        keys.append(user.archive)
        args.append(summarized)
    reply = yield Call("save_episode", keys, args)
    if reply[0] != ReplyCode.OK:
        return None
    return Episode.model_construct(episode_id=episode_id, episode_type=kind, title=title,
                                   summary=summary, importance=weight, sentiment=mood,
                                   personality_name=personality, created_at=from_ms(reply[1]))


def get_episodes(ctx: Context, user_id: object, min_importance: object = None,
                 limit: object = None) -> Op[list[Episode]]:
    """Episodes, most important first (all when ``limit`` is None), in pages of at most
    ``page_size``. Each page starts below the (importance, id) of the last episode of
    the one before, so episodes saved or deleted meanwhile never make it skip or repeat
    one (see ``range_zset.lua``)."""
    user = ctx.user_keys(user_id)
    floor = "" if min_importance is None else repr(
        check_number(min_importance, "min_importance", 0.0, MAX_IMPORTANCE))
    wanted = ctx.limit(limit)
    raws: list[bytes] = []
    score: bytes | str = ""
    last: bytes | str = ""
    while wanted < 0 or len(raws) < wanted:
        count = ctx.settings.page_size if wanted < 0 else min(ctx.settings.page_size,
                                                              wanted - len(raws))
        more, score, last, *page = yield Call(
            "range_zset", (user.episodes, user.episode_bodies), ("desc", count, score, last, floor))
        raws.extend(page)
        if not more:
            break
    return decode_episodes(raws, user.episode_bodies)


def delete_episode(ctx: Context, user_id: object, episode_id: object) -> Op[bool]:
    """Forget one episode (its index entry and its body); whether it was there."""
    user = ctx.user_keys(user_id)
    episode = ctx.name(episode_id, "episode_id")
    reply = yield Call("delete_episode", (user.episodes, user.episode_bodies), (episode,))
    return bool(reply[0] == ReplyCode.OK)


def record_trait(ctx: Context, user_id: object, personality_name: object, trait: object,
                 value: object, reason: object = None) -> Op[EvolutionEvent]:
    user = ctx.user_keys(user_id)
    personality = ctx.name(personality_name, "personality_name")
    name = ctx.name(trait, "trait")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(f"trait value must be a number or a string, not {type(value).__name__}")
    if isinstance(value, (int, float)):
        value = check_number(value, "trait value", -1e15, 1e15)
    elif len(value.encode("utf-8", "replace")) > ctx.settings.max_id_bytes:
        raise InvalidInput("trait value is too long")
    why = None if reason is None else ctx.name(reason, "reason")
    record = prefix(7, (EvolutionKind.TRAIT.value, personality, name, value, why))
    reply = yield Call("record_trait", (user.evolution, user.user), (record, new_turn_id()))
    return EvolutionEvent.model_construct(kind=EvolutionKind.TRAIT, personality_name=personality,
                                          timestamp=from_ms(reply[1]), sequence=reply[2],
                                          trait=name, value=value, reason=why)


def get_evolution(ctx: Context, user_id: object, personality_name: object = None,
                  limit: object = None, after: object = None) -> Op[list[EvolutionEvent]]:
    """Evolution records (of one personality when given), oldest first: the newest
    ``limit``, or with ``after`` the oldest ``limit`` records whose sequence number is
    greater. ``limit`` is at most ``MAX_EVOLUTION`` (None: that many). The filter applies
    before the limit; each script call examines at most ``page_size`` records."""
    user = ctx.user_keys(user_id)
    wanted = _optional_name(ctx, personality_name, "personality_name")
    count = ctx.capped(limit, MAX_EVOLUTION)
    if after is None:
        direction, cursor = "down", "+inf"
    else:
        direction, cursor = "up", f"({check_integer(after, 'after')}"
    page = ctx.settings.page_size
    raws: list[bytes] = []
    while len(raws) < count:
        last, more, *found = yield Call(
            "get_evolution", (user.evolution,),
            (direction, cursor, min(page, count - len(raws)), wanted or "", page))
        raws.extend(found)
        if not more:
            break
        cursor = b"(" + last
    if direction == "down":
        raws.reverse()
    return decode_evolutions(raws, user.evolution)


def recall(ctx: Context, user_id: object, personality_name: object,
           budget: object = None) -> Op[Recall]:
    """What ``personality_name`` remembers of the user, within ``budget`` tokens (None: no
    budget), in one script call (``recall.lua``; every key is in the user's slot).

    The affinity is not counted. Facts (all of the user's: facts belong to no
    personality) are taken newest first within half the budget; then episodes of this
    personality or of none (session summaries included), most important first and
    newest first among equal importance, within the rest of the budget; then the facts
    that did not fit in their half fill what the episodes left. An item that does not
    fit is skipped and smaller ones after it may still be taken. A fact counts the
    tokens of ``fact_text`` ("<category> <key>: <value>"), an episode those of
    ``episode_text`` ("<title>: <summary>"), as the store's ``token_counter`` counted
    them when they were written; a record written before counts were stored is
    estimated at its stored bytes / 4. At most ``MAX_RECALL_FACTS`` facts and
    ``MAX_RECALL_EPISODES`` episodes are returned, from the ``RECALL_EPISODES_EXAMINED``
    most important episodes of the user."""
    uid = ctx.user_id(user_id)
    user = ctx.keys.user(uid)
    personality = ctx.name(personality_name, "personality_name")
    limit = None if budget is None else ctx.count(budget, "budget")
    reply = yield Call("recall", (user.affinity, user.facts, user.episodes, user.episode_bodies),
                       (personality, "" if limit is None else limit, MAX_RECALL_FACTS,
                        RECALL_EPISODES_EXAMINED, MAX_RECALL_EPISODES))
    raw_points, tokens, count, left_out = reply[:4]
    records = reply[4:]
    affinity = None
    if raw_points is not None:
        points = int(raw_points)
        affinity = Affinity.model_construct(user_id=uid, personality_name=personality,
                                            points=points, level=ctx.settings.level_for(points))
    facts = decode_facts(records[:2 * count], user.facts)
    episodes = decode_episodes(records[2 * count:], user.episode_bodies)
    return Recall.model_construct(user_id=uid, personality_name=personality,
                                  affinity=affinity, facts=facts, episodes=episodes,
                                  tokens=tokens, budget=limit,
                                  left_out=left_out)


def save_session_summary(ctx: Context, user_id: str, session_id: str, personality_name: str,
                         summary: SessionSummary) -> Op[Episode | None]:
    """Keep ``summary`` as the session's one ``session_summary`` episode, whose id is
    ``session_summary_id(session_id)``, so saving it again replaces it. None, and nothing
    saved, when the session's conversation is no longer in the user's archive (erased)."""
    episode: Episode | None = yield from _save_episode(
        ctx, user_id, SESSION_SUMMARY, summary.title, summary.summary, summary.importance,
        summary.sentiment, personality_name, summarized=session_id)
    return episode


def session_summary_id(session_id: str) -> str:
    """The id of the episode that keeps a session's summary: one per session."""
    return f"summary:{session_id}"
