"""What every benchmark needs to time things fairly and say where it ran.

The machine a figure was measured on, how loaded it was, and timings taken
in turns so that load from other processes slows every contender alike (the
figures that matter are ratios against a baseline measured in the same run).
"""

import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Mapping, Optional


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else the platform's machine name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def load_averages() -> str:
    """The 1, 5 and 15-minute load averages, as printed in reports."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def round_robin_seconds(runs: Mapping[str, Callable[[], object]],
                        warmup: Optional[Mapping[str, int]] = None,
                        repeats: int = 3) -> Dict[str, float]:
    """Median wall time per call of each run (:func:`round_robin_times`)."""
    return {name: statistics.median(t) for name, t in round_robin_times(runs, warmup, repeats).items()}


def paired_ratios(times: Mapping[str, List[float]], numerator: str, denominator: str) -> List[float]:
    """``times[numerator][r] / times[denominator][r]`` for every round ``r`` of :func:`round_robin_times`.

    Two runs that are neighbours in the round order are timed seconds apart, so the ratio within a round
    cancels most of the load of other processes, which moves from one round to the next; the median of
    these ratios is steadier than the ratio of the medians."""
    return [a / b for a, b in zip(times[numerator], times[denominator])]


def round_robin_times(runs: Mapping[str, Callable[[], object]],
                      warmup: Optional[Mapping[str, int]] = None,
                      repeats: int = 3) -> Dict[str, List[float]]:
    """The wall time of every timed call of each run, round by round.

    The runs are timed in turns (one call of each per round, ``repeats``
    rounds, after ``warmup[name]`` untimed calls, default 0), so load from
    other processes affects them alike and their ratios stay meaningful.
    Every other round runs them in the reverse order, so that no run always
    follows the same neighbour (a call right after one that freed gigabytes
    pays for faulting memory back in; with a fixed order that cost lands on
    the same contender every round).
    """
    warmup = warmup or {}
    for name, run in runs.items():
        for _ in range(warmup.get(name, 0)):
            run()
    times: Dict[str, List[float]] = {name: [] for name in runs}
    order = list(runs.items())
    for round_index in range(repeats):
        for name, run in (order if round_index % 2 == 0 else order[::-1]):
            begin = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - begin)
    return times


def in_fresh_process(function, *args):
    """``function(*args)`` in a new (spawned) Python process, so that its allocator and thread
    pools start as any script's would; returns its result, raises its exception."""
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()
