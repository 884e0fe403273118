"""``python -m examples.chat_server``: serve the example on http://127.0.0.1:8000.

Uses ``REDIS_URL`` when it is set (with ``--cluster``, or ``REDIS_CLUSTER=1``, when
it names a node of a Redis Cluster); otherwise it starts a private redis-server on a
free loopback port (as ``luminora-redis demo`` does), or with ``--cluster`` a private
3-primary Redis Cluster, and stops it on exit.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from examples.chat_server.app import create_app, env_flag
from luminora_redis.testing import LocalCluster, RedisServer, find_redis_server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--cluster", action="store_true",
                        help="REDIS_URL names a node of a Redis Cluster (or set REDIS_CLUSTER=1); "
                             "without REDIS_URL, start a private cluster")
    args = parser.parse_args()
    cluster = args.cluster or env_flag("REDIS_CLUSTER")
    url = os.environ.get("REDIS_URL")
    if url:
        uvicorn.run(create_app(url, cluster=cluster), host=args.host, port=args.port)
        return
    if find_redis_server() is None:
        raise SystemExit("redis-server is not installed; install it or set REDIS_URL=redis://...")
    with LocalCluster() if cluster else RedisServer() as private:
        what = "3-primary Redis Cluster" if cluster else "redis-server"
        print(f"started a private {what} on {private.url}", flush=True)
        uvicorn.run(create_app(private.url, cluster=cluster), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
