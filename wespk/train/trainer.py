"""The training loop: one code path for 1..N processes on CPU or GPU.

The epoch length is fixed, ``epoch_iter = utterances // (world_size *
batch_size)`` steps (or ``dataset_args.sample_num_per_epoch`` utterances), as
in WeSpeaker, so every process takes the same number of steps and the
schedules depend only on the global step. The data stream is a pure function
of (seed, epoch, rank, worker), which makes resume exact: a checkpoint records
the epoch and the steps done in it, and the dataset skips that many batches.
"""

import json
import logging
import os
import random
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from wespk.io.files import write_png
from wespk.io.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from wespk.io.config import save_config
from wespk.train import checkpoint as ckpt
from wespk.train.distributed import DistInfo, all_reduce_sum, autocast_context, barrier, is_distributed
from wespk.train.schedulers import build_margin_scheduler, build_scheduler

logger = logging.getLogger(__name__)

DEFAULT_OPTIMIZER_ARGS = {"SGD": {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}}


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def resolve_precision(config: Dict, requested: Optional[str], device: torch.device) -> str:
    """``fp32|bf16|fp16`` from the CLI, else ``precision``, else ``enable_amp``."""
    precision = requested or config.get("precision")
    if precision is None:
        precision = ("fp16" if device.type == "cuda" else "bf16") if config.get("enable_amp") else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 training needs a CUDA device; use bf16 on CPU")
    return precision


def build_optimizer(name: str, param_groups: List[Dict], args: Dict) -> torch.optim.Optimizer:
    args = dict(args or DEFAULT_OPTIMIZER_ARGS.get(name, {}))
    args.pop("lr", None)  # the scheduler sets it every step
    classes = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(classes)}")
    return classes[name](param_groups, lr=0.0, **args)


def encoder_param_groups(model: torch.nn.Module, freeze_layers: List[str],
                         encoder_lr_ratio: float) -> List[Dict]:
    """Parameter groups: frozen prefixes removed, encoder scaled by ``encoder_lr_ratio``."""
    head, encoder, frozen = [], [], []
    for name, param in model.named_parameters():
        if any(name == p or name.startswith(p + ".") for p in freeze_layers):
            param.requires_grad_(False)
            frozen.append(name)
        elif name.startswith("projection."):
            head.append(param)
        else:
            encoder.append(param)
    if freeze_layers:
        unknown = [p for p in freeze_layers
                   if not any(n == p or n.startswith(p + ".") for n, _ in model.named_parameters())]
        if unknown:
            raise ValueError(f"freeze_layers: no parameters under {unknown}")
        logger.info("frozen %d parameter tensors under %s", len(frozen), freeze_layers)
    groups = [{"params": encoder, "lr_ratio": encoder_lr_ratio, "name": "encoder"}]
    if head:
        groups.append({"params": head, "lr_ratio": 1.0, "name": "head"})
    return [g for g in groups if g["params"]]


class MetricsHistory:
    """Per-log-interval training metrics in ``<exp>/train_metrics.jsonl``."""

    def __init__(self, path: str):
        self.path = path

    def truncate_after(self, global_step: int) -> None:
        """Drop records past ``global_step`` (written before a kill, then redone)."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            keep = [line for line in f if line.strip() and json.loads(line)["global_step"] <= global_step]
        with open(self.path, "w", encoding="utf-8") as f:
            f.writelines(keep)

    def append(self, record: Dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read(self) -> List[Dict]:
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


#: How DataLoader workers start (``dataloader_args.multiprocessing_context``), by device type. Workers
#: are re-created every epoch (each epoch's data order is fixed by ``set_epoch``). Forked straight from
#: a CPU trainer, a worker shares the trainer's heap copy-on-write, and the trainer's first step of
#: every epoch then copies its activation memory page by page (about 1 s per epoch for ResNet34 on 2
#: CPU cores); a fork server, started once with torch and the data pipeline imported, forks small
#: workers instead, at the price of pickling the dataset for each worker (about 12 s for a raw list
#: of a million utterances; shard lists are small). On a GPU the activations are not in the heap, so
#: plain fork keeps its advantage there.
DEFAULT_WORKER_START = {"cpu": "forkserver"}
DEFAULT_WORKER_START_OTHER = "fork"


def worker_context(method: Optional[str]):
    """The multiprocessing context for DataLoader workers: ``forkserver``, ``fork`` or ``spawn``
    (a method the platform lacks falls back to its default when it is wespk's default choice);
    None or ``default`` keeps the platform's default."""
    import multiprocessing
    if method is None or method == "default":
        return None
    if method not in multiprocessing.get_all_start_methods():
        if method in (*DEFAULT_WORKER_START.values(), DEFAULT_WORKER_START_OTHER):
            return None  # e.g. Windows: the platform default (spawn)
        raise ValueError(f"dataloader_args.multiprocessing_context {method!r} is not available here "
                         f"(choose from {', '.join(multiprocessing.get_all_start_methods())})")
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["torch", "wespk.data.dataset"])
    return context


def plot_training_curves(records: List[Dict], png_path: str,
                         validation: Sequence[Tuple[int, float]] = ()) -> None:
    """Loss and accuracy against the (fractional) epoch, saved as a PNG; ``validation``:
    ``(epoch, dev EER %)`` points drawn with the loss (wespk.train.validation)."""
    if not records:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = [r["epoch_float"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(x, [r["loss"] for r in records])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax1.grid(alpha=0.3)
    if validation:
        ax_eer = ax1.twinx()
        ax_eer.plot([e for e, _ in validation], [v for _, v in validation], "o-", color="tab:red")
        ax_eer.set_ylabel("dev EER (%)", color="tab:red")
    ax2.plot(x, [100 * r["acc"] for r in records], color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training accuracy (%)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    write_png(fig, png_path)
    plt.close(fig)


def _format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Trainer:
    """Builds data, model, head, optimizer and schedules from a config; runs epochs."""

    def __init__(self, config: Dict, dist_info: DistInfo, precision: Optional[str] = None,
                 checkpoint: Optional[str] = None, trust_checkpoint: bool = False, validation=None):
        """``validation``: an end-of-epoch hook such as :class:`wespk.train.validation.EpochValidation`
        (``after_epoch(epoch, checkpoint) -> stop`` and ``curve()``), or None."""
        from wespk.data.dataset import BalancedSpeakerDataset, SpeakerDataset, count_utterances, read_spk2id
        from wespk.losses import build_loss, get_projection
        from wespk.models import get_speaker_model

        self.config = config
        self.trust_checkpoint = trust_checkpoint  # also accept data-only globals (never code)
        self.validation = validation
        self.dist = dist_info
        self.device = dist_info.device
        self.precision = resolve_precision(config, precision, self.device)
        self.exp_dir = config["exp_dir"]
        self.model_dir = os.path.join(self.exp_dir, "models")
        os.makedirs(self.model_dir, exist_ok=True)
        self.seed = int(config.get("seed", 42))
        set_seed(self.seed)

        loader_args = dict(config.get("dataloader_args", {}))
        # GE2E trains on balanced batches of num_spks speakers x num_utts_per_spk utterances
        self.ge2e = config.get("loss") == "GE2E"
        self.ge2e_shape = (int(loader_args.pop("num_spks", 64)), int(loader_args.pop("num_utts_per_spk", 10)))
        self.batch_size = int(loader_args.pop("batch_size", 32))
        if self.ge2e:
            self.batch_size = self.ge2e_shape[0] * self.ge2e_shape[1]
        self.num_workers = int(loader_args.pop("num_workers", 0))
        self.loader_args = {k: v for k, v in loader_args.items() if k in ("pin_memory", "prefetch_factor")}
        if self.num_workers == 0:
            self.loader_args.pop("prefetch_factor", None)
        else:
            default_start = DEFAULT_WORKER_START.get(self.device.type, DEFAULT_WORKER_START_OTHER)
            self.loader_args["multiprocessing_context"] = worker_context(
                loader_args.get("multiprocessing_context", default_start))

        # data
        spk2id = read_spk2id(config["train_label"])
        dataset_args = dict(config.get("dataset_args", {}))
        if self.ge2e:
            self.dataset = BalancedSpeakerDataset(config["train_data"], config.get("data_type", "raw"),
                                                  dataset_args, spk2id, num_spks=self.ge2e_shape[0],
                                                  num_utts_per_spk=self.ge2e_shape[1], seed=self.seed,
                                                  train=True, rank=dist_info.rank,
                                                  world_size=dist_info.world_size)
        else:
            self.dataset = SpeakerDataset(config["train_data"], config.get("data_type", "raw"),
                                          dataset_args, spk2id, seed=self.seed,
                                          batch_size=self.batch_size, train=True,
                                          rank=dist_info.rank, world_size=dist_info.world_size)
        num_utts = dataset_args.get("sample_num_per_epoch") or count_utterances(config["train_data"])
        self.epoch_iter = int(num_utts) // (dist_info.world_size * self.batch_size)
        if self.epoch_iter < 1:
            raise ValueError(f"{config['train_data']}: {num_utts} utterances are fewer than one global "
                             f"batch ({dist_info.world_size} processes x batch_size {self.batch_size})")
        self.num_epochs = int(config.get("num_epochs", 1))
        num_class = self.dataset.num_classes
        config["num_class"] = num_class

        # model and head; the head is the `projection` submodule, as in WeSpeaker
        self.model = get_speaker_model(config["model"])(**config.get("model_args", {}))
        if self.ge2e:
            # the GE2E loss (with its learnable scale and bias) plays the head's part
            from wespk.losses.ge2e import GE2ELoss
            self.model.add_module("projection", GE2ELoss(**(config.get("loss_args") or {})))
        else:
            projection_args = dict(config.get("projection_args", {}))
            projection_args.setdefault("embed_dim", config.get("model_args", {}).get("embed_dim", 256))
            projection_args["num_class"] = num_class
            self.model.add_module("projection", get_projection(projection_args))
        if config.get("model_init"):
            missing, _ = load_model_weights(self.model, config["model_init"], trust=trust_checkpoint)
            if any(k.startswith("projection.") for k in missing):
                logger.info("initialised the encoder from %s; new head for %d classes",
                            config["model_init"], num_class)
            else:
                logger.info("initialised encoder and head from %s", config["model_init"])
        self.model.to(self.device)

        self.frozen_prefixes = list(config.get("freeze_layers") or [])
        groups = encoder_param_groups(self.model, self.frozen_prefixes,
                                      float(config.get("encoder_lr_ratio", 1.0)))
        # an SSL frontend gets its own group (frontend_lr_ratio), a frozen one none
        from wespk.frontends.training import frontend_param_groups
        groups = frontend_param_groups(self.model, groups)
        self.optimizer = build_optimizer(config.get("optimizer", "SGD"), groups,
                                         config.get("optimizer_args"))
        scheduler_args = dict(config.get("scheduler_args", {}))
        # WeSpeaker's linear scaling rule: the LR follows the *global* batch.
        scheduler_args["scale_ratio"] = dist_info.world_size * self.batch_size / 64.0
        scheduler_args.update(num_epochs=self.num_epochs, epoch_iter=self.epoch_iter)
        self.scheduler = build_scheduler(config.get("scheduler", "ExponentialDecrease"),
                                         self.optimizer, **scheduler_args)
        self.margin_scheduler = None
        if config.get("margin_scheduler") and not self.ge2e:
            margin_args = dict(config.get("margin_update", {}))
            margin_args["epoch_iter"] = self.epoch_iter
            self.margin_scheduler = build_margin_scheduler(config["margin_scheduler"],
                                                           self.model.projection, **margin_args)
        self.criterion = None if self.ge2e else build_loss(config.get("loss", "CrossEntropyLoss"),
                                                           **(config.get("loss_args") or {}))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.clip_grad = config.get("clip_grad", config.get("grad_clip"))
        self.log_interval = int(config.get("log_batch_interval", 100))
        self.save_interval = int(config.get("save_interval", 0) or 0)
        self.save_epoch_interval = int(config.get("save_epoch_interval", 1))
        self.keep_last_k = int(config.get("keep_last_k", 0) or 0)
        self.history = MetricsHistory(os.path.join(self.exp_dir, "train_metrics.jsonl"))
        # optional audit trail: which utterances each rank trained on, per step
        self.batch_keys_path = None
        if config.get("save_batch_keys"):
            self.batch_keys_path = os.path.join(self.exp_dir, "batch_keys", f"rank{dist_info.rank}.txt")
            os.makedirs(os.path.dirname(self.batch_keys_path), exist_ok=True)
        self.skipped_steps = 0
        self.skipped_utts = 0  # unusable utterances the data pipeline dropped (this rank)

        # resume
        self.start_epoch, self.start_step = 1, 0
        path = checkpoint or ckpt.latest_checkpoint(self.model_dir, trust_checkpoint)
        if path:
            self._resume(path)
        elif dist_info.is_main:
            self.history.truncate_after(-1)

        if dist_info.is_main:
            save_config(config, os.path.join(self.exp_dir, "config.yaml"))
            n_params = sum(p.numel() for n, p in self.model.named_parameters() if not n.startswith("projection."))
            logger.info("model %s: %.2fM parameters (without head); head %s with %d classes",
                        config["model"], n_params / 1e6, type(self.model.projection).__name__, num_class)
            logger.info("%d processes x batch %d = global batch %d; %d steps per epoch; %d epochs; "
                        "LR scale ratio %.3f; precision %s; device %s",
                        dist_info.world_size, self.batch_size, dist_info.world_size * self.batch_size,
                        self.epoch_iter, self.num_epochs, scheduler_args["scale_ratio"],
                        self.precision, self.device)

        self.ddp_model = self.model
        if is_distributed():
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            from wespk.frontends.training import ddp_options  # layerdrop leaves layers unused
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids,
                                                                       **ddp_options(self.model))

    # -- checkpoints ---------------------------------------------------------
    def _resume(self, path: str) -> None:
        state = load_checkpoint(path, self.trust_checkpoint)
        if not isinstance(state, dict) or "optimizer" not in state:
            raise RuntimeError(f"{path}: not a training checkpoint (no optimizer state); "
                               f"use model_init to start from model weights")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.margin_scheduler is not None and state.get("margin_scheduler"):
            self.margin_scheduler.load_state_dict(state["margin_scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        rng_states = state.get("rng") or []
        if self.dist.rank < len(rng_states):
            ckpt.set_rng_state(rng_states[self.dist.rank])
        self.skipped_steps = state.get("skipped_steps", 0)
        epoch, done = state["epoch"], state["step_in_epoch"]
        if done >= self.epoch_iter:
            self.start_epoch, self.start_step = epoch + 1, 0
        else:
            self.start_epoch, self.start_step = epoch, done
        if self.dist.is_main:
            self.history.truncate_after(state["global_step"])
        if self.batch_keys_path and os.path.exists(self.batch_keys_path):
            with open(self.batch_keys_path, encoding="utf-8") as f:
                keep = [line for line in f if (int(line.split()[0]), int(line.split()[1])) <= (epoch, done)]
            with open(self.batch_keys_path, "w", encoding="utf-8") as f:
                f.writelines(keep)
        logger.info("resumed from %s: epoch %d, %d of %d steps done", path, epoch, done, self.epoch_iter)

    def _save(self, epoch: int, step_in_epoch: int) -> None:
        # every rank's RNG state goes into the (rank-0) checkpoint
        rng_states = [ckpt.rng_state()]
        if is_distributed():
            rng_states = [None] * self.dist.world_size
            torch.distributed.all_gather_object(rng_states, ckpt.rng_state())
        if self.dist.is_main:
            end_of_epoch = step_in_epoch >= self.epoch_iter
            name = f"model_{epoch}.pt" if end_of_epoch else f"model_{epoch}_{step_in_epoch}.pt"
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "margin_scheduler": self.margin_scheduler.state_dict() if self.margin_scheduler else None,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "epoch": epoch, "step_in_epoch": step_in_epoch,
                "global_step": (epoch - 1) * self.epoch_iter + step_in_epoch,
                "skipped_steps": self.skipped_steps,
                "rng": rng_states, "config": self.config,
            }
            save_checkpoint(os.path.join(self.model_dir, name), state)
            removed = ckpt.prune_checkpoints(self.model_dir, self.keep_last_k)
            logger.info("saved %s%s", name, f"; removed {len(removed)} old checkpoint(s)" if removed else "")
        barrier()

    # -- the loop ------------------------------------------------------------
    def train_step(self, batch: Dict) -> Optional[Dict]:
        """One optimisation step on ``batch`` (the LR and margin set by the caller's schedulers);
        returns loss, accuracy and utterance count, or None when the NaN/Inf guard skipped it."""
        feats = batch["feats"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        with autocast_context(self.device, self.precision):
            outputs = self.ddp_model(feats)
        embeds = outputs[-1] if isinstance(outputs, (tuple, list)) else outputs
        # margin head and loss in fp32
        with torch.autocast(device_type=self.device.type, enabled=False):
            if self.ge2e:
                num_spks, num_utts = self.ge2e_shape
                loss, acc = self.model.projection(embeds.float().view(num_spks, num_utts, -1),
                                                  return_accuracy=True)
                logits = None
            else:
                logits = self.model.projection(embeds.float(), labels)
                if isinstance(logits, tuple):
                    logits, loss = logits
                else:
                    loss = self.criterion(logits, labels)
        # NaN/Inf guard, agreed by all ranks so that DDP stays in step
        bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0], device=self.device)
        if float(all_reduce_sum(bad).item()) > 0:
            # every rank skips backward, so DDP's reducer stays consistent
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_grad:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.clip_grad))
            if not torch.isfinite(grad_norm) and not self.scaler.is_enabled():
                self.optimizer.zero_grad(set_to_none=True)
                return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if logits is not None:
            acc = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"loss": loss.detach(), "acc": acc, "n": labels.numel()}

    def fit(self) -> None:
        total_steps = self.num_epochs * self.epoch_iter
        progress = None
        if self.dist.is_main and sys.stderr.isatty():
            from tqdm import tqdm
            progress = tqdm(total=total_steps, initial=(self.start_epoch - 1) * self.epoch_iter + self.start_step,
                            unit="step", dynamic_ncols=True)
        for epoch in range(self.start_epoch, self.num_epochs + 1):
            skip = self.start_step if epoch == self.start_epoch else 0
            self.model.train()
            for name, module in self.model.named_modules():
                # frozen layers keep their BatchNorm statistics too
                if any(name == p or name.startswith(p + ".") for p in self.frozen_prefixes):
                    module.eval()
            self.dataset.set_epoch(epoch, skip_batches=skip)
            loader = DataLoader(self.dataset, batch_size=None, num_workers=self.num_workers,
                                **self.loader_args)
            batches = iter(loader)
            window_loss, window_acc, window_n, window_steps = 0.0, 0.0, 0, 0
            t_window = time.time()
            t_start, steps_run = time.time(), 0
            for step in range(skip, self.epoch_iter):
                global_step = (epoch - 1) * self.epoch_iter + step
                lr = self.scheduler.step(global_step)
                margin = self.margin_scheduler.step(global_step) if self.margin_scheduler else None
                batch = next(batches)
                self.skipped_utts += int(batch.get("num_skipped", 0))
                if self.batch_keys_path:
                    with open(self.batch_keys_path, "a", encoding="utf-8") as f:
                        f.write(f"{epoch} {step + 1} {' '.join(batch['keys'])}\n")
                result = self.train_step(batch)
                steps_run += 1
                if result is None:
                    self.skipped_steps += 1
                    logger.warning("epoch %d step %d: non-finite loss or gradient, step skipped "
                                   "(%d skipped so far); batch keys %s", epoch, step + 1,
                                   self.skipped_steps, list(batch["keys"][:4]))
                else:
                    window_loss += float(result["loss"]) * result["n"]
                    window_acc += float(result["acc"]) * result["n"]
                    window_n += result["n"]
                    window_steps += 1
                if progress is not None:
                    progress.update(1)
                done = step + 1
                if (done % self.log_interval == 0 or done == self.epoch_iter) and window_steps:
                    stats = torch.tensor([window_loss, window_acc, float(window_n), float(self.skipped_utts)],
                                         dtype=torch.float64, device=self.device)
                    stats = all_reduce_sum(stats).cpu()
                    skipped_text = f" ({int(stats[3])} bad utterances skipped so far)" if stats[3] else ""
                    loss_avg, acc_avg = float(stats[0] / stats[2]), float(stats[1] / stats[2])
                    elapsed = time.time() - t_window
                    utt_per_s = float(stats[2]) / max(elapsed, 1e-9)
                    rate = steps_run / max(time.time() - t_start, 1e-9)
                    eta = (total_steps - global_step - 1) / max(rate, 1e-9)
                    if self.dist.is_main:
                        margin_text = f" margin {margin:.3f}" if margin is not None else ""
                        logger.info("epoch %d/%d step %d/%d loss %.4f acc %.2f%% lr %.5f%s "
                                    "%.1f utt/s ETA %s%s", epoch, self.num_epochs, done, self.epoch_iter,
                                    loss_avg, 100 * acc_avg, lr, margin_text, utt_per_s, _format_eta(eta),
                                    skipped_text)
                        self.history.append({"epoch": epoch, "step": done, "global_step": global_step + 1,
                                             "epoch_float": epoch - 1 + done / self.epoch_iter,
                                             "loss": loss_avg, "acc": acc_avg, "lr": lr,
                                             "margin": margin, "utt_per_s": utt_per_s})
                    window_loss, window_acc, window_n, window_steps = 0.0, 0.0, 0, 0
                    t_window = time.time()
                if self.save_interval and done % self.save_interval == 0 and done < self.epoch_iter:
                    self._save(epoch, done)
            del batches, loader
            if epoch % self.save_epoch_interval == 0 or epoch == self.num_epochs:
                self._save(epoch, self.epoch_iter)
                if self.validation is not None and self.validation.after_epoch(
                        epoch, os.path.join(self.model_dir, f"model_{epoch}.pt")):
                    break  # early stopping on the dev EER
        if progress is not None:
            progress.close()
        if self.dist.is_main:
            plot_training_curves(self.history.read(), os.path.join(self.exp_dir, "train_curves.png"),
                                 self.validation.curve() if self.validation is not None else ())
            if self.skipped_steps:
                logger.warning("%d step(s) were skipped for non-finite loss or gradients", self.skipped_steps)
            logger.info("training finished: %s", self.model_dir)
