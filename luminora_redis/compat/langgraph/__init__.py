"""LangGraph persistence on luminora-redis (the ``luminora-redis[langgraph]`` extra): a
checkpointer whose threads are sessions, and a store whose namespaces start with the
user id. See ``LuminoraCheckpointSaver`` and ``LuminoraStore``.
"""

from luminora_redis.compat.langgraph.saver import LuminoraCheckpointSaver
from luminora_redis.compat.langgraph.store import LuminoraStore

__all__ = ["LuminoraCheckpointSaver", "LuminoraStore"]
