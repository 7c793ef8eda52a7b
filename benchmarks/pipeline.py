"""Measure the training data pipeline and the fbank backends, in one run.

Usage:
  python -m benchmarks.pipeline [--data-dir DIR] [--work-dir DIR] [--workers 0,2]

Builds (untimed) tar shards of the corpus, a noise set and simulated RIRs,
then times:
  * the full training pipeline: shard list, speed perturbation, aug_prob 0.6
    with noise and reverberation, 200-frame chunks, fbank with dither, mean
    normalisation, batches of --batch-size, through a DataLoader with each
    --workers count: time from building the dataset to the first batch,
    then utterances/s and audio-seconds/s over --num-batches batches;
  * fbank alone on the same 200-frame chunks: kaldifeat per utterance,
    kaldifeat batched, kaldi-native-fbank per utterance;
and prints each as a ratio to real time and to each other. Each measurement is
repeated (--repeats, interleaved) and the best run is reported with the list
of all runs, since other processes on a shared machine slow some runs down.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch

logger = logging.getLogger("benchmarks.pipeline")

DEFAULT_CORPUS = "/work/shared/data/dev_corpus"


def prepare_inputs(data_dir: str, work_dir: str, utts_per_shard: int, seed: int) -> Dict[str, str]:
    """Data dir (imported when ``data_dir`` is a folder of speakers), shards, noise and RIRs."""
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    from wespk.data.data_dir import audio_by_speaker
    from wespk.data.importers import prepare_data_dir
    from wespk.data.data_dir import read_data_dir
    from wespk.data.shards import write_shard
    from wespk.io.files import atomic_output

    if os.path.isfile(os.path.join(data_dir, "wav.scp")):
        kaldi_dir = data_dir
    else:
        kaldi_dir = os.path.join(work_dir, "data")
        prepare_data_dir("folder", data_dir, kaldi_dir)
    entries = read_data_dir(kaldi_dir, need_spk=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(entries))
    shard_dir = os.path.join(work_dir, "shards")
    os.makedirs(shard_dir, exist_ok=True)
    shard_paths: List[str] = []
    for start in range(0, len(order), utts_per_shard):
        members = []
        for index in order[start:start + utts_per_shard]:
            entry = entries[int(index)]
            if entry.audio.start is not None or entry.audio.is_pipe:
                continue
            with open(entry.audio.path, "rb") as f:
                payload = f.read()
            suffix = os.path.splitext(entry.audio.path)[1].lstrip(".").lower() or "wav"
            members.append((entry.key, entry.speaker, payload, suffix))
        path = os.path.join(shard_dir, f"shard_{len(shard_paths):06d}.tar")
        write_shard(path, members)
        shard_paths.append(os.path.abspath(path))
    shard_list = os.path.join(work_dir, "shard.list")
    with atomic_output(shard_list) as f:
        f.write("".join(p + "\n" for p in shard_paths))
    noise_dir, rir_dir = os.path.join(work_dir, "noise"), os.path.join(work_dir, "rirs")
    build_noise_set(noise_dir, audio_by_speaker(kaldi_dir), num_coloured=10, num_babble=10, seed=seed)
    build_rir_set(rir_dir, num_rirs=20, seed=seed + 1)
    return {"data_dir": kaldi_dir, "shard_list": shard_list, "noise": noise_dir, "rirs": rir_dir}


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _cpu_seconds(batches) -> float:
    """CPU seconds used so far by this process and the DataLoader's workers."""
    workers = getattr(batches, "_workers", [])  # private, but only read here
    return time.process_time() + sum(_process_cpu_seconds(w.pid) for w in workers)


def time_pipeline(inputs: Dict[str, str], num_workers: int, batch_size: int, num_batches: int,
                  seed: int) -> Dict[str, float]:
    """First-batch latency and throughput of the full pipeline."""
    from torch.utils.data import DataLoader
    from wespk.data.dataset import SpeakerDataset, read_spk2id

    args = {"shuffle": True, "speed_perturb": True, "num_frms": 200, "aug_prob": 0.6,
            "noise_data": inputs["noise"], "reverb_data": inputs["rirs"], "cmn": True,
            "fbank_args": {"num_mel_bins": 80, "frame_shift": 10, "frame_length": 25, "dither": 1.0}}
    spk2id = read_spk2id(inputs["data_dir"])
    start = time.perf_counter()
    dataset = SpeakerDataset(inputs["shard_list"], "shard", args, spk2id, seed=seed, batch_size=batch_size)
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    batches = iter(loader)
    first = next(batches)
    first_batch = time.perf_counter() - start
    utts = 0
    cpu_from = _cpu_seconds(batches)
    timed_from = time.perf_counter()
    for _ in range(num_batches):
        batch = next(batches)
        utts += len(batch["keys"])
    elapsed = time.perf_counter() - timed_from
    cpu = _cpu_seconds(batches) - cpu_from
    del batches, loader
    chunk_seconds = dataset.context.chunk_samples / dataset.context.sample_rate
    assert first["feats"].shape[1:] == (200, 80)
    return {"workers": num_workers, "first_batch_s": first_batch, "utts_per_s": utts / elapsed,
            "audio_s_per_s": utts * chunk_seconds / elapsed, "utterances": utts, "seconds": elapsed,
            "cpu_ms_per_utt": 1000.0 * cpu / utts}


def time_fbank(inputs: Dict[str, str], count: int, batch_size: int, seed: int) -> List[Dict[str, float]]:
    """kaldifeat per utterance / batched and kaldi-native-fbank on 200-frame chunks."""
    from wespk.data.data_dir import read_data_dir
    from wespk.io.audio import read_audio_span
    from wespk.features.fbank import FbankExtractor, available_fbank_backends, num_samples_for_frames

    torch.set_num_threads(1)
    length = num_samples_for_frames(200, 16000)
    entries = read_data_dir(inputs["data_dir"])
    rng = np.random.default_rng(seed)
    chunks = []
    for index in rng.permutation(len(entries))[:count]:
        wav, rate = read_audio_span(entries[int(index)].audio)
        if rate == 16000 and len(wav) >= length:
            chunks.append(wav[:length])
    audio_seconds = len(chunks) * length / 16000
    results = []
    backends = available_fbank_backends()
    for name, backend, batched in (("kaldifeat per utterance", "kaldifeat", False),
                                   ("kaldifeat batched", "kaldifeat", True),
                                   ("kaldi-native-fbank per utterance", "knf", False)):
        if backend not in backends:
            logger.warning("%s: %s is not installed", name, backend)
            continue
        extractor = FbankExtractor(16000, 80, backend=backend)
        extractor(chunks[0])
        start = time.perf_counter()
        if batched:
            for i in range(0, len(chunks), batch_size):
                extractor.batch(chunks[i:i + batch_size])
        else:
            for chunk in chunks:
                extractor(chunk)
        elapsed = time.perf_counter() - start
        results.append({"name": name, "utts_per_s": len(chunks) / elapsed,
                        "x_real_time": audio_seconds / elapsed, "utterances": len(chunks)})
    return results


def best_run(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """The fastest run's throughput with the quickest first batch of all runs."""
    best = dict(max(runs, key=lambda r: r["utts_per_s"]))
    best["first_batch_s"] = min(r["first_batch_s"] for r in runs)
    best["first_batch_s_worst"] = max(r["first_batch_s"] for r in runs)
    best["utts_per_s_all"] = [r["utts_per_s"] for r in runs]
    return best


def format_report(pipeline: List[Dict[str, float]], fbank: List[Dict[str, float]]) -> str:
    """A plain-text table of the results with ratios."""
    lines = ["full pipeline (shard list, speed perturb, aug_prob 0.6 noise+reverb, 200-frame chunks, "
             "fbank, CMN), best of the runs:",
             f"  {'workers':>7} {'1st batch s':>13} {'utt/s':>8} {'audio s/s (x real time)':>24} "
             f"{'vs 0 workers':>12} {'CPU ms/utt':>10}  all runs utt/s"]
    base = next((p["utts_per_s"] for p in pipeline if p["workers"] == 0), None)
    for p in pipeline:
        ratio = f"{p['utts_per_s'] / base:.2f}x" if base else "-"
        every = ", ".join(f"{v:.0f}" for v in p.get("utts_per_s_all", [p["utts_per_s"]]))
        first = f"{p['first_batch_s']:.2f}/{p.get('first_batch_s_worst', p['first_batch_s']):.2f}"
        lines.append(f"  {p['workers']:>7} {first:>13} {p['utts_per_s']:>8.1f} "
                     f"{p['audio_s_per_s']:>24.1f} {ratio:>12} {p['cpu_ms_per_utt']:>10.2f}  {every}")
    lines.append("  (1st batch: seconds from building the dataset to the first batch, best/worst run; "
                 "CPU ms/utt: CPU time of the main process and its workers per delivered utterance - "
                 "on a busy machine utt/s falls below 1000 x cores / CPU ms/utt)")
    lines.append("fbank alone (80 bins, 200-frame chunks of 2.015 s, 1 thread):")
    lines.append(f"  {'backend':<34} {'utt/s':>8} {'x real time':>12} {'vs kaldifeat':>12}")
    ref = next((f["utts_per_s"] for f in fbank if f["name"] == "kaldifeat per utterance"), None)
    for f in fbank:
        ratio = f"{f['utts_per_s'] / ref:.2f}x" if ref else "-"
        lines.append(f"  {f['name']:<34} {f['utts_per_s']:>8.1f} {f['x_real_time']:>12.0f} {ratio:>12}")
    if ref and pipeline:
        best = max(pipeline, key=lambda p: p["utts_per_s"])
        lines.append(f"pipeline with {best['workers']} workers delivers {best['utts_per_s'] / ref:.2f}x the "
                     "utterance rate of kaldifeat fbank alone on one core")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data-dir", "--data_dir", default=DEFAULT_CORPUS,
                        help="Kaldi data dir, or a folder of speakers (default: %(default)s)")
    parser.add_argument("--work-dir", "--work_dir", default=None,
                        help="where shards and noise go (default: a temporary dir)")
    parser.add_argument("--workers", default="0,2", help="DataLoader worker counts (default: %(default)s)")
    parser.add_argument("--batch-size", "--batch_size", type=int, default=32)
    parser.add_argument("--num-batches", "--num_batches", type=int, default=40,
                        help="batches timed after the first (default: %(default)s)")
    parser.add_argument("--utts-per-shard", "--utts_per_shard", type=int, default=64)
    parser.add_argument("--fbank-utts", "--fbank_utts", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each measurement, interleaved; the best counts (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default="", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("wespk.data").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="wespk-bench-") as tmp:
        work_dir = args.work_dir or tmp
        os.makedirs(work_dir, exist_ok=True)
        logger.info("preparing shards, noise and RIRs in %s", work_dir)
        inputs = prepare_inputs(args.data_dir, work_dir, args.utts_per_shard, args.seed)
        load_before = os.getloadavg()
        worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
        runs: Dict[int, List[Dict[str, float]]] = {w: [] for w in worker_counts}
        fbank_runs: List[List[Dict[str, float]]] = []
        for repeat in range(args.repeats):
            # Interleaved, so that a burst of load from other processes does
            # not fall on one configuration only; the best run of each counts.
            for workers in worker_counts:
                logger.info("run %d/%d: the pipeline with %d worker(s)", repeat + 1, args.repeats, workers)
                runs[workers].append(time_pipeline(inputs, workers, args.batch_size, args.num_batches,
                                                   args.seed + repeat))
            logger.info("run %d/%d: fbank backends", repeat + 1, args.repeats)
            fbank_runs.append(time_fbank(inputs, args.fbank_utts, args.batch_size, args.seed))
        load_after = os.getloadavg()
        pipeline = [best_run(runs[w]) for w in worker_counts]
        fbank = [max((run[i] for run in fbank_runs), key=lambda r: r["utts_per_s"])
                 for i in range(len(fbank_runs[0]))]
    report = format_report(pipeline, fbank)
    print(report)
    print(f"load average (1 min) before/after: {load_before[0]:.2f}/{load_after[0]:.2f} "
          f"on {os.cpu_count()} cores; torch {torch.__version__}")
    if args.json:
        from wespk.io.files import atomic_output
        with atomic_output(args.json) as f:
            json.dump({"pipeline": pipeline, "fbank": fbank,
                       "load_average": [load_before[0], load_after[0]]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
