"""Training a SEED enhancer for a frozen speaker model, without speaker labels.

Every step takes ``batch_size`` utterances of the list; from each one a
``chunk_seconds`` crop is cut and degraded in each of the ``degradations``
(``clean``, ``reverb`` or a noise category such as ``music``, ``noise``,
``babble``, at that category's SNR range). The frozen backbone (eval mode)
embeds every version; the clean crop's embedding ``e*`` is the target of all
of them: for each version ``e_k`` a timestep ``t ~ U{0..T-1}`` and noise
``eps`` give ``x_t = sqrt(abar_t) e_k + sqrt(1 - abar_t) eps`` and the loss is
``L1(g(x_t, t), e*)``. AdamW at a constant rate.

All randomness of a crop (its position, noise file, SNR, RIR, timesteps and
Gaussian noise) comes from a generator seeded by ``(seed, epoch, utterance
index)``, and the epoch order from ``(seed, epoch)``: a run killed at any
point and resumed from its last checkpoint (model, optimizer, position)
continues exactly as if it had not stopped, and the crops do not depend on
the number of processes.
"""

import dataclasses
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from wespk.enhance.enhancer import Enhancer, backbone_info
from wespk.io.files import DataFileError, write_png

logger = logging.getLogger(__name__)

#: Top-level keys of an enhancer training config (docs/enhance.md).
ENHANCER_CONFIG_KEYS = frozenset({
    "backbone", "train_data", "noise_data", "reverb_data", "exp_dir", "seed", "num_epochs", "batch_size",
    "chunk_seconds", "degradations", "normalise_training", "network", "schedule", "optimizer_args",
    "inference", "save_interval_steps", "log_interval_steps", "keep_last_k", "device",
})

DEFAULTS: Dict[str, Any] = {
    "seed": 0, "num_epochs": 10, "batch_size": 300, "chunk_seconds": 2.0,
    "degradations": ["clean", "music", "noise", "reverb"], "normalise_training": False,
    "network": {"name": "rdm_mlp", "num_layers": 3, "dropout": 0.0}, "schedule": {},
    "optimizer_args": {"lr": 5e-4, "weight_decay": 5e-5}, "inference": {"t": 50, "steps": 1},
    "save_interval_steps": 0, "log_interval_steps": 10, "keep_last_k": 2, "noise_data": None,
    "reverb_data": None, "device": "cpu",
}


def resolve_config(config: Dict[str, Any], source: str = "config") -> Dict[str, Any]:
    """``config`` with defaults filled in; unknown or missing keys are errors naming ``source``."""
    unknown = sorted(set(config) - ENHANCER_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown config key(s) {', '.join(unknown)}; known keys: "
                         f"{', '.join(sorted(ENHANCER_CONFIG_KEYS))}")
    resolved = {**DEFAULTS, **config}
    for section in ("network", "optimizer_args", "inference"):
        resolved[section] = {**DEFAULTS[section], **(config.get(section) or {})}
    missing = [k for k in ("backbone", "train_data", "exp_dir") if not resolved.get(k)]
    if missing:
        raise ValueError(f"{source}: missing {', '.join(missing)}")
    for kind in resolved["degradations"]:
        if kind == "reverb" and not resolved["reverb_data"]:
            raise ValueError(f"{source}: degradation 'reverb' needs reverb_data")
        if kind not in ("clean", "reverb") and not resolved["noise_data"]:
            raise ValueError(f"{source}: degradation {kind!r} needs noise_data")
    if "clean" not in resolved["degradations"][:1]:
        logger.info("degradations do not start with 'clean': the clean crop is the target only")
    return resolved


def read_audio_list(path: str) -> List[str]:
    """Audio paths of a list: one path a line, or ``key path`` (a wav.scp), or a data dir's wav.scp."""
    if os.path.isdir(path):
        path = os.path.join(path, "wav.scp")
    sources = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) > 2 or fields[-1].endswith("|"):
                raise DataFileError(path, line_no, "expected an audio path or 'key path' (no commands)")
            sources.append(fields[-1])
    if not sources:
        raise DataFileError(path, None, "no audio paths")
    return sources


def crop_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def epoch_order(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch), 1 << 30]).permutation(count)


@dataclasses.dataclass
class StepTiming:
    backbone_seconds: float = 0.0     # audio, degradation, features and backbone forward
    diffusion_seconds: float = 0.0    # network forward, backward, all-reduce, optimizer
    embeddings: int = 0


class EnhancerTrainer:
    """Builds the backbone, the crops and the enhancer of a resolved config; runs epochs on one rank."""

    def __init__(self, config: Dict[str, Any], rank: int = 0, world_size: int = 1, device: str = "cpu"):
        from wespk.augment.noise import NoiseSet
        from wespk.augment.reverb import RirSet
        from wespk.inference.extractor import EmbeddingExtractor
        from wespk.inference.model_dir import load_speaker_model
        self.config = config
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.seed = int(config["seed"])
        self.sources = read_audio_list(config["train_data"])
        model, model_config = load_speaker_model(config["backbone"], device=device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.extractor = EmbeddingExtractor(model, model_config, device)
        self.sample_rate = self.extractor.sample_rate
        self.chunk_samples = int(round(float(config["chunk_seconds"]) * self.sample_rate))
        self.degradations = list(config["degradations"])
        self.noise_set = NoiseSet(config["noise_data"]) if config.get("noise_data") else None
        self.rir_set = RirSet(config["reverb_data"]) if config.get("reverb_data") else None
        if self.noise_set is not None:
            absent = [k for k in self.degradations if k not in ("clean", "reverb")
                      and k not in self.noise_set.categories]
            if absent:
                raise ValueError(f"{config['noise_data']}: no noise of categories {absent} "
                                 f"(it has {', '.join(self.noise_set.categories)})")
        self.batch_size = min(int(config["batch_size"]), len(self.sources))
        if self.batch_size < world_size:
            raise ValueError(f"batch_size {self.batch_size} is smaller than the {world_size} processes")
        self.steps_per_epoch = len(self.sources) // self.batch_size
        first = self.crop_versions(0, 0)[0]
        embed_dim = int(self.extractor.embed_features([self.extractor.features(first, self.sample_rate)]).shape[1])
        self.embed_dim = embed_dim
        torch.manual_seed(self.seed)   # the same initial network on every rank
        self.enhancer = Enhancer.create(embed_dim, config["network"], config.get("schedule"),
                                        backbone_info(config["backbone"], embed_dim), device)
        self.enhancer.t, self.enhancer.steps = int(config["inference"]["t"]), int(config["inference"]["steps"])
        self.enhancer.schedule.timesteps_from(self.enhancer.t, self.enhancer.steps)
        self.network = self.enhancer.network
        self.network.train()
        self.ddp = None
        if world_size > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.network)
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=float(config["optimizer_args"]["lr"]),
                                           weight_decay=float(config["optimizer_args"]["weight_decay"]))
        self.epoch, self.step_in_epoch, self.global_step = 1, 0, 0
        self.timing = StepTiming()

    # ---- data ----
    def crop_versions(self, epoch: int, index: int) -> List[np.ndarray]:
        """Utterance ``index``'s crop in ``epoch`` followed by its degraded versions (in ``degradations``
        order, ``clean`` left out: its embedding is the clean crop's)."""
        from wespk.augment.noise import repeat_to_length
        from wespk.augment.reverb import reverberate_with
        from wespk.io.audio import load_audio, resample
        rng = crop_generator(self.seed, epoch, index)
        samples, rate = load_audio(self.sources[index])
        if rate != self.sample_rate:
            samples = resample(samples, rate, self.sample_rate)
        if len(samples) > self.chunk_samples:
            start = int(rng.integers(0, len(samples) - self.chunk_samples + 1))
            crop = samples[start:start + self.chunk_samples]
        else:
            crop = repeat_to_length(samples, self.chunk_samples)
        crop = np.ascontiguousarray(crop, dtype=np.float32)
        versions = [crop]
        for kind in self.degradations:
            if kind == "clean":
                continue
            if kind == "reverb":
                versions.append(reverberate_with(self.rir_set, crop, self.sample_rate, rng))
            else:
                noise, _ = self.noise_set.make_noise(crop, self.sample_rate, kind, rng)
                versions.append((crop + noise).astype(np.float32))
        return versions

    def step_indices(self, epoch: int, step: int) -> List[int]:
        """This rank's utterance indices for ``step`` (0-based) of ``epoch``."""
        order = epoch_order(self.seed, epoch, len(self.sources))
        batch = order[step * self.batch_size:(step + 1) * self.batch_size]
        return [int(i) for i in batch[self.rank::self.world_size]]

    @torch.no_grad()
    def embed_crops(self, epoch: int, indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(inputs [N*K, D], targets [N*K, D])`` for the ``K`` degradations: the backbone's embedding
        of every version and the clean crop's, in (utterance, degradation) order."""
        feats = []
        for index in indices:
            feats.extend(self.extractor.features(v, self.sample_rate) for v in self.crop_versions(epoch, index))
        emb = torch.from_numpy(self.extractor.embed_features(feats))
        per_crop = self.backbone_embeddings_per_crop
        inputs, targets = [], []
        for first in range(0, len(emb), per_crop):
            row = first + 1
            for kind in self.degradations:
                if kind == "clean":
                    inputs.append(emb[first])
                else:
                    inputs.append(emb[row])
                    row += 1
                targets.append(emb[first])
        return torch.stack(inputs), torch.stack(targets)

    @property
    def backbone_embeddings_per_crop(self) -> int:
        """The clean crop plus one per degradation other than ``clean``."""
        return 1 + sum(kind != "clean" for kind in self.degradations)

    def diffusion_noise(self, epoch: int, indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Timesteps ``[N*K]`` and Gaussian noise ``[N*K, D]`` of these crops (seeded per crop)."""
        k = len(self.degradations)
        steps, noise = [], []
        T = self.enhancer.schedule.num_train_timesteps
        for index in indices:
            rng = np.random.default_rng([self.seed, epoch, int(index), 1])
            steps.append(rng.integers(0, T, size=k))
            noise.append(rng.standard_normal((k, self.embed_dim)))
        return (torch.from_numpy(np.concatenate(steps)).long(),
                torch.from_numpy(np.concatenate(noise)).float())

    # ---- optimisation ----
    def train_step(self, epoch: int, step: int) -> Tuple[float, int]:
        """One optimiser step; returns ``(sum of per-element L1 over all ranks, element count)``."""
        indices = self.step_indices(epoch, step)
        t0 = time.perf_counter()
        inputs, targets = self.embed_crops(epoch, indices)
        t1 = time.perf_counter()
        result = self.diffusion_update(epoch, indices, inputs, targets)
        t2 = time.perf_counter()
        self.timing.backbone_seconds += t1 - t0
        self.timing.diffusion_seconds += t2 - t1
        self.timing.embeddings += len(indices) * self.backbone_embeddings_per_crop
        return result

    def diffusion_update(self, epoch: int, indices: Sequence[int], inputs: torch.Tensor,
                         targets: torch.Tensor) -> Tuple[float, int]:
        """The diffusion half of a step on the backbone's embeddings of these crops: noising, the
        network's forward and backward, the gradient all-reduce and the AdamW update."""
        from wespk.train.distributed import all_reduce_sum
        timesteps, noise = self.diffusion_noise(epoch, indices)
        schedule = self.enhancer.schedule
        if self.config["normalise_training"]:
            inputs, targets = schedule.normalise(inputs), schedule.normalise(targets)
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        x_t = schedule.add_noise(inputs, noise.to(self.device), timesteps.to(self.device))
        torch.manual_seed(hash_seed(self.seed, self.global_step, self.rank))   # dropout, if any
        net = self.ddp if self.ddp is not None else self.network
        pred = net(x_t, timesteps.to(self.device))
        loss = torch.nn.functional.l1_loss(pred, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        totals = all_reduce_sum(torch.tensor([float(loss.detach()) * targets.numel(), float(targets.numel())],
                                             dtype=torch.float64))
        return float(totals[0]), int(totals[1])

    # ---- checkpoints ----
    def state(self, losses: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {"model": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "config": self.config, "embed_dim": self.embed_dim}

    def load_state(self, state: Dict[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])


def hash_seed(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


def plot_loss_curve(records: List[Dict[str, Any]], png_path: str) -> None:
    """Training L1 loss against the (fractional) epoch, as a PNG."""
    if not records:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot([r["epoch_float"] for r in records], [r["loss"] for r in records])
    ax.set_xlabel("epoch")
    ax.set_ylabel("L1 loss (x0 prediction)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    write_png(fig, png_path)
    plt.close(fig)


def train_enhancer(config: Dict[str, Any], rank: int = 0, world_size: int = 1, device: str = "cpu") -> Optional[str]:
    """Train (or resume) the enhancer of a resolved config in ``exp_dir``; returns the enhancer dir on rank 0.

    ``exp_dir`` gets ``config.yaml``, ``models/model_<epoch>[_<step>].pt`` (full training state,
    weights-only loadable), ``train_metrics.jsonl``, ``loss_curve.png`` and, at the end, the enhancer
    itself (``enhancer.yaml``, ``enhancer.pt``): ``exp_dir`` is the enhancer dir.
    """
    from wespk.io.checkpoint import load_checkpoint, save_checkpoint
    from wespk.io.config import save_config
    from wespk.train.checkpoint import latest_checkpoint, prune_checkpoints
    from wespk.train.distributed import barrier
    from wespk.train.trainer import MetricsHistory
    exp_dir = config["exp_dir"]
    models_dir = os.path.join(exp_dir, "models")
    os.makedirs(models_dir, exist_ok=True)
    trainer = EnhancerTrainer(config, rank, world_size, device)
    history = MetricsHistory(os.path.join(exp_dir, "train_metrics.jsonl"))
    resume = latest_checkpoint(models_dir)
    if resume:
        trainer.load_state(load_checkpoint(resume))
        logger.info("resuming from %s (epoch %d, step %d)", resume, trainer.epoch, trainer.step_in_epoch)
        if trainer.step_in_epoch >= trainer.steps_per_epoch:
            trainer.epoch, trainer.step_in_epoch = trainer.epoch + 1, 0
    if rank == 0:
        save_config(config, os.path.join(exp_dir, "config.yaml"))
        history.truncate_after(trainer.global_step)
    num_epochs = int(config["num_epochs"])
    save_every = int(config["save_interval_steps"])
    log_every = max(1, int(config["log_interval_steps"]))
    total_steps = num_epochs * trainer.steps_per_epoch
    logger.info("training a %s enhancer (D = %d, %d parameters) for %s: %d utterances, %d steps/epoch of %d crops x "
                "%d backbone embeddings, %d process(es)", config["network"]["name"], trainer.embed_dim,
                sum(p.numel() for p in trainer.network.parameters()), config["backbone"], len(trainer.sources),
                trainer.steps_per_epoch, trainer.batch_size, trainer.backbone_embeddings_per_crop, world_size)
    start, start_step = time.time(), trainer.global_step
    window_loss, window_count = 0.0, 0

    def save(epoch: int, step_in_epoch: int) -> None:
        if rank == 0:
            name = f"model_{epoch}.pt" if step_in_epoch >= trainer.steps_per_epoch else f"model_{epoch}_{step_in_epoch}.pt"
            save_checkpoint(os.path.join(models_dir, name), trainer.state([]))
            prune_checkpoints(models_dir, int(config["keep_last_k"]))
        barrier()

    while trainer.epoch <= num_epochs:
        epoch = trainer.epoch
        while trainer.step_in_epoch < trainer.steps_per_epoch:
            loss_sum, count = trainer.train_step(epoch, trainer.step_in_epoch)
            trainer.step_in_epoch += 1
            trainer.global_step += 1
            window_loss += loss_sum
            window_count += count
            if trainer.global_step % log_every == 0 or trainer.step_in_epoch == trainer.steps_per_epoch:
                timing = trainer.timing
                busy = max(timing.backbone_seconds + timing.diffusion_seconds, 1e-9)
                done = trainer.global_step - start_step
                eta = (total_steps - trainer.global_step) * (time.time() - start) / max(done, 1)
                loss = window_loss / max(window_count, 1)
                logger.info("epoch %d/%d step %d/%d loss %.4f %.1f embeddings/s (backbone %.0f%%, diffusion %.0f%% "
                            "of the step) ETA %d s", epoch, num_epochs, trainer.step_in_epoch,
                            trainer.steps_per_epoch, loss, timing.embeddings * world_size / busy,
                            100 * timing.backbone_seconds / busy, 100 * timing.diffusion_seconds / busy, eta)
                if rank == 0:
                    history.append({"global_step": trainer.global_step, "epoch": epoch,
                                    "epoch_float": epoch - 1 + trainer.step_in_epoch / trainer.steps_per_epoch,
                                    "loss": loss})
                window_loss, window_count = 0.0, 0
            if save_every > 0 and trainer.global_step % save_every == 0 \
                    and trainer.step_in_epoch < trainer.steps_per_epoch:
                save(epoch, trainer.step_in_epoch)
        save(epoch, trainer.step_in_epoch)
        if rank == 0:
            plot_loss_curve(history.read(), os.path.join(exp_dir, "loss_curve.png"))
        trainer.epoch, trainer.step_in_epoch = epoch + 1, 0
    if rank == 0:
        trainer.network.eval()
        trainer.enhancer.save(exp_dir)
        logger.info("wrote the enhancer to %s (enhancer.yaml, enhancer.pt)", exp_dir)
        return exp_dir
    return None
