"""Row-parallel numpy work on the cores this process may use.

numpy releases the GIL in its copy, partition and reduction loops, so a few
Python threads working on disjoint row ranges of one array use several cores
without the start-up of torch or of worker processes.
"""

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def for_row_ranges(num_rows: int, step: int, work: Callable[[int, int], None],
                   threads: Optional[int] = None) -> None:
    """Call ``work(start, stop)`` for consecutive ranges of ``step`` rows covering ``num_rows``,
    on ``threads`` threads (default: the usable cores). The ranges are disjoint, so ``work`` may
    write its rows of a shared output; an exception in any range is raised here."""
    starts = range(0, num_rows, max(1, step))
    threads = min(threads or usable_cores(), len(starts))
    if threads <= 1:
        for start in starts:
            work(start, min(start + step, num_rows))
        return
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, start, min(start + step, num_rows)) for start in starts]:
            future.result()


def ordered_map(work: Callable[[T], R], items: Iterable[T], threads: Optional[int] = None) -> Iterator[R]:
    """``work(item)`` for each item, in the items' order, computed on ``threads`` threads (default: the
    usable cores) a few items ahead of the consumer.

    For work that spends its time in numpy or compiled code releasing the GIL
    (parsing the pieces of a score file). ``items`` is drawn in the caller's thread, never more than
    ``threads`` items beyond those yielded, so memory stays that of a few items. An
    exception raised by ``work`` is raised here, at that item's turn; items after it may already have been
    worked on, never yielded. With one thread everything runs in the caller's thread.
    """
    threads = threads or usable_cores()
    if threads <= 1:
        for item in items:
            yield work(item)
        return
    pending: deque = deque()
    with ThreadPoolExecutor(threads) as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) > threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the consumer stopped early or an item failed: drop what is not started
            for future in pending:
                future.cancel()
