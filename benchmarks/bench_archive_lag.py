"""Expiry → archive lag; an entry point into ``luminora-redis bench archive``.

    python -m benchmarks.bench_archive_lag [--quick] [--live 1000000] [--json FILE]
"""

from __future__ import annotations

import sys

from luminora_redis.bench.cli import bench

if __name__ == "__main__":
    bench.main(["archive", *sys.argv[1:]], prog_name="python -m benchmarks.bench_archive_lag")
