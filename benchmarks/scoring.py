"""Benchmark the scoring back end at VoxCeleb scale on synthetic embeddings.

python -m benchmarks.scoring [--work_dir DIR] [--scales small,large,xlarge] [--output_md PATH] [--output_json PATH]

(or ``python benchmarks/scoring.py ...`` from the repo root). Three scales,
256-dim embeddings, a cohort of 5,994 speaker means, AS-norm top 300:

* ``small``: 4,874 utterances, 37,611 trials (the size of VoxCeleb1-O)
* ``large``: 145,160 utterances, 579,818 trials (the size of VoxCeleb1-E)
* ``xlarge``: 1,000,000 utterances, 5,000,000 trials (VoxCeleb2-dev size;
  not run by default: about 6 GB of disk and several minutes)

For each scale the real entry points run as subprocesses on files, exactly as
a recipe runs them (``score``, ``score_norm``, ``calibrate train`` on the
calibration list, ``calibrate apply`` on the evaluation list,
``compute_metrics``); wall time (interpreter start and imports included) and
peak resident memory (``ru_maxrss`` of that process, from ``os.wait4`` in a
small launcher process) are measured per process; the launcher adds about
0.05 s to each wall time. The same library functions are then timed in-process
phase by phase (reading, computing, writing), and straightforward baselines
are measured in the same run: a per-trial loop as in WeSpeaker's
``score.py`` / ``score_norm.py`` / ``gather_calibration_factors`` (on a
subsample, extrapolated linearly), the unchunked full-sort cohort statistics
of ``get_mean_std`` (on a subsample of utterances, extrapolated), and a
per-line score-file parser for the metrics.

The calibration list (30,000 trials from ``make_calibration_trials``) is
drawn from the evaluation utterances themselves, and the mean vector is the
mean of the cohort file (``score --mean_from cohort.scp --save_mean``, then
``--mean_vec`` in the later stages, as a recipe does); both only shape the
data, not the timings.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

if __package__ in (None, ""):  # run as ``python benchmarks/scoring.py``: the repo root first on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import cpu_name, load_averages  # noqa: E402
from wespk.io.embeddings import read_embeddings, write_embeddings  # noqa: E402
from wespk.io.files import atomic_output  # noqa: E402
from wespk.utils.logs import setup_logging  # noqa: E402

logger = logging.getLogger("benchmarks.scoring")

REPO = Path(__file__).resolve().parents[1]
SCALES = {
    "small": {"utterances": 4874, "trials": 37611, "speakers": 40},
    "large": {"utterances": 145160, "trials": 579818, "speakers": 1251},
    "xlarge": {"utterances": 1000000, "trials": 5000000, "speakers": 5994},
}
DEFAULT_SCALES = "small,large"
COHORT_SPEAKERS = 5994
TOP_N = 300
DIM = 256
CALIBRATION_ROUNDS = 5000  # 30,000 calibration trials
#: Targets of issue 6 for the large scale (seconds / bytes).
TARGETS = {"score": 4.0, "score_norm": 15.0, "compute_metrics": 1.5}
MEMORY_TARGET = 4 * 1024 ** 3
BASELINE_TRIALS = 20000
#: CPU seconds of the plain fp32 cohort matmul baselines, in the order they ran.
MATMUL_CPU_SECONDS: List[float] = []
BASELINE_UTTERANCES = 2048


@dataclass
class ProcessRun:
    """One entry-point process: its command, wall time and peak resident memory."""

    step: str
    command: List[str]
    wall_seconds: float
    peak_rss_bytes: int
    all_wall_seconds: List[float] = field(default_factory=list)
    cpu_seconds: float = 0.0  # user + system CPU time (median run), less sensitive to other jobs than wall time


@dataclass
class ScaleResult:
    """All figures of one scale."""

    scale: str
    utterances: int
    trials: int
    processes: List[ProcessRun] = field(default_factory=list)
    phases: Dict[str, float] = field(default_factory=dict)
    baselines: Dict[str, float] = field(default_factory=dict)
    ratios: Dict[str, float] = field(default_factory=dict)


def timed(phases: Dict[str, float], name: str, function: Callable, *args, **kwargs):
    """Run ``function`` and store its wall time under ``name``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    phases[name] = time.perf_counter() - start
    logger.info("  %-34s %8.3f s", name, phases[name])
    return result


#: Started with ``python -c``: runs ``python -m <module> <args>`` as its child and reports the child's
#: peak RSS. A process's ru_maxrss starts at its parent's resident size (fork copies the address space,
#: and exec records the old one's high-water mark), so the measured process must be the child of a
#: small process, not of this benchmark, which holds the data of a whole scale in memory.
PEAK_RSS_LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, "-m"] + sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stdout.flush()
print(f"@@peak_rss_kb {usage.ru_maxrss}", flush=True)
print(f"@@cpu_seconds {usage.ru_utime + usage.ru_stime}", flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_entry_point(step: str, module: str, args: List[str], repeats: int = 1) -> ProcessRun:
    """Run ``python -m module args`` ``repeats`` times; the median wall time and the largest peak RSS."""
    command = [sys.executable, "-c", PEAK_RSS_LAUNCHER, module, *[str(a) for a in args]]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    walls, peaks, cpus = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        walls.append(time.perf_counter() - start)
        output = completed.stdout.decode(errors="replace")
        if completed.returncode != 0:
            raise RuntimeError(f"python -m {module} {' '.join(map(str, args))} failed ({completed.returncode}):"
                               f"\n{output}")
        peaks.append([int(line.split()[1]) for line in output.splitlines() if line.startswith("@@peak_rss_kb ")][-1])
        cpus.append([float(line.split()[1]) for line in output.splitlines() if line.startswith("@@cpu_seconds ")][-1])
    run = ProcessRun(step, ["python", "-m", module, *[str(a) for a in args]], float(np.median(walls)),
                     max(peaks) * 1024, walls, cpus[int(np.argsort(walls)[len(walls) // 2])])
    logger.info("  %-34s %8.3f s (median of %d, %s)  cpu %7.2f s  peak %6.0f MB", f"[process] {step}",
                run.wall_seconds, repeats, " ".join(f"{w:.2f}" for w in walls), run.cpu_seconds,
                run.peak_rss_bytes / 2 ** 20)
    return run


# ---------------------------------------------------------------------------------------------
# Synthetic data


def make_data(directory: Path, utterances: int, num_trials: int, speakers: int, seed: int) -> Dict[str, Path]:
    """Write eval embeddings, cohort speaker means, utt2spk, utt2dur, a trial list and a calibration list."""
    from wespk.scoring.calibration_trials import make_calibration_trials

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    offset = 0.8 * rng.standard_normal(DIM)
    speaker_of = np.sort(rng.integers(0, speakers, utterances))
    speaker_of[:speakers] = np.arange(speakers)  # every speaker present
    speaker_of.sort()
    speaker_means = rng.standard_normal((speakers, DIM))
    quality = rng.uniform(0, 1, utterances)
    scale = rng.uniform(0.8, 1.2, utterances) * (0.9 + 0.2 * quality)
    embeddings = ((offset + speaker_means[speaker_of] + (1.6 - quality)[:, None] * rng.standard_normal((utterances, DIM)))
                  * scale[:, None]).astype(np.float32)
    durations = np.maximum(1.0, 2.5 + 22 * quality + rng.uniform(-1, 1, utterances))
    keys = [f"id{spk:05d}/v{i % 7}/{i:06d}.wav" for i, spk in enumerate(speaker_of)]
    cohort = (offset + rng.standard_normal((COHORT_SPEAKERS, DIM)) + 0.3 * rng.standard_normal((COHORT_SPEAKERS, DIM))
              ).astype(np.float32)

    paths = {name: directory / name for name in ("eval.ark", "eval.scp", "cohort.ark", "cohort.scp", "utt2spk",
                                                 "utt2dur", "trials", "cali_trials")}
    write_embeddings(paths["eval.ark"], paths["eval.scp"], zip(keys, embeddings))
    write_embeddings(paths["cohort.ark"], paths["cohort.scp"],
                     ((f"cohort{i:05d}", vector) for i, vector in enumerate(cohort)))
    with atomic_output(paths["utt2spk"]) as f:
        f.writelines(f"{key} id{spk:05d}\n" for key, spk in zip(keys, speaker_of))
    with atomic_output(paths["utt2dur"]) as f:
        f.writelines(f"{key} {dur:.2f}\n" for key, dur in zip(keys, durations))

    # trials: about 10 % targets (another utterance of the same speaker), the rest other speakers
    first_of_speaker = np.searchsorted(speaker_of, np.arange(speakers))
    count_of_speaker = np.bincount(speaker_of, minlength=speakers)
    enroll = rng.integers(0, utterances, num_trials)
    is_target = rng.random(num_trials) < 0.1
    same = first_of_speaker[speaker_of[enroll]] + rng.integers(0, 1 << 30, num_trials) % count_of_speaker[speaker_of[enroll]]
    other = rng.integers(0, utterances, num_trials)
    clash = speaker_of[other] == speaker_of[enroll]
    while clash.any():
        other[clash] = rng.integers(0, utterances, int(clash.sum()))
        clash = speaker_of[other] == speaker_of[enroll]
    test = np.where(is_target, same, other)
    with atomic_output(paths["trials"]) as f:
        f.writelines(f"{keys[a]} {keys[b]} {'target' if t else 'nontarget'}\n"
                     for a, b, t in zip(enroll.tolist(), test.tolist(), is_target.tolist()))
    utt2spk = {key: f"id{spk:05d}" for key, spk in zip(keys, speaker_of)}
    cali = make_calibration_trials(utt2spk, dict(zip(keys, durations.tolist())), rounds=CALIBRATION_ROUNDS, seed=seed)
    with atomic_output(paths["cali_trials"]) as f:
        f.writelines(f"{a} {b} {label}\n" for a, b, label in cali)
    return paths


# ---------------------------------------------------------------------------------------------
# Straightforward baselines (measured, on subsamples where a full run would take minutes)


def baseline_cosine_loop(scp: Path, trials_path: Path, mean_vec: np.ndarray, limit: int) -> float:
    """Per-trial scoring as WeSpeaker's score.py: dict of vectors, one cosine and one line per trial."""
    keys, matrix = read_embeddings(scp)
    vectors = dict(zip(keys, matrix - mean_vec))
    with open(trials_path) as f:
        lines = [next(f) for _ in range(limit)]
    start = time.perf_counter()
    out = []
    for line in lines:
        enroll, test, label = line.split()
        a, b = vectors[enroll], vectors[test]
        score = float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)))
        out.append(f"{enroll} {test} {score:.5f} {label}\n")
    return time.perf_counter() - start


def baseline_cohort_stats_full_sort(embeddings: np.ndarray, cohort: np.ndarray, top_n: int) -> float:
    """get_mean_std as in WeSpeaker: one unchunked product, a full descending sort, mean/std of the top N."""
    start = time.perf_counter()
    e = embeddings / np.sqrt(np.sum(embeddings ** 2, axis=1, keepdims=True))
    c = cohort / np.sqrt(np.sum(cohort ** 2, axis=1, keepdims=True))
    top = np.sort(e @ c.T, axis=1)[:, ::-1][:, :top_n]
    top.mean(axis=1), top.std(axis=1)
    return time.perf_counter() - start


def baseline_fp32_cohort_matmul(embeddings: np.ndarray, cohort: np.ndarray, block_rows: int = 8192) -> float:
    """The plain float32 product of the unit rows with the cohort, in blocks into a reused buffer (no selection).

    The hardware bound of the cohort statistics: what ``score_norm`` is compared with.
    """
    e = embeddings / np.sqrt(np.sum(embeddings ** 2, axis=1, keepdims=True))
    c = np.ascontiguousarray((cohort / np.sqrt(np.sum(cohort ** 2, axis=1, keepdims=True))).T)
    buffer = np.empty((block_rows, c.shape[1]), dtype=np.float32)
    start, cpu_start = time.perf_counter(), time.process_time()
    for row in range(0, len(e), block_rows):
        block = e[row:row + block_rows]
        np.matmul(block, c, out=buffer[:len(block)])
    MATMUL_CPU_SECONDS.append(time.process_time() - cpu_start)
    return time.perf_counter() - start


def baseline_norm_loop(score_path: Path, row_of: Dict[str, int], embeddings: np.ndarray, mean: np.ndarray,
                       std: np.ndarray, limit: int) -> float:
    """score_norm.py's per-trial loop: parse, normalise, two norms, format one line."""
    with open(score_path) as f:
        lines = [next(f) for _ in range(limit)]
    start = time.perf_counter()
    out = []
    for line in lines:
        fields = line.split()
        e, t = row_of[fields[0]], row_of[fields[1]]
        score = float(fields[2])
        normed = 0.5 * ((score - mean[e]) / std[e] + (score - mean[t]) / std[t])
        out.append("{} {} {:.5f} {} {:.4f} {:.4f} {:.4f} {:.4f}\n".format(
            fields[0], fields[1], normed, fields[3], np.linalg.norm(embeddings[e]), np.linalg.norm(embeddings[t]),
            mean[e], mean[t]))
    return time.perf_counter() - start


def baseline_gather_loop(normed_path: Path, durations: Dict[str, float], limit: int) -> float:
    """gather_calibration_factors' per-line loop."""
    def pair(a, b):
        low, high = min(a, b), max(a, b)
        return f"{low:.4f} {high:.4f} {high - low:.4f} {high / low:.4f}"

    with open(normed_path) as f:
        lines = [next(f) for _ in range(limit)]
    start = time.perf_counter()
    out = []
    for line in lines:
        fields = line.split()
        out.append(f"{fields[0]} {fields[1]} {fields[3]} {fields[2]} "
                   f"{pair(min(durations[fields[0]], 20), min(durations[fields[1]], 20))} "
                   f"{pair(float(fields[4]), float(fields[5]))} {pair(float(fields[6]), float(fields[7]))}\n")
    return time.perf_counter() - start


def baseline_metrics_per_line(score_path: Path) -> float:
    """compute_metrics.py's reader (a Python loop over lines) followed by the same metric code."""
    from wespk.scoring.metrics import eer_min_dcf

    start = time.perf_counter()
    scores, labels = [], []
    with open(score_path) as f:
        for line in f:
            tokens = line.strip().split()
            scores.append(float(tokens[2]))
            labels.append(tokens[-1] == "target")
    eer_min_dcf(np.hstack(scores), np.hstack(labels), (0.01,))
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------


def benchmark_scale(name: str, work: Path, seed: int, repeats: int = 1) -> ScaleResult:
    """Generate one scale's data, run the entry points, the in-process phases and the baselines.

    ``xlarge`` runs the entry points and the fp32 matmul baseline only (its in-process phases would hold
    every file in this process's memory).
    """
    import kaldiio

    from wespk.scoring.calibration import apply_qmf, gather_factors, train_qmf_on_factors, write_factors
    from wespk.scoring.calibration_trials import read_durations
    from wespk.scoring.cosine import EmbeddingSet, cosine_scores, mean_embedding, prepare_embeddings
    from wespk.scoring.metrics import eer_min_dcf
    from wespk.io.trials import read_trials
    from wespk.io.trials import iter_table_pieces
    from wespk.scoring.score_files import (byte_score_lines, byte_trial_rows, index_trial_keys, iter_score_pieces,
                                           read_score_file, read_score_norm_file, read_scores_and_targets,
                                           write_score_file, write_score_norm_file)
    from wespk.scoring.score_norm import cohort_score_stats, normalize_scores

    spec = SCALES[name]
    result = ScaleResult(name, spec["utterances"], spec["trials"])
    logger.info("== scale %s: %d utterances, %d trials, cohort %d, dim %d ==", name, spec["utterances"],
                spec["trials"], COHORT_SPEAKERS, DIM)
    data = timed(result.phases, "generate synthetic data", make_data, work, spec["utterances"], spec["trials"],
                 spec["speakers"], seed)
    os.sync()  # the generated files' write-back must not overlap the timed processes
    out = {key: work / key for key in ("cos.score", "asnorm.score", "cali_cos.score", "cali_asnorm.score",
                                       "qmf.score", "model.pt")}

    # 1. the entry points, as a recipe runs them
    # as in a recipe: score computes the mean vector once and saves it, the later stages load it
    mean_args = ["--embeddings", data["eval.scp"], "--mean_vec", work / "mean_vec.npy"]
    norm_args = ["--method", "asnorm", "--top_n", TOP_N, "--cohort", data["cohort.scp"], *mean_args, "--no_progress"]
    runs = result.processes

    def entry(step: str, module: str, args: List[str]) -> ProcessRun:
        return run_entry_point(step, module, args, repeats)
    runs.append(entry("score", "wespk.bin.score",
                                ["--embeddings", data["eval.scp"], "--mean_from", data["cohort.scp"],
                                 "--save_mean", work / "mean_vec.npy",
                                 "--trials", data["trials"], "--output", out["cos.score"]]))
    runs.append(entry("score_norm", "wespk.bin.score_norm",
                                [*norm_args, "--input", out["cos.score"], "--output", out["asnorm.score"]]))
    runs.append(entry("score (calibration list)", "wespk.bin.score",
                                [*mean_args, "--trials", data["cali_trials"], "--output", out["cali_cos.score"]]))
    runs.append(entry("score_norm (calibration list)", "wespk.bin.score_norm",
                                [*norm_args, "--input", out["cali_cos.score"], "--output", out["cali_asnorm.score"]]))
    runs.append(entry("calibrate train (calibration list)", "wespk.bin.calibrate",
                      ["train", "--utt2dur", data["utt2dur"], "--scores", out["cali_asnorm.score"],
                       "--model", out["model.pt"]]))
    runs.append(entry("calibrate apply (QMF)", "wespk.bin.calibrate",
                      ["apply", "--utt2dur", data["utt2dur"], "--model", out["model.pt"],
                       "--scores", out["asnorm.score"], "--output", out["qmf.score"]]))
    runs.append(entry("compute_metrics", "wespk.bin.compute_metrics", [out["cos.score"]]))
    runs.append(entry("compute_metrics (QMF, calibrated)", "wespk.bin.compute_metrics",
                                ["--calibrated", out["qmf.score"]]))

    if name == "xlarge":
        keys, matrix = read_embeddings(data["eval.scp"])
        _, cohort_matrix = read_embeddings(data["cohort.scp"])
        mean_vec = np.load(work / "mean_vec.npy")
        result.baselines["fp32 cohort matmul (plain, all utterances)"] = baseline_fp32_cohort_matmul(
            matrix - mean_vec, cohort_matrix - mean_vec)
        logger.info("  %-34s %8.3f s", "fp32 cohort matmul", result.baselines["fp32 cohort matmul (plain, all utterances)"])
        result.baselines["fp32 cohort matmul, CPU seconds"] = MATMUL_CPU_SECONDS[-1]
        step = {run.step: run for run in runs}
        result.ratios["score_norm process vs plain fp32 cohort matmul"] = (
            step["score_norm"].wall_seconds / result.baselines["fp32 cohort matmul (plain, all utterances)"])
        result.ratios["score_norm process vs plain fp32 cohort matmul, CPU time"] = (
            step["score_norm"].cpu_seconds / MATMUL_CPU_SECONDS[-1])
        return result

    # 2. the same library functions in-process, phase by phase
    phases = result.phases
    logger.info("in-process phases")
    embeddings = timed(phases, "cosine: read embeddings", EmbeddingSet.from_scp, data["eval.scp"])
    timed(phases, "(kaldiio.load_scp_sequential)", lambda: [v for _, v in kaldiio.load_scp_sequential(
        str(data["eval.scp"]))])
    cohort = timed(phases, "cosine: read mean set", EmbeddingSet.from_scp, data["cohort.scp"])
    mean_vec = mean_embedding(cohort.matrix)
    pieces = timed(phases, "cosine: read trials (bulk)", lambda: list(iter_table_pieces(data["trials"], (2, 3),
                                                                                         "trial list")))
    timed(phases, "cosine: key lookup (bulk)", lambda: [byte_trial_rows(p, embeddings.key_index) for p in pieces])
    trials = timed(phases, "cosine: read trials (string path)", read_trials, data["trials"])
    enroll, test = timed(phases, "cosine: key lookup (string path)", index_trial_keys, trials, embeddings.row_of,
                         "eval")
    prepared = timed(phases, "cosine: mean subtraction", prepare_embeddings, embeddings.matrix, mean_vec)
    scores = timed(phases, "cosine: scores", cosine_scores, prepared, enroll, test)
    def write_bulk():
        with atomic_output(work / "phase_bulk.score", "wb") as f:
            start = 0
            for piece in pieces:
                f.write(byte_score_lines(piece, [0, 1, (scores[start:start + len(piece)], 5), 2]))
                start += len(piece)
    timed(phases, "cosine: write (bulk)", write_bulk)
    timed(phases, "cosine: write (string path)", write_score_file, work / "phase.score", trials.enroll, trials.test,
          scores, trials.labels)
    timed(phases, "asnorm: read scores (bulk)", lambda: list(iter_score_pieces(out["cos.score"],
                                                                              keys=embeddings.lookup_keys)))
    table = timed(phases, "asnorm: read scores (string path)", read_score_file, out["cos.score"])
    cohort_prepared = prepare_embeddings(cohort.matrix, mean_vec)
    used = np.unique(np.concatenate([enroll, test]))
    mean, std = timed(phases, "asnorm: cohort stats", cohort_score_stats, prepared[used],
                      cohort_prepared, TOP_N, progress=False)
    exact_mean, exact_std = timed(phases, "asnorm: cohort stats (full float64 product)", cohort_score_stats,
                                  prepared[used], cohort_prepared, TOP_N, progress=False, exact=True)
    if not (np.array_equal(mean, exact_mean) and np.array_equal(std, exact_std)):
        raise AssertionError("the candidate search and the full product gave different cohort statistics")
    full_mean = np.zeros(len(prepared), np.float32)
    full_std = np.ones(len(prepared), np.float32)
    full_mean[used], full_std[used] = mean, std
    normed = timed(phases, "asnorm: normalise trials", normalize_scores, table.scores, enroll, test, full_mean, full_std)
    magnitude = np.linalg.norm(prepared, axis=1)
    timed(phases, "asnorm: write", write_score_norm_file, work / "phase.asnorm", trials.enroll, trials.test, normed,
          trials.labels, magnitude[enroll], magnitude[test], full_mean[enroll], full_mean[test])
    durations = read_durations(data["utt2dur"])
    cali_factors = gather_factors(read_score_norm_file(out["cali_asnorm.score"]), durations)
    normed_table = timed(phases, "qmf: read score-norm file", read_score_norm_file, out["asnorm.score"])
    factors = timed(phases, "qmf: gather factors", gather_factors, normed_table, durations)
    timed(phases, "qmf: write factors", write_factors, work / "phase.factors", factors)
    trained = timed(phases, "qmf: train (30,000 trials)", train_qmf_on_factors, cali_factors)
    timed(phases, "qmf: apply", apply_qmf, trained.state_dict, factors.features)
    timed(phases, "metrics: read scores (bulk)", read_scores_and_targets, out["cos.score"])
    metrics_table = timed(phases, "metrics: read scores (string path)", read_score_file, out["cos.score"], True)
    timed(phases, "metrics: EER + minDCF x3", eer_min_dcf, metrics_table.scores, metrics_table.is_target)

    # 3. straightforward baselines in the same run
    logger.info("baselines")
    n = len(trials)
    limit = min(BASELINE_TRIALS, n)
    base = result.baselines
    base["cosine per-trial loop"] = baseline_cosine_loop(data["eval.scp"], data["trials"], mean_vec, limit) * n / limit
    sample = used[:min(BASELINE_UTTERANCES, len(used))]
    base["cohort stats full sort"] = (baseline_cohort_stats_full_sort(prepared[sample], cohort_prepared, TOP_N)
                                      * len(used) / len(sample))
    base["fp32 cohort matmul (plain, all utterances)"] = baseline_fp32_cohort_matmul(prepared[used], cohort_prepared)
    base["fp32 cohort matmul, CPU seconds"] = MATMUL_CPU_SECONDS[-1]
    base["score-norm per-trial loop"] = baseline_norm_loop(out["cos.score"], embeddings.row_of, prepared, full_mean,
                                                           full_std, limit) * n / limit
    base["gather per-line loop"] = baseline_gather_loop(out["asnorm.score"], durations, limit) * n / limit
    base["metrics per-line reader"] = baseline_metrics_per_line(out["cos.score"])
    for key, value in base.items():
        logger.info("  %-34s %8.3f s", key, value)

    ours_cosine = phases["cosine: scores"] + phases["cosine: write (bulk)"]
    ours_norm = phases["asnorm: cohort stats"] + phases["asnorm: normalise trials"] + \
        phases["asnorm: write"]
    step = {run.step: run.wall_seconds for run in runs}
    cpu = {run.step: run.cpu_seconds for run in runs}
    result.ratios = {
        "score_norm process vs plain fp32 cohort matmul":
            step["score_norm"] / base["fp32 cohort matmul (plain, all utterances)"],
        "score_norm process vs plain fp32 cohort matmul, CPU time":
            cpu["score_norm"] / base["fp32 cohort matmul, CPU seconds"],
        "cohort stats vs plain fp32 cohort matmul":
            phases["asnorm: cohort stats"] / base["fp32 cohort matmul (plain, all utterances)"],
        "cohort stats (full float64 product) vs plain fp32 cohort matmul":
            phases["asnorm: cohort stats (full float64 product)"] / base["fp32 cohort matmul (plain, all utterances)"],
        "cosine (scores + write) vs per-trial loop": base["cosine per-trial loop"] / ours_cosine,
        "AS-norm (stats + normalise + write) vs full sort + per-trial loop":
            (base["cohort stats full sort"] + base["score-norm per-trial loop"]) / ours_norm,
        "QMF gather vs per-line loop": base["gather per-line loop"] / phases["qmf: gather factors"],
        "metrics (read + compute) vs per-line reader":
            base["metrics per-line reader"] / (phases["metrics: read scores (bulk)"]
                                               + phases["metrics: EER + minDCF x3"]),
    }
    return result


def markdown(results: List[ScaleResult], environment: Dict[str, object], command: str) -> str:
    """The benchmark figures as markdown tables."""
    lines = ["# Scoring benchmark", "", f"Command: `{command}`", ""]
    lines += [f"- {key}: {value}" for key, value in environment.items()]
    for result in results:
        lines += ["", f"## {result.scale}: {result.utterances:,} utterances, {result.trials:,} trials, "
                      f"cohort {COHORT_SPEAKERS:,} speaker means, dim {DIM}, AS-norm top {TOP_N}", "",
                  "| entry point (subprocess, includes start-up) | wall (s), median | runs (s) | CPU (s) | peak RSS (MB) "
                  "| target |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for run in result.processes:
            target = ""
            if result.scale == "large" and run.step in TARGETS:
                ok = run.wall_seconds <= TARGETS[run.step] and run.peak_rss_bytes < MEMORY_TARGET
                target = f"<= {TARGETS[run.step]:g} s, < 4 GB: {'met' if ok else 'NOT met'}"
            runs = " ".join(f"{w:.2f}" for w in run.all_wall_seconds)
            peak_mb = run.peak_rss_bytes / 2 ** 20
            lines.append(f"| {run.step} | {run.wall_seconds:.2f} | {runs} | {run.cpu_seconds:.2f} | {peak_mb:.0f} "
                         f"| {target} |")
        lines += ["", "| phase (in-process, library functions) | seconds |", "| --- | ---: |"]
        lines += [f"| {name} | {seconds:.3f} |" for name, seconds in result.phases.items()]
        lines += ["", "| baseline (same run; loops on 20,000 trials / sorts on 2,048 utterances, extrapolated) "
                      "| seconds |", "| --- | ---: |"]
        lines += [f"| {name} | {seconds:.2f} |" for name, seconds in result.baselines.items()]
        lines += ["", "| ratio | value |", "| --- | ---: |"]
        lines += [f"| {name} | {ratio:.2f}x |" for name, ratio in result.ratios.items()]
        if result.scale == "large":
            eval_steps = ("score", "score_norm", "calibrate apply (QMF)", "compute_metrics")
            total = sum(run.wall_seconds for run in result.processes if run.step in eval_steps)
            total_cpu = sum(run.cpu_seconds for run in result.processes if run.step in eval_steps)
            lines += ["", f"Evaluation list end to end ({' + '.join(eval_steps)}): {total:.2f} s wall, "
                          f"{total_cpu:.2f} s CPU (target: 6.0 s wall on 2 idle cores)"]
    by_scale = {result.scale: result for result in results}
    if "large" in by_scale and "xlarge" in by_scale:
        large, xlarge = by_scale["large"], by_scale["xlarge"]
        utterances, trials = xlarge.utterances / large.utterances, xlarge.trials / large.trials
        lines += ["", f"## xlarge against a linear extrapolation from large (x{utterances:.2f} utterances, "
                      f"x{trials:.2f} trials)", "",
                  "| entry point | large (s) | xlarge (s) | linear extrapolation (s) | xlarge / extrapolation "
                  "| peak RSS xlarge (MB) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        large_runs = {run.step: run for run in large.processes}
        stats = large.phases.get("asnorm: cohort stats")
        for run in xlarge.processes:
            base = large_runs[run.step]
            if "calibration" in run.step:
                expected = base.wall_seconds  # the calibration list has the same 30,000 trials at every scale
            elif run.step == "score" and "cosine: read embeddings" in large.phases:
                # reading and preparing the embeddings grows with the utterances, the rest with the trials
                per_utterance = large.phases["cosine: read embeddings"] + large.phases["cosine: mean subtraction"]
                expected = per_utterance * utterances + max(0.0, base.wall_seconds - per_utterance) * trials
            elif run.step == "score_norm" and stats is not None:
                # the cohort statistics grow with the utterances (their in-process time at large), the
                # rest of the process (reading, normalising and writing the trials, start-up) with the trials
                expected = stats * utterances + max(0.0, base.wall_seconds - stats) * trials
            else:
                expected = base.wall_seconds * trials
            lines.append(f"| {run.step} | {base.wall_seconds:.2f} | {run.wall_seconds:.2f} | {expected:.2f} "
                         f"| {run.wall_seconds / expected:.2f} | {run.peak_rss_bytes / 2 ** 20:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--work_dir", help="where to write the synthetic data (default: a temporary directory, "
                                           "removed at the end)")
    parser.add_argument("--scales", default=DEFAULT_SCALES,
                        help=f"comma-separated: small, large, xlarge (default {DEFAULT_SCALES})")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each entry point; the median wall time is reported (default 3)")
    parser.add_argument("--output_md", help="also write the tables here")
    parser.add_argument("--output_json", help="also write all figures as JSON")
    args = parser.parse_args(argv)
    scales = [s for s in args.scales.split(",") if s]
    unknown = set(scales) - set(SCALES)
    if unknown:
        parser.error(f"unknown scale(s) {sorted(unknown)}; choose from {sorted(SCALES)}")
    setup_logging()
    import torch

    environment = {
        "machine": f"{cpu_name()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        "load average at start (1/5/15 min)": load_averages(),
        "versions": f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}",
    }
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="wespk_benchmark_"))
    results = []
    try:
        for index, scale in enumerate(scales):
            results.append(benchmark_scale(scale, work / scale, args.seed + index, args.repeats))
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    environment["load average at end (1/5/15 min)"] = load_averages()
    command = "python -m benchmarks.scoring " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(results, environment, command.strip())
    print(text)
    if args.output_md:
        with atomic_output(args.output_md) as f:
            f.write(text)
    if args.output_json:
        with atomic_output(args.output_json) as f:
            json.dump({"environment": environment, "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
