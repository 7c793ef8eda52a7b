"""Row-parallel helper: every row once, results independent of the thread count, errors raised."""

import os
import threading
import time

import numpy as np
import pytest

from wespk.utils.parallel import for_row_ranges, ordered_map, usable_cores


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("num_rows,step", [(0, 4), (1, 4), (10, 3), (12, 4), (5, 100)])
def test_every_row_once(threads, num_rows, step):
    visits = np.zeros(num_rows, dtype=np.int64)
    ranges = []

    def work(start, stop):
        ranges.append((start, stop))
        visits[start:stop] += 1

    for_row_ranges(num_rows, step, work, threads)
    assert (visits == 1).all()
    assert all(0 <= a < b <= num_rows and b - a <= step for a, b in ranges)
    assert len(ranges) == -(-num_rows // step)


def test_error_in_a_range_is_raised():
    def work(start, stop):
        if start <= 7 < stop:
            raise ValueError(f"bad row in {start}:{stop}")

    with pytest.raises(ValueError, match="bad row in 6:9"):
        for_row_ranges(20, 3, work, threads=2)


def test_usable_cores_follow_the_affinity():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    assert usable_cores() == len(os.sched_getaffinity(0))
    # the thread count used by default is the usable cores, capped by the number of ranges
    seen = set()
    for_row_ranges(64, 1, lambda start, stop: seen.add(threading.get_ident()))
    assert 1 <= len(seen) <= usable_cores()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_ordered_map_keeps_order_and_runs_ahead_boundedly(threads):
    drawn = []
    done = []
    lock = threading.Lock()

    def items():
        for i in range(40):
            drawn.append(i)
            yield i

    def work(i):
        time.sleep(0.002 * ((7 * i) % 5))  # later items often finish first
        with lock:
            done.append(i)
        return i * i, threading.get_ident()

    results = []
    for value, ident in ordered_map(work, items(), threads):
        results.append(value)
        assert len(drawn) <= len(results) + threads  # never more than `threads` items ahead
    assert results == [i * i for i in range(40)]
    if threads == 1:
        assert done == list(range(40))


def test_ordered_map_raises_at_the_failing_items_turn_and_stops_early():
    def work(i):
        if i == 5:
            raise ValueError("item 5")
        return i

    seen = []
    with pytest.raises(ValueError, match="item 5"):
        for value in ordered_map(work, range(100), 2):
            seen.append(value)
    assert seen == [0, 1, 2, 3, 4]
    started = []
    generator = ordered_map(lambda i: started.append(i) or i, range(1000), 2)
    assert [next(generator) for _ in range(3)] == [0, 1, 2]
    generator.close()  # a consumer that stops: the rest is neither drawn nor worked on
    assert len(started) <= 6
