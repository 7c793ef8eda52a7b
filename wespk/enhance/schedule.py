"""The diffusion process of SEED: diffusers' DDIM schedule, x0 prediction, clipped.

1000 training timesteps with ``scaled_linear`` betas from 1e-4 to 0.02
(``alpha_bar(50) = 0.99084``); the network predicts the clean embedding
(``prediction_type = sample``), clipped to ``+-3 sqrt(D)``. ``diffusers`` is
an optional dependency (``tools/install.sh --enhance``), imported only here.
"""

import dataclasses
import logging
from typing import Any, Dict, List

import torch

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """What fixes the process; stored in the enhancer dir."""
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "sample"
    clip_scale: float = 3.0      # x0 predictions clipped to +-clip_scale * sqrt(D)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ScheduleConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown schedule keys {unknown}; known: {sorted(known)}")
        return cls(**values)


def _ddim_scheduler_class():
    try:
        from diffusers import DDIMScheduler
    except ImportError:
        raise ImportError("embedding enhancement needs diffusers: bash tools/install.sh --enhance "
                          "(or pip install -r requirements-enhance.txt)") from None
    return DDIMScheduler


class DiffusionSchedule:
    """Noising and denoising of ``embed_dim``-dimensional embeddings on diffusers' DDIM schedule."""

    def __init__(self, embed_dim: int, config: ScheduleConfig = ScheduleConfig()):
        if config.prediction_type != "sample":
            raise ValueError(f"only prediction_type 'sample' (x0 prediction) is supported, got "
                             f"{config.prediction_type!r}")
        self.config = config
        self.embed_dim = embed_dim
        self.scale = float(embed_dim) ** 0.5
        self.clip_range = config.clip_scale * self.scale
        self.scheduler = _ddim_scheduler_class()(
            num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
            beta_end=config.beta_end, beta_schedule=config.beta_schedule,
            prediction_type=config.prediction_type, clip_sample=True, clip_sample_range=self.clip_range)
        self.alphas_cumprod = self.scheduler.alphas_cumprod.to(torch.float32)

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def alpha_bar(self, t: int) -> float:
        return float(self.alphas_cumprod[int(t)])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` per row."""
        return self.scheduler.add_noise(x0, noise, timesteps.to(torch.long))

    def normalise(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``sqrt(D) e / |e|``: the scale inference works at."""
        return torch.nn.functional.normalize(embeddings, dim=-1) * self.scale

    def clip(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.clamp(-self.clip_range, self.clip_range)

    def timesteps_from(self, t_start: int, steps: int) -> List[int]:
        """``steps`` DDIM timesteps from ``t_start`` down, evenly spaced (the last one > 0 unless t_start is 0)."""
        if not 0 <= t_start < self.num_train_timesteps:
            raise ValueError(f"t must be in [0, {self.num_train_timesteps - 1}], got {t_start}")
        if steps < 1 or steps > max(t_start, 1):
            raise ValueError(f"steps must be in [1, {max(t_start, 1)}] for t = {t_start}, got {steps}")
        return [round(t_start * (steps - i) / steps) for i in range(steps)]

    @torch.no_grad()
    def denoise(self, network: torch.nn.Module, x0: torch.Tensor, noise: torch.Tensor,
                t_start: int = 50, steps: int = 1) -> torch.Tensor:
        """Noise ``x0`` to ``t_start`` with ``noise`` and run ``steps`` deterministic DDIM steps (eta 0)
        back to ``t = 0``; returns the last clipped x0 prediction. ``steps = 1`` is SEED's one-step
        inference: the network's clipped prediction from ``x_t``."""
        timesteps = self.timesteps_from(t_start, steps)
        batch = x0.shape[0]
        x_t = self.add_noise(x0, noise, torch.full((batch,), timesteps[0], dtype=torch.long, device=x0.device))
        pred = x0
        for i, t in enumerate(timesteps):
            pred = self.clip(network(x_t, torch.full((batch,), t, dtype=torch.long, device=x0.device)))
            if i + 1 == len(timesteps):
                break
            a_t = self.alphas_cumprod[t].to(x0.device)
            a_prev = self.alphas_cumprod[timesteps[i + 1]].to(x0.device)
            eps = (x_t - a_t.sqrt() * pred) / (1 - a_t).sqrt()
            x_t = a_prev.sqrt() * pred + (1 - a_prev).sqrt() * eps
        return pred
