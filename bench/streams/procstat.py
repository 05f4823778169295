"""What each benchmark consumer reports about its own process (shared by quills' script and the peers')."""

from __future__ import annotations

import resource


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set in MB (``VmHWM``).

    Not ``ru_maxrss``: Linux carries the forking parent's peak over ``exec``, so a consumer started by the
    harness (which holds the events in memory) would report the harness's size.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0
