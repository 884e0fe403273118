"""The chat-turn comparison; an entry point into ``luminora-redis bench turn``.

    python -m benchmarks.bench_chat_turn [--quick] [--systems ...] [--json FILE] ...
"""

from __future__ import annotations

import sys

from luminora_redis.bench.cli import bench

if __name__ == "__main__":
    bench.main(["turn", *sys.argv[1:]], prog_name="python -m benchmarks.bench_chat_turn")
