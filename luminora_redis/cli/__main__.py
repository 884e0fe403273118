"""``python -m luminora_redis.cli``: the console script."""

from luminora_redis.cli import main

main(prog_name="luminora-redis")
