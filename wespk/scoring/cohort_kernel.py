"""The compiled per-row kernel of :mod:`wespk.scoring.cohort_search` (numba, an optional package).

Its own module, with the functions at module level, so that numba's on-disk cache (``cache=True``,
``__pycache__`` next to this file) is reused by every process: defined inside a function and calling
another jitted closure, the kernel missed the cache and was compiled again (about 1.5 s) in each process.
Imported only by :func:`wespk.scoring.cohort_search._kernel`, which falls back to the exact path without
numba.
"""

import numba
import numpy as np

#: Histogram bins over [-2, 2) for the search scores (width 2**-10, the bf16 spacing just above 0.125).
HISTOGRAM_BINS = 4096


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def exact_dot(a, b):
    # a and b hold integers below 2**26 in magnitude: every product and partial sum is an integer below
    # 2**53, exact in float64, so the order of the additions (vectorised here) does not matter
    total = 0.0
    for k in range(a.shape[0]):
        total += a[k] * np.float64(b[k])
    return total


#: Candidates rescored together: their dot products with the row share one pass over its components, and
#: the eight cohort rows are fetched side by side (about 1.5x faster than one at a time on AVX-512).
GROUP = 8


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def exact_dots8(a, cohort, index, start, out, scale):
    # exact_dot of ``a`` with the cohort rows index[start:start + 8], times ``scale``, rounded to float32
    b0, b1, b2, b3 = (cohort[index[start]], cohort[index[start + 1]], cohort[index[start + 2]],
                      cohort[index[start + 3]])
    b4, b5, b6, b7 = (cohort[index[start + 4]], cohort[index[start + 5]], cohort[index[start + 6]],
                      cohort[index[start + 7]])
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0
    for k in range(a.shape[0]):
        x = a[k]
        t0 += x * np.float64(b0[k])
        t1 += x * np.float64(b1[k])
        t2 += x * np.float64(b2[k])
        t3 += x * np.float64(b3[k])
        t4 += x * np.float64(b4[k])
        t5 += x * np.float64(b5[k])
        t6 += x * np.float64(b6[k])
        t7 += x * np.float64(b7[k])
    out[start] = np.float32(t0 * scale)
    out[start + 1] = np.float32(t1 * scale)
    out[start + 2] = np.float32(t2 * scale)
    out[start + 3] = np.float32(t3 * scale)
    out[start + 4] = np.float32(t4 * scale)
    out[start + 5] = np.float32(t5 * scale)
    out[start + 6] = np.float32(t6 * scale)
    out[start + 7] = np.float32(t7 * scale)


#: One score in this many is sampled for the guess of the threshold.
SAMPLE_STRIDE = 8


@numba.njit(nogil=True, cache=True)
def _bin(value, per_unit):
    return min(max(int((value + 2.0) * per_unit), 0), HISTOGRAM_BINS - 1)


@numba.njit(nogil=True, cache=True)
def _top_bin(hist, need):
    # the highest bin b with at least ``need`` values in the bins above and at b (0 when there is none),
    # and the number of those values
    seen = 0
    b = HISTOGRAM_BINS - 1
    while b > 0:
        seen += hist[b]
        if seen >= need:
            break
        b -= 1
    return b, seen


@numba.njit(nogil=True, cache=True)
def candidates(search, is_bf16, rows, cohort, top_n, c1, c2, slack, scale, found, counts, taus):
    num, width = search.shape
    bits = np.empty(width, np.uint32)
    row = bits.view(np.float32)
    hist = np.zeros(HISTOGRAM_BINS, np.int64)
    index = np.empty(width, np.int64)
    per_unit = HISTOGRAM_BINS / 4.0
    for i in range(num):
        source = search[i]
        if is_bf16:  # bf16 bit patterns: the high half of the float32 pattern
            for j in range(width):
                bits[j] = np.uint32(np.uint16(source[j])) << 16
        else:
            for j in range(width):
                row[j] = source[j]
        # A guess: the bin above which every SAMPLE_STRIDE-th score reaches twice its share of top_n, less
        # the margins and a few bins. The histogram of the scores at or above the guess (the first
        # ``kept`` entries of ``index``) is the row's histogram in every bin above the guess's bin, so
        # when the threshold below lands above that bin and above the guess, it is the one the whole
        # row gives, and so is the candidate list taken from those scores; otherwise the whole row is
        # histogrammed. Either way the result is that of the whole row; the guess only saves work.
        hist[:] = 0
        for j in range(0, width, SAMPLE_STRIDE):
            hist[_bin(row[j], per_unit)] += 1
        g = _top_bin(hist, 2 * top_n // SAMPLE_STRIDE + 4)[0]
        g_lo = g / per_unit - 2.0
        guess = g_lo - (c1 + 2 * c2 * abs(g_lo)) - slack - 8.0 / per_unit
        kept = 0
        for j in range(width):
            index[kept] = j
            kept += row[j] >= guess
        hist[:] = 0
        for q in range(kept):
            hist[_bin(row[index[q]], per_unit)] += 1
        b, seen = _top_bin(hist, top_n)
        # every value in bins >= b is >= the bin's lower edge (less a hair for the rounding of the bin
        # computation): at least top_n search scores are >= t_lo
        t_lo = b / per_unit - 2.0 - 2.0 ** -30
        tau = t_lo - (c1 + 2 * c2 * abs(t_lo)) - slack  # one more output rounding: slack for the check
        if seen >= top_n and tau >= guess and b > int((guess + 2.0) * per_unit):
            count = 0
            for q in range(kept):
                j = index[q]
                index[count] = j
                count += row[j] >= tau
        else:
            hist[:] = 0
            for j in range(width):
                hist[_bin(row[j], per_unit)] += 1
            b = _top_bin(hist, top_n)[0]
            t_lo = b / per_unit - 2.0 - 2.0 ** -30
            tau = t_lo - (c1 + 2 * c2 * abs(t_lo)) - slack
            count = 0
            for j in range(width):
                index[count] = j
                count += row[j] >= tau
        a = rows[i]
        out = found[i]
        grouped = count - count % GROUP
        for j in range(0, grouped, GROUP):
            exact_dots8(a, cohort, index, j, out, scale)
        for j in range(grouped, count):
            out[j] = np.float32(exact_dot(a, cohort[index[j]]) * scale)
        counts[i] = count
        taus[i] = tau
