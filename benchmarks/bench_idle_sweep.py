"""Idle sweep cost: redis-server CPU of 0, 1, 2 and 4 idle listeners (default settings,
1024 buckets, nothing due) on a private redis-server, as % of one core (INFO
used_cpu_sys + used_cpu_user over the window, default 10 s). Public API only, so the
same file measures an older checkout: ``PYTHONPATH=<checkout> python
benchmarks/bench_idle_sweep.py [seconds]``.
"""

import asyncio
import sys
import time

import redis

import luminora_redis
from luminora_redis import ExpiryListener, SessionStore
from luminora_redis.testing import RedisServer

print("code:", luminora_redis.__file__, file=sys.stderr)

def evalsha(probe: redis.Redis) -> int:
    return int(probe.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


async def measure(url: str, n: int, seconds: float) -> tuple[float, float]:
    stores = [SessionStore.from_url(url, buckets=1024, prefix="idle") for _ in range(n)]
    group = [ExpiryListener(s) for s in stores]
    tasks = [asyncio.create_task(listener.run()) for listener in group]
    probe = redis.Redis.from_url(url)
    for listener in group:
        await asyncio.wait_for(listener.started.wait(), 30)
    await asyncio.sleep(2)
    c0, e0 = probe.info("cpu"), evalsha(probe)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    el = time.monotonic() - t0
    c1, e1 = probe.info("cpu"), evalsha(probe)
    for listener in group:
        await listener.stop()
    await asyncio.gather(*tasks)
    for store in stores:
        await store.aclose()
    probe.close()
    cpu = sum(float(c1[k]) - float(c0[k]) for k in ("used_cpu_sys", "used_cpu_user"))
    return 100 * cpu / el, (e1 - e0) / el

async def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    with RedisServer() as server:
        for n in (0, 1, 2, 4):
            cpu, ev = await measure(server.url, n, seconds)
            print(f"{n} listener(s): redis-server CPU {cpu:.2f} % of one core, "
                  f"EVALSHA/s {ev:,.0f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
