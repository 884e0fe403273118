"""One LangGraph turn per checkpointer; an entry point into ``luminora-redis bench langgraph``.

    python -m benchmarks.bench_langgraph [--quick] [--url redis://...] [--json FILE]

luminora-redis's ``LuminoraCheckpointSaver`` against ``langgraph-checkpoint-redis``'s
``AsyncRedisSaver`` (RedisJSON + RediSearch: the bench extra's private server has them)
and LangGraph's ``InMemorySaver`` as the floor; see ``luminora_redis.bench.langgraph``.
"""

from __future__ import annotations

import sys

from luminora_redis.bench.cli import bench

if __name__ == "__main__":
    bench.main(["langgraph", *sys.argv[1:]], prog_name="python -m benchmarks.bench_langgraph")
