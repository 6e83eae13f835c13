"""Keeping other processes out of the benchmark figures: measure what the rest of the machine uses, wait for a
quiet moment before a measurement, and measure a disturbed one again, within an allowance of seconds."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

DISTURBED, RETRIES = 0.3, 2  # a pair during which others used > DISTURBED cores is measured again, RETRIES times


def cpu_sample(own_extra: Callable[[], float] = lambda: 0.0) -> tuple[float, float, float] | None:
    """(machine busy CPU s from /proc/stat, CPU s of this process, its children and `own_extra()`, clock);
    None without /proc."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    own = os.times()
    mine = own.user + own.system + own.children_user + own.children_system + own_extra()
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK"), mine, time.perf_counter()


def other_cores(begin, own_extra: Callable[[], float] = lambda: 0.0) -> float | None:
    """Cores that other processes used since `begin` (a cpu_sample); None without /proc."""
    end = cpu_sample(own_extra)
    if begin is None or end is None:
        return None
    return max(0.0, ((end[0] - begin[0]) - (end[1] - begin[1])) / max(end[2] - begin[2], 1e-9))


class Noise:
    """Quiet-waits before pairs and re-runs of disturbed pairs, within an overall allowance of seconds."""

    def __init__(self, wait_s: float, log, allowance_s: float = 90.0,
                 own_extra: Callable[[], float] = lambda: 0.0):
        self.wait_s, self.log, self.left, self.own_extra = wait_s, log, allowance_s, own_extra

    def sample(self):
        return cpu_sample(self.own_extra)

    def others(self, begin) -> float | None:
        return other_cores(begin, self.own_extra)

    def before(self, threshold: float = 0.25) -> None:
        """Wait (at most wait_s) until other processes use under `threshold` cores over 0.5 s."""
        if self.wait_s > 0 and self.left <= 0:
            self.log("    (allowance for waiting out other processes spent; no more waits or re-runs)")
            self.wait_s = 0.0
        started = time.perf_counter()
        while self.wait_s > 0:
            begin = self.sample()
            time.sleep(0.5)
            load = self.others(begin)
            if load is None or load < threshold or time.perf_counter() - started >= self.wait_s:
                break
            self.log(f"    (other processes use {load:.2f} cores; waiting for a quieter moment)")
            time.sleep(1.0)
        self.left -= max(0.0, time.perf_counter() - started - 0.5)  # 0.5 s: the probe itself

    def disturbed(self, other: float | None, spent: float) -> bool:
        """Whether to measure the pair again (others used too much CPU during it)."""
        again = self.wait_s > 0 and other is not None and other >= DISTURBED
        if again:
            self.log(f"    (other processes used {other:.2f} cores during the pair; measuring it again)")
            self.left -= spent
        return again
