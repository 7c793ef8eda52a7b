"""Training throughput on CPU: a plain eager loop, wespk's trainer, and the data pipeline alone.

``python -m benchmarks.train [--models ResNet34,ECAPA_TDNN_GLOB_c512] [--steps 8]
[--batch_size 16] [--num_frms 200] [--num_class 1000] [--procs 1,2] [--output_md F]``

For each model, measured one after the other in the same run:

* ``baseline eager``: the reference loop of issue 5, in a fresh process: model +
  ``arc_margin`` head (``wespk.losses.get_projection``, ``--num_class``
  classes), cross-entropy, ``backward()``, ``SGD.step()``, on one random batch
  of ``--batch_size`` x ``--num_frms`` frames x 80 bins, fp32, with as many
  threads as ``--cores`` (default: all); ``--warmup_steps`` untimed steps,
  then ``--steps`` timed.
* ``baseline eager, heap kept``: the same loop after the allocator setting
  that ``wespk.bin.train`` applies (:mod:`wespk.utils.malloc`: large buffers
  are reused from the heap instead of being mapped afresh), to show how much
  of wespk's speed comes from it.
* ``wespk step, batch in memory``: wespk's own step
  (``Trainer.train_step`` with the schedulers, built from the config of the
  1-process run) on one real batch held in memory, in a fresh process with
  the allocator setting and as many threads as the baselines, the same
  warm-up and timed steps: the loop itself against the baselines, without
  the data pipeline's share of the cores.
* ``wespk N proc``: the real entry point on real audio. A raw list of the
  bundled corpus (``corpus/mini/train``: 368 utterances, 89 speakers) is
  built, with a noise set and simulated RIRs; the config reads it through the
  online pipeline (speed perturbation with its own classes, so the head has
  89 x 3 = 267 classes; random ``--num_frms`` chunks; noise or reverberation
  with probability ``--aug_prob``; fbank with dither; mean normalisation) with
  ``--num_workers`` DataLoader workers. One process runs as
  ``python -m wespk.bin.train``, N > 1 as ``torchrun --standalone
  --nproc_per_node N -m wespk.bin.train`` (gloo), each with
  ``OMP_NUM_THREADS`` = cores / N. The *global* batch stays
  ``--batch_size`` (each of N processes takes batch_size / N), so every mode
  does the same work per step and follows the same LR schedule. The run lasts
  ``--epochs`` epochs (``dataset_args.sample_num_per_epoch`` sets their
  length) and logs every ``--log_interval`` steps; throughput is read from
  ``train_metrics.jsonl`` (``utt_per_s`` of each logged window), skipping
  the first window as warm-up. Later windows include what training really
  pays: the DataLoader restart at each epoch start, the DDP all-reduce, the
  metrics all-reduce at each log line; the "steady" figure leaves out the
  windows that start an epoch, whose restart cost short benchmark epochs pay
  far more often than real ones.
* ``data only``: the same ``SpeakerDataset`` (list, dataset_args, seed, batch
  size) through a DataLoader with the same settings, iterated without
  training for as many batches as the 1-process run timed (after one warm-up
  batch), with the CPU time the producing process spent per utterance. It
  must deliver far more utterances per second than training consumes; the
  report says how many times more, and what share of the cores feeding the
  fastest wespk run takes.

The markdown table gives seconds per step (per batch for data only),
utterances per second, the ratio of utterances per second to the baseline
measured in the same run, wespk's steady seconds per step, and the 1-minute
load average at the end of each measurement (other jobs on the machine slow
everything down). The trainer's
head has 267 classes and the baseline's ``--num_class`` (default 1,000, the
issue's reference; ``--num_class 0`` makes it the trainer's count); the report
gives the head's share of the FLOPs, which shows that the difference is
negligible.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import yaml

from benchmarks.timing import cpu_name, in_fresh_process, load_average
from wespk.utils.logs import setup_logging
from wespk.utils.parallel import usable_cores

logger = logging.getLogger("benchmarks.train")

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_TRAIN = REPO_ROOT / "corpus" / "mini" / "train"
FEAT_DIM = 80
#: model -> model_args of WeSpeaker's VoxCeleb configs (other models: feat_dim, embed_dim 256)
MODEL_ARGS = MappingProxyType({
    "ResNet34": MappingProxyType({"feat_dim": FEAT_DIM, "embed_dim": 256, "pooling_func": "TSTP",
                                  "two_emb_layer": False}),
    "ECAPA_TDNN_GLOB_c512": MappingProxyType({"feat_dim": FEAT_DIM, "embed_dim": 192}),
})
#: the head of both loops: additive angular margin at its final margin
PROJECTION_ARGS = MappingProxyType({"project_type": "arc_margin", "scale": 32.0, "margin": 0.2,
                                    "easy_margin": False})
SGD_ARGS = MappingProxyType({"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4})
BASELINE_LR = 0.025  # WeSpeaker's 0.1 scaled by 16 / 64; speed does not depend on it
MODE_BASELINE = "baseline eager"
MODE_BASELINE_HEAP = "baseline eager, heap kept"
MODE_DATA = "data only"
MODE_STEP = "wespk step, batch in memory"


@dataclasses.dataclass
class Measurement:
    """One row of the report."""

    model: str
    mode: str
    setting: str
    steps: int
    seconds_per_step: float
    utts_per_second: float
    load_1min: float
    cpu_ms_per_utt: Optional[float] = None  # data only: CPU time of the producing processes
    steady_seconds_per_step: Optional[float] = None  # wespk: without the windows that start an epoch
    round_seconds_per_step: Tuple[float, ...] = ()  # with --repeats: s/step of every round


def median_rounds(measurements: Sequence[Measurement]) -> List[Measurement]:
    """One row per (model, mode), in order of first appearance: the round with the median
    seconds per step (the lower one of an even count), carrying every round's figure."""
    groups: Dict[Tuple[str, str], List[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.model, m.mode), []).append(m)
    rows = []
    for group in groups.values():
        ordered = sorted(group, key=lambda m: m.seconds_per_step)
        chosen = ordered[(len(ordered) - 1) // 2]
        rows.append(dataclasses.replace(chosen, round_seconds_per_step=tuple(
            m.seconds_per_step for m in group)))
    return rows


def _plural(count: int, noun: str) -> str:
    """``1 thread``, ``2 threads``, ``2 processes``."""
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}{'es' if noun.endswith('s') else 's'}"


def model_args_for(model: str, overrides: Mapping) -> Dict:
    """``model_args`` of ``model``: the defaults above updated with ``overrides``."""
    args = dict(MODEL_ARGS.get(model, {"feat_dim": FEAT_DIM, "embed_dim": 256}))
    args.update(overrides)
    return args


def head_flops_share(model_name: str, model_args: Mapping, num_frms: int, num_class: int) -> float:
    """FLOPs of a ``num_class`` head as a fraction of the model's, per utterance.

    The head is one ``embed_dim x num_class`` matrix product (2 FLOPs a
    multiply-add); the model's forward FLOPs are counted on the meta device.
    Backward costs about twice the forward for both, so the share holds for
    the whole step.
    """
    from wespk.models import get_speaker_model
    from wespk.models.flops import count_flops

    model = get_speaker_model(model_name)(**model_args)
    model_flops = count_flops(model, num_frms, int(model_args.get("feat_dim", FEAT_DIM)))
    return 2.0 * int(model_args["embed_dim"]) * num_class / max(model_flops, 1)


# ----------------------------------------------------------- baseline ---
def time_eager_baseline(model_name: str, model_args: Mapping, num_class: int, batch_size: int,
                        num_frms: int, warmup_steps: int, steps: int, threads: int,
                        seed: int, keep_heap: bool = False) -> Measurement:
    """Mean wall time of a plain eager SGD step (forward, margin head, CE, backward, step).

    Runs in a fresh process, so that the allocator starts as any script's
    would; ``keep_heap`` applies :mod:`wespk.utils.malloc` there first, as
    ``wespk.bin.train`` does.
    """
    return in_fresh_process(_eager_baseline, model_name, dict(model_args), num_class, batch_size, num_frms,
                            warmup_steps, steps, threads, seed, keep_heap)


def _eager_baseline(model_name: str, model_args: Mapping, num_class: int, batch_size: int,
                    num_frms: int, warmup_steps: int, steps: int, threads: int,
                    seed: int, keep_heap: bool) -> Measurement:
    import torch.nn.functional as F
    from wespk.losses import get_projection
    from wespk.models import embedding_from_output, get_speaker_model

    if keep_heap:
        from wespk.utils.malloc import keep_large_allocations_in_heap
        keep_large_allocations_in_heap()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = get_speaker_model(model_name)(**model_args)
        head = get_projection({**PROJECTION_ARGS, "embed_dim": int(model_args["embed_dim"]),
                               "num_class": num_class})
        model.train()
        head.train()
        optimizer = torch.optim.SGD(list(model.parameters()) + list(head.parameters()),
                                    lr=BASELINE_LR, **SGD_ARGS)
        feats = torch.randn(batch_size, num_frms, int(model_args.get("feat_dim", FEAT_DIM)))
        labels = torch.randint(0, num_class, (batch_size,))

        def sgd_step() -> float:
            optimizer.zero_grad(set_to_none=True)
            embeds = embedding_from_output(model(feats))
            loss = F.cross_entropy(head(embeds, labels), labels)
            loss.backward()
            optimizer.step()
            return loss.item()

        for _ in range(warmup_steps):
            sgd_step()
        losses = []
        start = time.perf_counter()
        for _ in range(steps):
            losses.append(sgd_step())
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"{model_name}: the baseline loop gave a non-finite loss {losses}")
    setting = f"1 process x batch {batch_size}, {_plural(threads, 'thread')}, {num_class} classes"
    return Measurement(model_name, MODE_BASELINE_HEAP if keep_heap else MODE_BASELINE, setting, steps,
                       elapsed / steps, batch_size * steps / elapsed, load_average())


# ---------------------------------------------------------------- data ---
def prepare_training_data(work_dir: str, corpus_dir: str, seed: int) -> Dict[str, str]:
    """A Kaldi data dir and a raw list of ``corpus_dir``, a noise set and RIRs.

    Returns the paths: ``raw_list``, ``utt2spk``, ``noise``, ``rirs``.
    """
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    from wespk.data.data_dir import audio_by_speaker
    from wespk.data.importers import prepare_data_dir
    from wespk.io.files import atomic_output, read_kaldi_map

    data_dir = os.path.join(work_dir, "data", "train")
    prepare_data_dir("folder", corpus_dir, data_dir)
    wav_scp = read_kaldi_map(os.path.join(data_dir, "wav.scp"))
    utt2spk = read_kaldi_map(os.path.join(data_dir, "utt2spk"))
    raw_list = os.path.join(data_dir, "raw.list")
    with atomic_output(raw_list) as f:
        for key, spk in utt2spk.items():
            f.write(json.dumps({"key": key, "wav": wav_scp[key], "spk": spk}) + "\n")
    noise_dir = os.path.join(work_dir, "data", "noise")
    rir_dir = os.path.join(work_dir, "data", "rirs")
    build_noise_set(noise_dir, audio_by_speaker(data_dir), num_coloured=6, num_babble=6, seed=seed)
    build_rir_set(rir_dir, num_rirs=12, seed=seed + 1)
    return {"raw_list": raw_list, "utt2spk": os.path.join(data_dir, "utt2spk"),
            "noise": noise_dir, "rirs": rir_dir}


def training_dataset_args(num_frms: int, aug_prob: float, noise_dir: str, rir_dir: str,
                          sample_num_per_epoch: int) -> Dict:
    """``dataset_args`` of the benchmark: the mini recipe's pipeline with separate speed classes."""
    return {
        "sample_num_per_epoch": sample_num_per_epoch,
        "shuffle": True, "shuffle_args": {"shuffle_size": 500},
        "filter": True, "filter_args": {"min_num_frames": 50, "max_num_frames": 2000},
        "resample_rate": 16000,
        "speed_perturb": True, "speed_perturb_classes": "separate",
        "num_frms": num_frms,
        "aug_prob": aug_prob, "noise_data": noise_dir, "reverb_data": rir_dir,
        "fbank_args": {"num_mel_bins": FEAT_DIM, "frame_shift": 10, "frame_length": 25, "dither": 1.0},
        "cmn": True, "spec_aug": False,
    }


def dataloader_args(batch_size: int, num_workers: int) -> Dict:
    """``dataloader_args`` shared by the trainer runs and the data-only run."""
    args = {"batch_size": batch_size, "num_workers": num_workers, "pin_memory": False}
    if num_workers:
        args["prefetch_factor"] = 4
    return args


class ProducerClockStream(torch.utils.data.IterableDataset):
    """The batches of ``dataset``, each tagged with the CPU clock of the process that made it.

    ``batch["producer_clock"]`` is ``(worker id or -1 in the main process,
    time.process_time() there when the batch was ready)``; the difference
    between two batches of one producer is the CPU time the second one took.
    """

    def __init__(self, dataset: torch.utils.data.IterableDataset):
        super().__init__()
        self.dataset = dataset

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        producer = info.id if info is not None else -1
        for batch in self.dataset:
            batch["producer_clock"] = (producer, time.process_time())
            yield batch


def time_data_only(model_name: str, data: Mapping[str, str], dataset_args: Mapping, batch_size: int,
                   num_workers: int, num_batches: int, seed: int) -> Measurement:
    """Utterances per second and CPU ms per utterance of the training stream alone.

    One warm-up batch, then ``num_batches`` timed; the CPU time counts the
    producing processes (the DataLoader workers, or this process without
    workers) for the batches whose producer had made an earlier one.
    """
    from torch.utils.data import DataLoader
    from wespk.data.dataset import SpeakerDataset, read_spk2id

    dataset = SpeakerDataset(data["raw_list"], "raw", dict(dataset_args), read_spk2id(data["utt2spk"]),
                             seed=seed, batch_size=batch_size, train=True, rank=0, world_size=1)
    dataset.set_epoch(1)
    loader_args = dataloader_args(batch_size, num_workers)
    loader = DataLoader(ProducerClockStream(dataset), batch_size=None, num_workers=num_workers,
                        **{k: v for k, v in loader_args.items() if k in ("pin_memory", "prefetch_factor")})
    batches = iter(loader)
    first = next(batches)
    expected_shape = (int(dataset_args["num_frms"]), FEAT_DIM)
    if tuple(first["feats"].shape[1:]) != expected_shape:
        raise RuntimeError(f"data pipeline gave feats of shape {tuple(first['feats'].shape)}, "
                           f"expected [B, {expected_shape[0]}, {expected_shape[1]}]")
    last_clock = dict([first["producer_clock"]])
    utts, cpu_seconds, cpu_utts = 0, 0.0, 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(batches)
        utts += len(batch["keys"])
        producer, clock = batch["producer_clock"]
        if producer in last_clock:
            cpu_seconds += clock - last_clock[producer]
            cpu_utts += len(batch["keys"])
        last_clock[producer] = clock
    elapsed = time.perf_counter() - start
    del batches, loader
    setting = f"batch {batch_size}, {_plural(num_workers, 'DataLoader worker')}, no training"
    return Measurement(model_name, MODE_DATA, setting, num_batches, elapsed / num_batches, utts / elapsed,
                       load_average(), cpu_ms_per_utt=1000.0 * cpu_seconds / cpu_utts if cpu_utts else None)


# ------------------------------------------------------------- trainer ---
def time_trainer_step(model_name: str, cores: int, work_dir: str, model_args: Mapping,
                      data: Mapping[str, str], dataset_args: Mapping, batch_size: int,
                      warmup_steps: int, steps: int, seed: int) -> Measurement:
    """Mean wall time of wespk's own training step on one real batch held in memory.

    The trainer is built from the same config as the ``wespk 1 proc`` run, in
    a fresh process with the allocator setting of ``wespk.bin.train``; each
    step sets LR and margin from the schedulers and calls
    :meth:`Trainer.train_step` (DDP wrapper when distributed, autocast, the
    head and loss in fp32, the NaN/Inf guard, the optimizer). With no data
    to make, this row compares the loop itself with the baselines.
    """
    exp_dir = os.path.join(work_dir, "exp", f"{model_name}_step")
    shutil.rmtree(exp_dir, ignore_errors=True)
    config = trainer_config(exp_dir, model_name, model_args, data, dataset_args, batch_size, 0, 1, 1, seed)
    return in_fresh_process(_trainer_step, config, cores, warmup_steps, steps)


def _trainer_step(config: Dict, threads: int, warmup_steps: int, steps: int) -> Measurement:
    from wespk.train.distributed import init_distributed
    from wespk.train.trainer import Trainer
    from wespk.utils.malloc import keep_large_allocations_in_heap

    keep_large_allocations_in_heap()
    torch.set_num_threads(threads)
    for name in ("wespk.train", "wespk.data"):
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = Trainer(config, init_distributed("cpu"))
    trainer.dataset.set_epoch(1)
    batch = next(iter(trainer.dataset))
    trainer.model.train()
    losses = []

    def step(global_step: int) -> None:
        trainer.scheduler.step(global_step)
        if trainer.margin_scheduler is not None:
            trainer.margin_scheduler.step(global_step)
        result = trainer.train_step(batch)
        losses.append(float(result["loss"]) if result is not None else math.nan)

    for i in range(warmup_steps):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup_steps + i)
    elapsed = time.perf_counter() - start
    if not all(math.isfinite(v) for v in losses):
        raise RuntimeError(f"{config['model']}: wespk's step gave a non-finite loss {losses}")
    batch_size = int(batch["labels"].numel())
    setting = (f"1 process x batch {batch_size}, {_plural(threads, 'thread')}, no workers, "
               f"{config['num_class']} classes")
    return Measurement(config["model"], MODE_STEP, setting, steps, elapsed / steps,
                       batch_size * steps / elapsed, load_average())


def trainer_config(exp_dir: str, model_name: str, model_args: Mapping, data: Mapping[str, str],
                   dataset_args: Mapping, per_process_batch: int, num_workers: int,
                   num_epochs: int, log_interval: int, seed: int) -> Dict:
    """A training config in the recipes' shape with the baseline's model, head and optimizer."""
    return {
        "exp_dir": exp_dir, "seed": seed, "num_epochs": num_epochs,
        "log_batch_interval": log_interval, "save_epoch_interval": 1, "keep_last_k": 1,
        "precision": "fp32",
        "data_type": "raw", "train_data": data["raw_list"], "train_label": data["utt2spk"],
        "dataloader_args": dataloader_args(per_process_batch, num_workers),
        "dataset_args": dict(dataset_args),
        "model": model_name, "model_args": dict(model_args),
        "projection_args": dict(PROJECTION_ARGS),
        "loss": "CrossEntropyLoss",
        "optimizer": "SGD", "optimizer_args": dict(SGD_ARGS),
        "scheduler": "ExponentialDecrease",
        "scheduler_args": {"initial_lr": 0.1, "final_lr": 5e-5, "warm_up_epoch": 1, "warm_from_zero": False},
    }


def trainer_command(config_path: str, procs: int) -> List[str]:
    """``python -m wespk.bin.train`` for one process, torchrun (standalone, gloo) for more."""
    if procs == 1:
        launcher = [sys.executable, "-m", "wespk.bin.train"]
    else:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                    f"--nproc_per_node={procs}", "-m", "wespk.bin.train"]
    return launcher + ["--config", config_path, "--device", "cpu"]


def run_trainer(config_path: str, procs: int, threads: int, log_path: str, timeout: float) -> float:
    """Run the trainer to the end; returns its wall time. Raises with the log's tail on failure."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    command = trainer_command(config_path, procs)
    logger.info("running %s (OMP_NUM_THREADS=%d)", shlex.join(command), threads)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"the trainer did not finish in {timeout:.0f} s; see {log_path}") from None
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM): take the trainer's whole session down with us
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    elapsed = time.perf_counter() - start
    if returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"{shlex.join(command)} failed with status {returncode}:\n{tail}")
    return elapsed


@dataclasses.dataclass
class TrainerThroughput:
    """What ``train_metrics.jsonl`` says about speed, the first (warm-up) window left out."""

    steps: int
    seconds_per_step: float
    utts_per_second: float
    #: over the windows that do not start an epoch (None if there are none)
    steady_seconds_per_step: Optional[float]


def trainer_throughput(metrics_path: str, global_batch: int) -> TrainerThroughput:
    """Steps, seconds per step and utterances per second over the logged windows after the first.

    Each record of ``train_metrics.jsonl`` covers the steps since the
    previous record of its epoch (or since the epoch's start) at the rate
    ``utt_per_s``, summed over all processes; a window's time is its
    utterances divided by that rate. A window that starts an epoch also
    holds the DataLoader's restart and its first batch; the steady figure
    leaves those windows out.
    """
    with open(metrics_path, encoding="utf-8") as f:
        records = sorted((json.loads(line) for line in f if line.strip()), key=lambda r: r["global_step"])
    if len(records) < 2:
        raise RuntimeError(f"{metrics_path}: {len(records)} logged window(s); need 2 or more "
                           f"(the first is warm-up)")
    previous_step: Dict[int, int] = {}
    windows = []  # (steps, seconds, starts an epoch)
    for record in records:
        start = previous_step.get(record["epoch"], 0)
        steps = record["step"] - start
        previous_step[record["epoch"]] = record["step"]
        windows.append((steps, steps * global_batch / float(record["utt_per_s"]), start == 0))
    timed = windows[1:]
    steps = sum(w[0] for w in timed)
    seconds = sum(w[1] for w in timed)
    steady = [w for w in timed if not w[2]]
    steady_steps = sum(w[0] for w in steady)
    return TrainerThroughput(steps, seconds / steps, steps * global_batch / seconds,
                             sum(w[1] for w in steady) / steady_steps if steady_steps else None)


def saved_num_class(exp_dir: str) -> int:
    """The head size the trainer used (``num_class`` of the resolved config it saved)."""
    with open(os.path.join(exp_dir, "config.yaml"), encoding="utf-8") as f:
        return int(yaml.safe_load(f)["num_class"])


def count_skipped_steps(train_log: str) -> int:
    """Steps the NaN/Inf guard skipped, from ``train.log``."""
    if not os.path.exists(train_log):
        return 0
    with open(train_log, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if "step skipped" in line)


def time_trainer(model_name: str, procs: int, cores: int, work_dir: str, model_args: Mapping,
                 data: Mapping[str, str], dataset_args: Mapping, batch_size: int, num_workers: int,
                 num_epochs: int, log_interval: int, seed: int, timeout: float) -> Measurement:
    """Train through the real entry point with ``procs`` processes; throughput from its metrics."""
    if batch_size % procs:
        raise ValueError(f"--batch_size {batch_size} does not split over {procs} processes")
    threads = max(1, cores // procs)
    exp_dir = os.path.join(work_dir, "exp", f"{model_name}_{procs}proc")
    # a fresh experiment: the trainer would resume from an earlier run's checkpoints in a reused
    # --work_dir, train nothing and leave that run's metrics to be read as this one's
    shutil.rmtree(exp_dir, ignore_errors=True)
    os.makedirs(exp_dir)
    config = trainer_config(exp_dir, model_name, model_args, data, dataset_args, batch_size // procs,
                            num_workers, num_epochs, log_interval, seed)
    config_path = os.path.join(exp_dir, "benchmark_config.yaml")
    with open(config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    wall = run_trainer(config_path, procs, threads, os.path.join(exp_dir, "benchmark_stderr.log"), timeout)
    speed = trainer_throughput(os.path.join(exp_dir, "train_metrics.jsonl"), batch_size)
    skipped = count_skipped_steps(os.path.join(exp_dir, "train.log"))
    if skipped:
        logger.warning("%s, %d process(es): the NaN/Inf guard skipped %d step(s); "
                       "their time counts but not their utterances", model_name, procs, skipped)
    logger.info("%s, %s: %.1f s wall for %d steps in all", model_name, _plural(procs, "process"), wall,
                num_epochs * (int(dataset_args["sample_num_per_epoch"]) // batch_size))
    each = " each" if procs > 1 else ""
    setting = (f"{_plural(procs, 'process')} x batch {batch_size // procs}, {_plural(threads, 'thread')}{each}, "
               f"{_plural(num_workers, 'worker')}{each}, {saved_num_class(exp_dir)} classes")
    mode = "wespk " + _plural(procs, "proc")
    return Measurement(model_name, mode, setting, speed.steps, speed.seconds_per_step, speed.utts_per_second,
                       load_average(), steady_seconds_per_step=speed.steady_seconds_per_step)


# -------------------------------------------------------------- report ---
def baseline_rate(measurements: Sequence[Measurement], model: str) -> Optional[float]:
    """Utterances per second of the model's baseline row, if any."""
    return next((m.utts_per_second for m in measurements if m.model == model and m.mode == MODE_BASELINE),
                None)


def format_table(measurements: Sequence[Measurement]) -> str:
    """The markdown table of the report (a column of every round's s/step when there were several)."""
    rounds = any(len(m.round_seconds_per_step) > 1 for m in measurements)
    lines = ["| model | mode | setting | steps timed | s/step | utt/s | x baseline (utt/s) | "
             "steady s/step | load (1 min) |" + (" s/step of each round |" if rounds else ""),
             "|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if rounds else "")]
    for m in measurements:
        base = baseline_rate(measurements, m.model)
        ratio = f"{m.utts_per_second / base:.2f}" if base else "-"
        steady = f"{m.steady_seconds_per_step:.3f}" if m.steady_seconds_per_step is not None else "-"
        line = (f"| {m.model} | {m.mode} | {m.setting} | {m.steps} | {m.seconds_per_step:.3f} | "
                f"{m.utts_per_second:.1f} | {ratio} | {steady} | {m.load_1min:.2f} |")
        if rounds:
            line += " " + " ".join(f"{v:.3f}" for v in m.round_seconds_per_step) + " |"
        lines.append(line)
    return "\n".join(lines)


def data_verdicts(measurements: Sequence[Measurement], cores: int) -> List[str]:
    """Per model: how the data pipeline alone compares with what wespk's fastest run consumes.

    Two views: the wall-clock rate (how many times faster the pipeline
    delivers than training takes), and the CPU the pipeline needs at the
    training rate as a share of the cores, which is what it takes away from
    training on the same machine.
    """
    lines = []
    for model in dict.fromkeys(m.model for m in measurements):
        rows = [m for m in measurements if m.model == model]
        data = next((m for m in rows if m.mode == MODE_DATA), None)
        # what the pipeline feeds: wespk's runs (the baseline reads random tensors)
        training = [m for m in rows if m.mode not in (MODE_DATA, MODE_BASELINE, MODE_BASELINE_HEAP, MODE_STEP)]
        if data is None or not training:
            continue
        fastest = max(training, key=lambda m: m.utts_per_second)
        headroom = data.utts_per_second / fastest.utts_per_second
        verdict = "not the bottleneck" if headroom >= 2.0 else "it may limit training"
        line = (f"{model}: the data pipeline alone delivers {data.utts_per_second:.1f} utt/s, "
                f"{headroom:.1f}x what the fastest wespk run ({fastest.mode}, "
                f"{fastest.utts_per_second:.1f} utt/s) consumes: {verdict}")
        if data.cpu_ms_per_utt is not None:
            share = fastest.utts_per_second * data.cpu_ms_per_utt / 1000.0 / cores
            line += (f"; it takes {data.cpu_ms_per_utt:.1f} CPU ms per utterance, so feeding that run "
                     f"costs {100 * share:.1f}% of the {_plural(cores, 'core')}")
        lines.append(line)
    return lines


def format_report(command: str, machine: str, settings: str, measurements: Sequence[Measurement],
                  notes: Sequence[str], cores: int) -> str:
    """The whole markdown report: command, machine and load, settings, table, verdicts and notes."""
    lines = ["# Training throughput on CPU", "", f"Command: `{command}`", "", f"Machine: {machine}.", "",
             f"Settings: {settings}", "", format_table(measurements), "",
             "x baseline: utterances per second divided by the baseline's in this run (above 1 is faster). "
             "steady s/step: wespk's windows that do not start an epoch (a new epoch re-creates the "
             "DataLoader and waits for its first batch, which these short epochs pay often and a real "
             "epoch of thousands of steps pays once). load: the 1-minute load average when the row's "
             "measurement ended.", ""]
    lines += [f"- {line}" for line in list(data_verdicts(measurements, cores)) + list(notes)]
    return "\n".join(lines).rstrip() + "\n"


def trainer_steps_plan(steps: int, log_interval: int, num_epochs: int) -> Tuple[int, int]:
    """``(steps per epoch, timed steps)`` for at least ``steps`` timed after one warm-up window."""
    epoch_iter = max(1, math.ceil((log_interval + steps) / num_epochs))
    if epoch_iter < log_interval:
        raise ValueError(f"an epoch of {epoch_iter} steps is shorter than --log_interval {log_interval}")
    return epoch_iter, num_epochs * epoch_iter - log_interval


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--models", default="ResNet34,ECAPA_TDNN_GLOB_c512",
                        help="comma-separated model names (default: %(default)s)")
    parser.add_argument("--model_args", default="{}",
                        help='JSON merged into every model\'s model_args, e.g. \'{"m_channels": 4}\'')
    parser.add_argument("--steps", type=int, default=8, help="timed steps (default: %(default)s)")
    parser.add_argument("--warmup_steps", type=int, default=2,
                        help="untimed baseline steps (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=16, help="global batch (default: %(default)s)")
    parser.add_argument("--num_frms", type=int, default=200, help="frames per chunk (default: %(default)s)")
    parser.add_argument("--num_class", type=int, default=1000,
                        help="baseline head classes; 0 = the trainer's (default: %(default)s)")
    parser.add_argument("--procs", default="1,2", help="trainer process counts (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="trainer epochs (default: %(default)s)")
    parser.add_argument("--log_interval", type=int, default=2,
                        help="trainer log_batch_interval; the first window is warm-up (default: %(default)s)")
    parser.add_argument("--cores", type=int, default=0,
                        help="cores to share out: the baseline and 1 process use this many threads, "
                             "N processes cores / N each (default: all this process may run on)")
    parser.add_argument("--num_workers", type=int, default=1,
                        help="DataLoader workers per process (default: %(default)s)")
    parser.add_argument("--aug_prob", type=float, default=0.2,
                        help="probability of noise or reverberation per utterance (default: %(default)s)")
    parser.add_argument("--corpus", default=str(CORPUS_TRAIN),
                        help="folder of speaker folders of audio (default: the bundled corpus)")
    parser.add_argument("--work_dir", default=None,
                        help="keep lists, configs and exp dirs here (default: a temporary dir)")
    parser.add_argument("--output_md", default=None, help="also write the report here")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of all the measurements, one after the other; each row shows its "
                             "median round and every round's s/step (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds allowed per trainer run (default: %(default)s)")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so that a running trainer is stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    setup_logging()
    logging.getLogger("wespk.data").setLevel(logging.WARNING)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    procs_list = [int(p) for p in args.procs.split(",") if p.strip()]
    try:
        extra_model_args = json.loads(args.model_args)
    except json.JSONDecodeError as e:
        parser.error(f"--model_args is not JSON: {e}")
    if not isinstance(extra_model_args, dict):
        parser.error("--model_args must be a JSON object")
    if (args.steps < 1 or args.log_interval < 1 or args.epochs < 1 or args.repeats < 1 or args.cores < 0
            or any(p < 1 for p in procs_list)):
        parser.error("--steps, --log_interval, --epochs, --repeats and --procs must be positive, --cores >= 0")
    from wespk.models import get_speaker_model
    for model in models:
        try:
            get_speaker_model(model)
        except ValueError as e:
            parser.error(str(e))
    for procs in procs_list:
        if args.batch_size % procs:
            parser.error(f"--batch_size {args.batch_size} does not split over {procs} processes")
    try:
        epoch_iter, trainer_timed_steps = trainer_steps_plan(args.steps, args.log_interval, args.epochs)
    except ValueError as e:
        parser.error(str(e))

    cores = args.cores or usable_cores()
    command = "python -m benchmarks.train " + shlex.join(
        list(argv) if argv is not None else sys.argv[1:])
    load_before = os.getloadavg()
    started = time.time()
    measurements: List[Measurement] = []
    notes: List[str] = []
    with tempfile.TemporaryDirectory(prefix="wespk-bench-train-") as tmp:
        work_dir = os.path.abspath(args.work_dir or tmp)
        os.makedirs(work_dir, exist_ok=True)
        logger.info("building the raw list, noise set and RIRs in %s", work_dir)
        data = prepare_training_data(work_dir, args.corpus, args.seed)
        dataset_args = training_dataset_args(args.num_frms, args.aug_prob, data["noise"], data["rirs"],
                                             epoch_iter * args.batch_size)
        from wespk.data.dataset import SpeakerDataset, read_spk2id
        trainer_classes = SpeakerDataset(data["raw_list"], "raw", dataset_args,
                                         read_spk2id(data["utt2spk"]), batch_size=args.batch_size).num_classes
        baseline_classes = args.num_class or trainer_classes
        try:
            for round_index in range(args.repeats):
                if args.repeats > 1:
                    logger.info("round %d of %d", round_index + 1, args.repeats)
                for model in models:
                    model_args = model_args_for(model, extra_model_args)
                    logger.info("%s: baseline eager loop, %d + %d steps", model, args.warmup_steps, args.steps)
                    for keep_heap in (False, True):
                        measurements.append(time_eager_baseline(
                            model, model_args, baseline_classes, args.batch_size, args.num_frms,
                            args.warmup_steps, args.steps, cores, args.seed, keep_heap))
                    logger.info("%s: wespk's step on a batch in memory, %d + %d steps", model,
                                args.warmup_steps, args.steps)
                    measurements.append(time_trainer_step(
                        model, cores, work_dir, model_args, data, dataset_args, args.batch_size,
                        args.warmup_steps, args.steps, args.seed))
                    for procs in procs_list:
                        measurements.append(time_trainer(
                            model, procs, cores, work_dir, model_args, data, dataset_args, args.batch_size,
                            args.num_workers, args.epochs, args.log_interval, args.seed, args.timeout))
                    logger.info("%s: the data pipeline alone, %d batches", model, trainer_timed_steps)
                    measurements.append(time_data_only(model, data, dataset_args, args.batch_size,
                                                       args.num_workers, trainer_timed_steps, args.seed))
                    if baseline_classes != trainer_classes and round_index == 0:
                        share_base = head_flops_share(model, model_args, args.num_frms, baseline_classes)
                        share_trainer = head_flops_share(model, model_args, args.num_frms, trainer_classes)
                        notes.append(f"{model}: the baseline head ({baseline_classes} classes) is "
                                     f"{100 * share_base:.3f}% of the model's FLOPs, the trainer's "
                                     f"({trainer_classes} classes) {100 * share_trainer:.3f}%")
        except (RuntimeError, ValueError, TypeError) as e:  # TypeError: model_args the model lacks
            print(f"benchmarks.train: {e}", file=sys.stderr)
            return 1
    load_after = os.getloadavg()
    measurements = median_rounds(measurements)

    corpus = os.path.abspath(args.corpus)
    if corpus.startswith(str(REPO_ROOT) + os.sep):
        corpus = os.path.relpath(corpus, REPO_ROOT)
    settings = (
        f"global batch {args.batch_size} x {args.num_frms} frames x {FEAT_DIM} fbank; "
        f"arc_margin head (scale {PROJECTION_ARGS['scale']}, margin {PROJECTION_ARGS['margin']}); "
        f"SGD (momentum 0.9, Nesterov, weight decay 1e-4); fp32. Baseline: random features, "
        f"{baseline_classes} classes, {_plural(args.warmup_steps, 'warm-up step')}. wespk: real audio "
        f"({corpus}, speed perturbation, {trainer_classes} classes, aug_prob {args.aug_prob} noise/reverb), "
        f"{args.epochs} epochs of {epoch_iter} steps, a log line every {_plural(args.log_interval, 'step')}, "
        f"the first window skipped. Data only: as many batches as the 1-process run timed, after one "
        f"warm-up batch.")
    machine = (f"{cpu_name()}, {usable_cores()} cores ({cores} used); torch {torch.__version__}; "
               f"load average (1/5/15 min) "
               f"{'/'.join(f'{v:.2f}' for v in load_before)} before, "
               f"{'/'.join(f'{v:.2f}' for v in load_after)} after; {time.time() - started:.0f} s in all")
    text = format_report(command, machine, settings, measurements, notes, cores)
    print(text)
    if args.output_md:
        from wespk.io.files import atomic_output
        with atomic_output(args.output_md) as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
