"""``python -m examples.chat_server``: serve the example on http://127.0.0.1:8000.

Uses ``REDIS_URL`` when it is set; otherwise it starts a private redis-server
on a free loopback port (as ``luminora-redis demo`` does) and stops it on exit.
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from examples.chat_server.app import create_app
from luminora_redis.testing import RedisServer, find_redis_server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.chat_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    url = os.environ.get("REDIS_URL")
    if url:
        uvicorn.run(create_app(url), host=args.host, port=args.port)
        return
    if find_redis_server() is None:
        raise SystemExit("redis-server is not installed; install it or set REDIS_URL=redis://...")
    with RedisServer() as server:
        print(f"started a private redis-server on {server.url}", flush=True)
        uvicorn.run(create_app(server.url), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
