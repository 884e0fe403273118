"""Drop-in layers for LangGraph (the ``luminora-redis[langgraph]`` extra): ``LuminoraStore``,
LangGraph's long-term memory store, whose namespaces start with the user id."""

from luminora_redis.compat.langgraph.store import LuminoraStore

__all__ = ["LuminoraStore"]
