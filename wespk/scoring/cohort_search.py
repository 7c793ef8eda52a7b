"""Exact top-N cohort scores found by a low-precision search and an exact rescoring of the candidates.

:mod:`wespk.scoring.score_norm` defines the cohort statistics from exact
scores (unit vectors on the grid of multiples of ``2**-26``, exact float64
products, each score rounded to float32). Computing every exact score costs a
float64 matrix product; the statistics of AS-norm need only the ``top_n``
highest. This module finds them with a cheap product and proves it did:

1. ``s_hat``, an approximate score of every (row, cohort) pair: a bf16 matrix
   product with float32 accumulation where the CPU has native bf16 (AVX512-BF16
   or AMX), else a float32 product. Its error has a rigorous bound for any
   summation order, blocking or FMA use:
   ``|s_hat - s| <= c1 + c2 * |s_hat|`` with
   ``c1 = ((2 u + u**2) + g (1 + u)**2) * max|a| * max|b|`` (``u`` the unit
   roundoff of the inputs' format, ``g = gamma(2 dim)`` of float32 for the
   accumulation, by ``sum |a_k b_k| <= |a| |b|``) and ``c2`` the relative
   rounding of the output (bf16 output: ``2**-8 / (1 - 2**-8)``; float32: 0).
2. Per row, a histogram of ``s_hat`` gives ``t_lo``, a value with at least
   ``top_n`` scores at or above it, so ``t_lo <= t_N``, the ``top_n``-th
   highest ``s_hat``. The candidates are the columns with
   ``s_hat >= tau = t_lo - (c1 + c2 |t_lo|) - slack``.
3. The candidates' exact scores (integer grid vectors, exact float64 dot
   products) are rounded to float32 and the ``top_n`` highest kept. Every
   column left out has ``s_hat < tau``, hence an exact score below
   ``U = tau + c1 + c2 |tau|``; if the ``top_n``-th kept value is at least
   ``float32(U)`` (rounding is monotone), no column left out can enter the
   top N with a larger value, so the kept values are the top N of the whole
   row, value for value. A row that fails this check (rare: the margin is
   ``slack`` plus the distance from ``t_lo`` to ``t_N``) is computed by the
   exact path.

The result is therefore the same multiset of float32 values as the exact
path's, and the statistics (taken by the same function from the sorted
values) are the same bits. The per-row work (histogram, candidate list,
exact rescoring) is a small compiled kernel (numba, an optional package: the
callers use the exact path without it); on a torch device the same steps run
as tensor operations.
"""

import functools
import importlib
import logging
import math
import threading
from typing import Callable, Optional, Tuple

import numpy as np

from wespk.utils.parallel import for_row_ranges

logger = logging.getLogger(__name__)

#: Added to the candidate margin so that the a-posteriori check almost never fails (a row that fails is
#: recomputed exactly). 1e-3 adds about 1 % more candidates on a 5,994-speaker cohort.
SEARCH_SLACK = 1e-3
#: Rows per task of the kernel.
KERNEL_ROWS = 256
BF16_UNIT = 2.0 ** -8
FP32_UNIT = 2.0 ** -24


def search_error_bound(input_unit: float, output_unit: float, dim: int, norm_a: float,
                       norm_b: float) -> Tuple[float, float]:
    """``(c1, c2)`` with ``|s_hat - s| <= c1 + c2 |s_hat|`` for a product whose inputs are rounded with
    unit roundoff ``input_unit``, accumulated in float32 in any order, output rounded with ``output_unit``.

    ``norm_a`` / ``norm_b`` bound the L2 norms of the exact rows. The float32 accumulation bound is taken
    for ``2 dim`` roundings (any pairing or blocking of the ``dim`` products).
    """
    u = input_unit
    steps = 2 * dim
    gamma = steps * FP32_UNIT / (1 - steps * FP32_UNIT)
    c1 = ((2 * u + u * u) + gamma * (1 + u) ** 2) * norm_a * norm_b
    c2 = output_unit / (1 - output_unit) if output_unit else 0.0
    # the few float64 operations that evaluate the margins round too: a relative 1e-9 covers them
    return c1 * (1 + 1e-9), c2 * (1 + 1e-9)


def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises AVX512-BF16 or AMX-BF16 (Linux ``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@functools.lru_cache(maxsize=1)
def _kernel():
    """The compiled per-row kernel (:mod:`wespk.scoring.cohort_kernel`), or None when numba is not installed."""
    try:
        from wespk.scoring import cohort_kernel
    except ImportError:
        return None
    return cohort_kernel.candidates


def warm_up_kernel(kernel, bf16: bool) -> None:
    """Call the kernel once on a tiny block with the argument types of :meth:`CohortSearch.block_stats`
    (bf16 or float32 search scores), so that loading its code is not paid by the first real block."""
    search = np.zeros((2, 4), dtype=np.int16 if bf16 else np.float32)
    found = np.zeros((2, 4), dtype=np.float32)
    kernel(search, bf16, np.zeros((2, 2)), np.zeros((4, 2), dtype=np.int32), 1, 0.0, 0.0, SEARCH_SLACK, 1.0, found,
           np.zeros(2, dtype=np.int64), np.zeros(2))


class Preload:
    """What :func:`preload_in_background` started: ``numba`` (the kernel) first, then ``torch`` (for bf16).

    ``kernel_loaded()`` blocks until the kernel is importable; ``bf16_ready()`` says, without blocking,
    whether torch has been imported (until then the search runs in float32 with numpy: the same result).
    """

    def __init__(self):
        self._kernel = threading.Event()
        self._torch = threading.Event()
        self._thread = threading.Thread(target=self._work, name="cohort-search-preload", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            kernel = _kernel()
            if kernel is not None:  # the first call loads the machine code from numba's cache (half a second)
                warm_up_kernel(kernel, cpu_has_native_bf16())
            self._kernel.set()
            if cpu_has_native_bf16():
                importlib.import_module("torch")
                self._torch.set()
        except Exception:  # noqa: BLE001 - raised again, with its traceback, where the main thread imports
            pass
        finally:
            self._kernel.set()

    def kernel_loaded(self) -> None:
        self._kernel.wait()

    def bf16_ready(self) -> bool:
        return self._torch.is_set()


def preload_in_background() -> Preload:
    """Start importing what the search needs (numba and its cached kernel, then torch for bf16) in a thread.

    The imports take about a second; a caller that reads its input files meanwhile waits for the kernel
    only (:meth:`Preload.kernel_loaded`) and passes :meth:`Preload.bf16_ready` to :class:`CohortSearch`,
    which searches in float32 until torch is there. Errors are left for the main thread to meet.
    """
    return Preload()


def kernel_available() -> bool:
    """True when the compiled candidate kernel can be used (numba is installed)."""
    return _kernel() is not None


def checked_top(found: np.ndarray, counts: np.ndarray, taus: np.ndarray, top_n: int, c1: float,
                c2: float) -> Tuple[np.ndarray, np.ndarray]:
    """The ``top_n`` highest candidate scores per row, sorted ascending, and whether each row is proven.

    ``found[i, :counts[i]]`` are the exact float32 scores of row ``i``'s candidates (its columns with a
    search score ``>= taus[i]``). A row is proven when its ``top_n``-th value is at least the float32
    rounding of the largest exact score a column left out can have.
    """
    # at least top_n columns: a row with fewer candidates (possible only with a negative slack) keeps -inf
    # among its top values, so its check fails and it is recomputed
    width = max(int(counts.max()), top_n)
    block = found[:, :width]
    block[np.arange(width)[None, :] >= counts[:, None]] = -np.inf
    top = np.sort(block, axis=1)[:, width - top_n:]
    taus = np.asarray(taus, dtype=np.float64)
    ceiling = (taus + (c1 + c2 * np.abs(taus)) + 1e-12).astype(np.float32)
    return top, top[:, 0] >= ceiling


class CohortSearch:
    """The search product of one cohort and the kernel that turns it into exact top-N scores (CPU)."""

    def __init__(self, grid_cohort: np.ndarray, grid_bits: int, top_n: int,
                 bf16_ready: Optional[Callable[[], bool]] = None):
        """``bf16_ready`` (optional) says whether torch may be used yet on a CPU with native bf16 (a block
        searched before that runs in float32; the statistics are the same); without it torch is imported
        here when the CPU has native bf16."""
        self.top_n = top_n
        self.width = grid_cohort.shape[0]
        self.units = float(2 ** grid_bits)
        self.scale = 2.0 ** (-2 * grid_bits)
        self.cohort_int = np.rint(grid_cohort * self.units).astype(np.int32)
        cohort_norm = float(np.sqrt((grid_cohort * grid_cohort).sum(axis=1)).max())
        self.dim = grid_cohort.shape[1]
        self._grid_cohort = grid_cohort
        self._has_bf16 = cpu_has_native_bf16()
        self._bf16_ready = bf16_ready if bf16_ready is not None else (lambda: True)
        self._bf16 = None  # (torch, cohort as bf16 [dim, C]) once bf16 is in use
        # rows and cohort go float64 -> float32 -> bf16: two roundings, within 2**-8 + 2**-23
        self.bf16_margin = search_error_bound(BF16_UNIT + 2 * FP32_UNIT, BF16_UNIT, self.dim, 1.0, cohort_norm)
        self.fp32_margin = search_error_bound(FP32_UNIT, 0.0, self.dim, 1.0, cohort_norm)
        self.cohort_search = np.ascontiguousarray(grid_cohort.T.astype(np.float32))
        self._candidates = _kernel()
        self._found = None
        self._search_out = {}
        if self._has_bf16 and bf16_ready is None:
            self._start_bf16()

    def _start_bf16(self) -> None:
        import torch

        self._bf16 = (torch, torch.from_numpy(self._grid_cohort.astype(np.float32)).to(torch.bfloat16).T)
        logger.debug("cohort search in bf16, margin %.3g + %.3g |s|", *self.bf16_margin)

    @property
    def bf16(self) -> bool:
        """Whether the next block is searched in bf16."""
        if self._bf16 is None and self._has_bf16 and self._bf16_ready():
            self._start_bf16()
        return self._bf16 is not None

    def _buffer(self, kind: str, num: int, make):
        # kept across blocks, like the candidate buffer (page faults of a fresh output cost 30 % of the product)
        buffer = self._search_out.get(kind)
        if buffer is None or len(buffer) < num:
            buffer = self._search_out[kind] = make(num)
        return buffer[:num]

    def search_scores(self, grid_rows: np.ndarray, bf16: Optional[bool] = None) -> np.ndarray:
        """Approximate scores of ``grid_rows`` against the cohort (bf16 bit patterns as int16, or float32)."""
        num = grid_rows.shape[0]
        if self.bf16 if bf16 is None else bf16:
            torch, cohort = self._bf16
            out = self._buffer("bf16", num, lambda n: torch.empty((n, self.width), dtype=torch.bfloat16))
            rows = torch.from_numpy(grid_rows.astype(np.float32)).to(torch.bfloat16)
            torch.mm(rows, cohort, out=out)
            return out.view(torch.int16).numpy()
        out = self._buffer("fp32", num, lambda n: np.empty((n, self.width), dtype=np.float32))
        return np.matmul(grid_rows.astype(np.float32), self.cohort_search, out=out)

    def block_stats(self, grid_rows: np.ndarray, stats: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]],
                    threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, std, proven)`` of ``grid_rows``: ``stats`` of each proven row's sorted top scores
        (:func:`checked_top`); rows not proven hold NaN and must be computed exactly.

        The search product runs on torch's or BLAS's threads, the rest (kernel, sort, check, statistics) on
        ``threads`` Python threads, a range of rows each (numba and numpy release the GIL).
        """
        bf16 = self.bf16
        search = self.search_scores(grid_rows, bf16)
        num = grid_rows.shape[0]
        c1, c2 = self.bf16_margin if bf16 else self.fp32_margin
        c1 *= float(np.sqrt((grid_rows * grid_rows).sum(axis=1)).max())  # c1 scales with max |a|
        rows_int = grid_rows * self.units  # exact: integers in float64
        if self._found is None or len(self._found) < num:
            # kept across blocks: a fresh [rows, C] buffer per block costs more in page faults than the kernel
            self._found = np.empty((num, self.width), dtype=np.float32)
        found = self._found[:num]
        counts = np.empty(num, dtype=np.int64)
        taus = np.empty(num, dtype=np.float64)
        mean = np.full(num, np.nan)
        std = np.full(num, np.nan)
        proven = np.empty(num, dtype=bool)

        def run(lo: int, hi: int) -> None:
            self._candidates(search[lo:hi], bf16, rows_int[lo:hi], self.cohort_int, self.top_n, c1, c2,
                             SEARCH_SLACK, self.scale, found[lo:hi], counts[lo:hi], taus[lo:hi])
            top, ok = checked_top(found[lo:hi], counts[lo:hi], taus[lo:hi], self.top_n, c1, c2)
            proven[lo:hi] = ok
            rows = np.flatnonzero(ok)
            mean[lo + rows], std[lo + rows] = stats(top[rows])

        for_row_ranges(num, KERNEL_ROWS, run, threads)
        return mean, std, proven


def torch_top_scores(grid_rows, grid_cohort, cohort_search, top_n: int, c1: float,
                     chunk_elements: int = 1 << 23) -> Tuple[np.ndarray, np.ndarray]:
    """The same steps as :class:`CohortSearch` with torch tensors on any device (for GPUs).

    ``grid_rows`` ``[R, dim]`` and ``grid_cohort`` ``[C, dim]`` are float64 grid vectors on the device,
    ``cohort_search`` their float32 ``[dim, C]`` copy; the search is a float32 product (whatever the
    backend does with it: ``c1`` must cover inputs rounded to 8 significant bits, which includes TF32 and
    bf16 with float32 accumulation). The N-th highest search score comes from ``topk``; the candidates'
    exact scores are products of gathered rows, a piece of ``chunk_elements`` numbers at a time.
    """
    import torch

    search = grid_rows.float() @ cohort_search
    t_n = search.topk(top_n, dim=1).values[:, -1].double()
    taus = t_n - c1 - SEARCH_SLACK
    counts = (search.double() >= taus[:, None]).sum(1)
    width = max(int(counts.max()), top_n)
    values, index = search.topk(width, dim=1)
    num, dim = grid_rows.shape
    found = torch.empty((num, width), dtype=torch.float32, device=grid_rows.device)
    step = max(1, chunk_elements // max(1, width * dim))
    for lo in range(0, num, step):
        hi = min(num, lo + step)
        exact = (grid_cohort[index[lo:hi]] * grid_rows[lo:hi, None, :]).sum(-1)  # exact in any order
        found[lo:hi] = exact.float()
    found[values.double() < taus[:, None]] = -math.inf
    top = found.topk(top_n, dim=1).values.cpu().numpy()
    top = np.sort(top, axis=1)
    ceiling = (taus.cpu().numpy() + c1 + 1e-12).astype(np.float32)
    return top, top[:, 0] >= ceiling

