"""An enhancer dir: a trained SEED network, its process and the backbone it belongs to.

Layout::

    enhancer.yaml   network, schedule, inference defaults and the backbone
                    (model name, embedding dim, sha256 of its model file)
    enhancer.pt     the network's state_dict (read weights-only)

An enhancer is only valid for embeddings of the backbone it was trained on:
:func:`check_backbone` refuses any other model dir. Enhancement draws its
Gaussian noise per utterance key from ``(seed, key)``, so an embedding's
enhanced value does not depend on the batch it is in or on the job count.
"""

import dataclasses
import hashlib
import logging
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
import yaml

from wespk.enhance.network import build_network
from wespk.enhance.schedule import DiffusionSchedule, ScheduleConfig
from wespk.io.checkpoint import load_state_dict, save_checkpoint
from wespk.io.files import atomic_output, file_sha256

logger = logging.getLogger(__name__)

CONFIG_NAME = "enhancer.yaml"
WEIGHTS_NAME = "enhancer.pt"
#: SEED's inference defaults: one step from t = 50.
DEFAULT_T = 50
DEFAULT_STEPS = 1


class EnhancerError(ValueError):
    """An enhancer dir that cannot be used, or used with the wrong backbone or embeddings."""


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """What identifies a speaker model: its name, embedding dim and the sha256 of its model file."""
    name: str
    embed_dim: int
    checkpoint_sha256: str
    model_dir: str = ""      # where it was when the enhancer was trained (information only)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def backbone_info(model_dir: str, embed_dim: int) -> BackboneInfo:
    """The :class:`BackboneInfo` of a wespk model dir whose embeddings have ``embed_dim``."""
    from wespk.inference.model_dir import find_model_file, load_model_config
    config = load_model_config(model_dir)
    return BackboneInfo(str(config["model"]), int(embed_dim), file_sha256(find_model_file(model_dir)),
                        os.path.abspath(model_dir))


def key_noise(seed: int, key: str, dim: int) -> torch.Tensor:
    """Standard Gaussian noise ``[dim]`` that depends only on ``(seed, key)``."""
    digest = hashlib.sha256(f"{int(seed)}\0{key}".encode("utf-8")).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return torch.randn(dim, generator=generator)


class Enhancer:
    """A SEED network with its schedule; :meth:`enhance` maps embeddings to enhanced embeddings."""

    def __init__(self, network: torch.nn.Module, schedule: DiffusionSchedule, backbone: Optional[BackboneInfo],
                 network_config: Dict[str, Any], t: int = DEFAULT_T, steps: int = DEFAULT_STEPS,
                 device: str = "cpu"):
        self.network = network.to(device).eval()
        self.schedule = schedule
        self.backbone = backbone
        self.network_config = dict(network_config)
        self.embed_dim = schedule.embed_dim
        self.device = torch.device(device)
        schedule.timesteps_from(t, steps)   # validates
        self.t, self.steps = int(t), int(steps)

    @classmethod
    def create(cls, embed_dim: int, network: Optional[Dict[str, Any]] = None,
               schedule: Optional[Dict[str, Any]] = None, backbone: Optional[BackboneInfo] = None,
               device: str = "cpu") -> "Enhancer":
        """A freshly initialised (untrained) enhancer."""
        network_config = {"name": "rdm_mlp", "num_layers": 3, "dropout": 0.0, **(network or {})}
        kwargs = {k: v for k, v in network_config.items() if k != "name"}
        net = build_network(network_config["name"], embed_dim, **kwargs)
        return cls(net, DiffusionSchedule(embed_dim, ScheduleConfig.from_dict(schedule or {})), backbone,
                   network_config, device=device)

    def to_config(self) -> Dict[str, Any]:
        return {"embed_dim": self.embed_dim, "network": self.network_config,
                "schedule": dataclasses.asdict(self.schedule.config),
                "inference": {"t": self.t, "steps": self.steps},
                "backbone": self.backbone.to_dict() if self.backbone else None}

    def save(self, enhancer_dir: str) -> None:
        """Write ``enhancer.pt`` and ``enhancer.yaml`` (atomically) into ``enhancer_dir``."""
        os.makedirs(enhancer_dir, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        save_checkpoint(os.path.join(enhancer_dir, WEIGHTS_NAME), {"model": state})
        with atomic_output(os.path.join(enhancer_dir, CONFIG_NAME)) as f:
            yaml.safe_dump(self.to_config(), f, sort_keys=False)

    @classmethod
    def load(cls, enhancer_dir: str, device: str = "cpu") -> "Enhancer":
        """Read an enhancer dir (weights with ``torch.load(weights_only=True)``)."""
        config = read_enhancer_config(enhancer_dir)
        config_path = os.path.join(enhancer_dir, CONFIG_NAME)
        weights_path = os.path.join(enhancer_dir, WEIGHTS_NAME)
        try:
            inference = config.get("inference") or {}
            enhancer = cls.create(int(config["embed_dim"]), config.get("network"), config.get("schedule"),
                                  enhancer_backbone(enhancer_dir, config), device)
        except (KeyError, TypeError, ValueError) as e:
            raise EnhancerError(f"{config_path}: bad enhancer config ({type(e).__name__}: {e})") from None
        state = load_state_dict(weights_path)
        try:
            enhancer.network.load_state_dict(state)
        except RuntimeError as e:
            raise EnhancerError(f"{weights_path}: weights do not fit the network of {config_path}: "
                                f"{str(e).splitlines()[0]}") from None
        enhancer.network.to(device).eval()
        schedule_steps = (int(inference.get("t", DEFAULT_T)), int(inference.get("steps", DEFAULT_STEPS)))
        enhancer.schedule.timesteps_from(*schedule_steps)
        enhancer.t, enhancer.steps = schedule_steps
        return enhancer

    def check_backbone(self, model_dir: str) -> None:
        """Refuse (:class:`EnhancerError`) a model dir other than the backbone this enhancer was trained for."""
        check_backbone(self.backbone, model_dir)

    def enhance(self, keys: Sequence[str], embeddings: np.ndarray, seed: int,
                t: Optional[int] = None, steps: Optional[int] = None) -> np.ndarray:
        """Enhanced embeddings ``[N, D]`` (float32) of ``embeddings`` ``[N, D]`` keyed by ``keys``.

        Each input is scaled to norm ``sqrt(D)``, noised to step ``t`` with the
        key's own noise and denoised in ``steps`` DDIM steps (defaults: the
        enhancer dir's, SEED's one step from t = 50).
        """
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.embed_dim:
            raise EnhancerError(f"the enhancer takes {self.embed_dim}-dimensional embeddings, got shape "
                                f"{tuple(embeddings.shape)}")
        if len(keys) != len(embeddings):
            raise ValueError(f"{len(keys)} keys for {len(embeddings)} embeddings")
        if len(keys) == 0:
            return embeddings.copy()
        t = self.t if t is None else int(t)
        steps = self.steps if steps is None else int(steps)
        noise = torch.stack([key_noise(seed, key, self.embed_dim) for key in keys]).to(self.device)
        x0 = self.schedule.normalise(torch.from_numpy(embeddings).to(self.device))
        with torch.inference_mode():
            out = self.schedule.denoise(self.network, x0, noise, t, steps)
        return out.float().cpu().numpy()


def read_enhancer_config(enhancer_dir: str) -> Dict[str, Any]:
    """The ``enhancer.yaml`` of an enhancer dir (which must also hold ``enhancer.pt``)."""
    config_path = os.path.join(enhancer_dir, CONFIG_NAME)
    for path in (config_path, os.path.join(enhancer_dir, WEIGHTS_NAME)):
        if not os.path.isfile(path):
            raise EnhancerError(f"{enhancer_dir}: not an enhancer dir (no {os.path.basename(path)}; "
                                f"train one with wespk.bin.train_enhancer)")
    with open(config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict) or "embed_dim" not in config:
        raise EnhancerError(f"{config_path}: bad enhancer config (no embed_dim)")
    return config


def enhancer_backbone(enhancer_dir: str, config: Dict[str, Any]) -> Optional[BackboneInfo]:
    try:
        return BackboneInfo(**config["backbone"]) if config.get("backbone") else None
    except TypeError as e:
        raise EnhancerError(f"{os.path.join(enhancer_dir, CONFIG_NAME)}: bad backbone entry ({e})") from None


def check_backbone(backbone: Optional[BackboneInfo], model_dir: str) -> None:
    """Refuse (:class:`EnhancerError`) a model dir that is not ``backbone`` (by model name and model-file hash)."""
    if backbone is None:
        raise EnhancerError(f"this enhancer records no backbone, so it cannot be checked against {model_dir}")
    from wespk.inference.model_dir import find_model_file, load_model_config
    name = str(load_model_config(model_dir)["model"])
    path = find_model_file(model_dir)
    digest = file_sha256(path)
    if name != backbone.name or digest != backbone.checkpoint_sha256:
        raise EnhancerError(
            f"{model_dir}: the enhancer was trained for {backbone.name} with model file sha256 "
            f"{backbone.checkpoint_sha256[:12]}... ({backbone.model_dir or 'unknown dir'}), not "
            f"{name} with {os.path.basename(path)} sha256 {digest[:12]}...; train an enhancer for this model")


def load_enhancer(enhancer_dir: str, model_dir: Optional[str] = None, device: str = "cpu") -> Enhancer:
    """:meth:`Enhancer.load`, checked first against ``model_dir`` when given."""
    if model_dir is not None:
        check_backbone(enhancer_backbone(enhancer_dir, read_enhancer_config(enhancer_dir)), model_dir)
    return Enhancer.load(enhancer_dir, device)


class EnhancementStep:
    """The extraction engine's post-processing hook ``(keys, embeddings) -> embeddings`` for an enhancer dir.

    Picklable (it holds only the dir, the seed and the options; the enhancer
    is loaded on first use in each process), so ``--nj`` jobs can run it; the
    per-key noise makes the result independent of how the list was split.
    ``model_dir``, when given, is checked against the enhancer's backbone at
    construction, before any audio is read.
    """

    def __init__(self, enhancer_dir: str, seed: int = 0, t: Optional[int] = None, steps: Optional[int] = None,
                 model_dir: Optional[str] = None, device: str = "cpu"):
        config = read_enhancer_config(enhancer_dir)
        if model_dir is not None:
            check_backbone(enhancer_backbone(enhancer_dir, config), model_dir)
        self.enhancer_dir, self.seed, self.t, self.steps, self.device = enhancer_dir, int(seed), t, steps, device
        self._enhancer: Optional[Enhancer] = None

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_enhancer": None}

    def __call__(self, keys: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        if self._enhancer is None:
            self._enhancer = Enhancer.load(self.enhancer_dir, self.device)
        return self._enhancer.enhance(keys, embeddings, self.seed, self.t, self.steps)


def content_key(model_input: torch.Tensor) -> str:
    """A key for an input that has none (in-memory audio): the sha256 of its model input, so its
    enhanced embedding depends only on the audio and the seed, not on the batch."""
    data = np.ascontiguousarray(torch.as_tensor(model_input).detach().cpu().numpy())
    return "sha256:" + hashlib.sha256(data.tobytes() + str(data.shape).encode()).hexdigest()[:32]
