"""LangGraph persistence on luminora-redis: a checkpointer whose threads are sessions.

Needs the ``luminora-redis[langgraph]`` extra. See ``LuminoraCheckpointSaver``.
"""

from luminora_redis.compat.langgraph.saver import LuminoraCheckpointSaver

__all__ = ["LuminoraCheckpointSaver"]
