"""The chart: turns/s against concurrency, one line per system (matplotlib, from the
``bench`` extra)."""

from __future__ import annotations

from typing import Any


def draw(results: dict[str, Any], path: str) -> None:
    """Write the turn results' chart to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    concurrency = results["options"]["concurrency"]
    figure, axes = plt.subplots(figsize=(11, 5.5), dpi=120)
    for system in results["systems"]:
        if not system["ran"]:
            continue
        xs = [c for c in concurrency if str(c) in system["throughput"]]
        ys = [system["throughput"][str(c)]["turns_per_s"] for c in xs]
        style = "--" if system["api"] == "blocking" else "-"
        axes.plot(xs, ys, style, marker="o", label=system["label"])
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(concurrency, [str(c) for c in concurrency])
    axes.set_xlabel("concurrency (asyncio tasks, or threads for blocking APIs: dashed)")
    axes.set_ylabel("chat turns / s (median of rounds)")
    axes.set_title("One chat turn: append 2 messages, refresh expiry, read the last 10")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
