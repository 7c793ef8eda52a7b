"""The ``rdm_mlp`` denoiser: an MLP of residual blocks conditioned on the diffusion timestep.

For embedding dimension ``D`` the hidden width is ``2D`` and the timestep
embedding width ``D``. The last linear layer of every block and of the output
starts at zero, so an untrained network outputs zeros and every block starts
as the identity.
"""

import math

import torch
from torch import nn

#: Networks an enhancer dir can name.
NETWORKS = ("rdm_mlp",)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[N, dim]`` of timesteps ``[N]``: ``[cos | sin]`` of ``t * f_i``,
    ``f_i = exp(-ln(max_period) i / (dim / 2))`` for ``i < dim / 2`` (odd ``dim``: a zero column appended)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def zero_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer whose weight and bias start at zero."""
    layer = nn.Linear(in_features, out_features)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ResidualBlock(nn.Module):
    """``h + out(in(h) + emb_proj(emb))`` with LayerNorm-SiLU-Linear in and LayerNorm-SiLU-Dropout-ZeroLinear out."""

    def __init__(self, channels: int, emb_channels: int, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.Sequential(nn.LayerNorm(channels), nn.SiLU(), nn.Linear(channels, channels))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, channels))
        self.out_layers = nn.Sequential(nn.LayerNorm(channels), nn.SiLU(), nn.Dropout(p=dropout),
                                        zero_linear(channels, channels))

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.out_layers(self.in_layers(h) + self.emb_layers(emb))


class RdmMLP(nn.Module):
    """The SEED denoiser ``g(x_t, t)`` for ``embed_dim``-dimensional embeddings; predicts ``x_0``.

    State-dict names follow the reference implementation (``input_proj``,
    ``time_embed``, ``res_blocks.N.{in,emb,out}_layers``, ``out``).
    """

    def __init__(self, embed_dim: int, num_layers: int = 3, dropout: float = 0.0):
        super().__init__()
        if embed_dim < 1 or num_layers < 0:
            raise ValueError(f"embed_dim must be >= 1 and num_layers >= 0, got {embed_dim}, {num_layers}")
        self.embed_dim = embed_dim
        self.model_channels = 2 * embed_dim
        self.input_proj = nn.Linear(embed_dim, self.model_channels)
        self.time_embed = nn.Sequential(nn.Linear(self.model_channels, embed_dim), nn.SiLU(),
                                        nn.Linear(embed_dim, embed_dim))
        self.res_blocks = nn.ModuleList(ResidualBlock(self.model_channels, embed_dim, dropout)
                                        for _ in range(num_layers))
        self.out = nn.Sequential(nn.LayerNorm(self.model_channels, eps=1e-6), nn.SiLU(),
                                 zero_linear(self.model_channels, embed_dim))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """``x`` [B, D] noisy embeddings, ``timesteps`` [B] integers -> predicted clean embeddings [B, D]."""
        h = self.input_proj(x)
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        for block in self.res_blocks:
            h = block(h, emb)
        return self.out(h)


def build_network(name: str, embed_dim: int, **kwargs) -> nn.Module:
    """The network ``name`` (one of :data:`NETWORKS`) for ``embed_dim``."""
    if name != "rdm_mlp":
        raise ValueError(f"unknown enhancement network {name!r}; known: {', '.join(NETWORKS)}")
    return RdmMLP(embed_dim, **kwargs)
