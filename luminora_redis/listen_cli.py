"""``python -m luminora_redis.listen_cli``: the same as ``luminora-redis listen``."""

from luminora_redis.cli.listen import listen

__all__ = ["listen"]

if __name__ == "__main__":
    listen(prog_name="luminora-redis listen")
