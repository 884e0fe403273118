"""``luminora-redis bench``: luminora-redis next to the hand-written floor and the peer
session stores, on one Redis, with interleaved rounds.

One module per job: ``workload`` (the turn every system runs), ``systems`` (the common
interface, luminora-redis and the floor), ``peers`` (the other libraries), ``legacy``
(LuminoraCore's own Redis backend), ``servers`` (private redis-servers), ``metrics``
(what the server counts), ``runner`` (rounds and trials), ``report`` (JSON and
Markdown), ``chart`` (matplotlib), ``archive`` (expiry-to-archive lag) and ``cli``.
"""
