"""Private local Redis for tests and demos: one server, a real cluster, Sentinel, and a
pytest plugin.

`RedisServer`, `LocalCluster` and `LocalSentinel` start real ``redis-server``
processes on free loopback ports; ``RedisServer(tls=True)`` speaks only TLS, with a
throwaway CA (`make_tls_files`). The pytest plugin (`luminora_redis.testing.plugin`, registered
as the ``luminora_redis`` ``pytest11`` entry point) turns them into fixtures
for the test suites of applications built on luminora-redis. Nothing here is
needed at run time by the stores or the listener.
"""

from luminora_redis.testing.cluster import LocalCluster
from luminora_redis.testing.local import POLL_INTERVAL, RedisServerError, find_redis_server, free_port
from luminora_redis.testing.sentinel import LocalSentinel
from luminora_redis.testing.server import RedisServer
from luminora_redis.testing.tls import TLSFiles, make_tls_files

__all__ = [
    "POLL_INTERVAL",
    "LocalCluster",
    "LocalSentinel",
    "RedisServer",
    "RedisServerError",
    "TLSFiles",
    "find_redis_server",
    "free_port",
    "make_tls_files",
]
