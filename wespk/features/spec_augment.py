"""SpecAugment time and frequency masks on a ``[frames, bins]`` feature matrix."""

import numpy as np
import torch


def spec_augment(feats: torch.Tensor, rng: np.random.Generator, num_t_mask: int = 1,
                 num_f_mask: int = 1, max_t: int = 10, max_f: int = 8) -> torch.Tensor:
    """Return a copy of ``feats`` with random time and frequency bands set to 0.

    Each of the ``num_t_mask`` time masks starts at a uniform frame and spans
    1..``max_t`` frames (clipped at the end); likewise ``num_f_mask`` bands of
    1..``max_f`` bins. Masks are drawn from ``rng``, so the result is a pure
    function of the generator's state.
    """
    out = feats.clone()
    frames, bins = out.shape
    if frames == 0 or bins == 0:
        return out
    for _ in range(num_t_mask):
        start = int(rng.integers(0, frames))
        width = int(rng.integers(1, max_t + 1))
        out[start:start + width, :] = 0.0
    for _ in range(num_f_mask):
        start = int(rng.integers(0, bins))
        width = int(rng.integers(1, max_f + 1))
        out[:, start:start + width] = 0.0
    return out
