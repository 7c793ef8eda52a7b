"""Small real pieces for the enhancement tests: a tiny ResNet model dir and a non-trivial enhancer."""

from pathlib import Path

import torch
import yaml

from wespk.enhance.enhancer import Enhancer, backbone_info

EMBED_DIM = 16


def make_model_dir(root: Path, seed: int = 0) -> Path:
    """A wespk model dir with a tiny random ResNet34 (16-dim embeddings)."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"model": "ResNet34",
              "model_args": {"feat_dim": 80, "embed_dim": EMBED_DIM, "m_channels": 4, "two_emb_layer": False},
              "dataset_args": {"resample_rate": 16000, "fbank_args": {"num_mel_bins": 80}}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    from wespk.models import get_speaker_model
    torch.manual_seed(seed)
    model = get_speaker_model("ResNet34")(**config["model_args"])
    torch.save(model.state_dict(), root / "avg_model.pt")
    return root


def perturbed_enhancer(model_dir=None, embed_dim: int = EMBED_DIM, seed: int = 0) -> Enhancer:
    """An enhancer whose zero-initialised layers got random weights, so its output is not trivial."""
    backbone = backbone_info(str(model_dir), embed_dim) if model_dir is not None else None
    enhancer = Enhancer.create(embed_dim, network={"num_layers": 2}, backbone=backbone)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in enhancer.network.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return enhancer
