"""Side-by-side benchmarks of luminora-redis; run each with ``python -m benchmarks.bench_<name>``.

Never part of the test suite: pytest only collects ``tests/``.
"""
