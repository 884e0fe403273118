"""What the host took from this machine: the hypervisor's steal time, from Linux's
``/proc/stat``.

On a virtual machine whose cores are shared, the hypervisor may run other guests
while this one has work ready; Linux counts that time as steal. A vCPU that is
not running stalls Redis mid-command and the listener mid-pass alike, so a lag
measured while steal is high says more about the host than about the code. The
archive bench reports it beside the lag and the CPU each session cost.
"""

from __future__ import annotations

__all__ = ["CpuTimes", "cpu_times", "parse_cpu_times", "steal_percent"]

#: (steal, total) clock ticks over all CPUs since boot.
CpuTimes = tuple[int, int]


def parse_cpu_times(stat: str) -> CpuTimes | None:
    """The aggregate ``cpu`` line of a ``/proc/stat`` text as (steal, total); None when it
    has no such line (not Linux, or a kernel without a steal field)."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu" and len(fields) >= 9:
            # user nice system idle iowait irq softirq steal [guest guest_nice]: the
            # guest fields are already counted in user and nice.
            ticks = [int(value) for value in fields[1:9]]
            return ticks[7], sum(ticks)
    return None


def cpu_times() -> CpuTimes | None:
    """This machine's (steal, total) ticks now; None where ``/proc/stat`` cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return parse_cpu_times(stat.read())
    except OSError:
        return None


def steal_percent(before: CpuTimes | None, after: CpuTimes | None) -> float | None:
    """The share of all CPU time between two readings that the hypervisor took, in %;
    None when either is missing or no time passed."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])
