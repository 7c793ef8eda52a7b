"""SEED training speed: embeddings/s of a train_enhancer step against the backbone embeddings alone.

``python -m benchmarks.enhance [--backbone MODEL_DIR] [--batch_size 46] [--repeats 3] [--threads 2]``

A training step of :mod:`wespk.enhance.training` computes the frozen
backbone's embeddings of every crop's versions (audio, degradation,
features, forward) and then runs the diffusion update (noising, rdm_mlp
forward and backward, AdamW). The baseline, measured in the same run and in
turns with the step, is the same embeddings computed alone; the report gives
both rates and the diffusion network's share of the step, also timed on its
own on the step's embeddings. Default backbone: the seed recipe's ResNet
(examples/mini/seed/exp/resnet), else a random-weight ResNet34 of the mini
recipe's size; audio from corpus/mini/train; noise and RIR sets are built in
a temporary dir.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from benchmarks.timing import cpu_name, load_averages, round_robin_seconds

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BACKBONE = REPO / "examples" / "mini" / "seed" / "exp" / "resnet"


def random_backbone(root: Path) -> Path:
    """A random-weight ResNet34 model dir with the mini recipe's sizes (128-dim, m_channels 8)."""
    from wespk.models import get_speaker_model
    root.mkdir(parents=True, exist_ok=True)
    config = {"model": "ResNet34", "model_args": {"feat_dim": 80, "embed_dim": 128, "m_channels": 8,
                                                  "two_emb_layer": False},
              "dataset_args": {"resample_rate": 16000, "fbank_args": {"num_mel_bins": 80}}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    torch.save(get_speaker_model("ResNet34")(**config["model_args"]).state_dict(), root / "avg_model.pt")
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default=None, help="model dir (default: %s if present)" % DEFAULT_BACKBONE)
    parser.add_argument("--batch_size", type=int, default=46, help="crops per step (x4 versions)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    from wespk.enhance.training import EnhancerTrainer, resolve_config
    load_before = load_averages()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backbone = Path(args.backbone) if args.backbone else (
            DEFAULT_BACKBONE if (DEFAULT_BACKBONE / "config.yaml").is_file() else random_backbone(tmp / "resnet"))
        files = sorted((REPO / "corpus" / "mini" / "train").glob("*/*.flac"))
        (tmp / "audio.list").write_text("".join(f"{p}\n" for p in files))
        build_noise_set(str(tmp / "noise"), num_coloured=10, num_babble=0, seed=1)
        build_rir_set(str(tmp / "rirs"), num_rirs=10, seed=2)
        config = resolve_config({"backbone": str(backbone), "train_data": str(tmp / "audio.list"),
                                 "noise_data": str(tmp / "noise"), "reverb_data": str(tmp / "rirs"),
                                 "exp_dir": str(tmp / "exp"), "batch_size": args.batch_size,
                                 "degradations": ["clean", "noise", "noise", "reverb"],
                                 "normalise_training": True})
        trainer = EnhancerTrainer(config)
        indices = trainer.step_indices(1, 0)
        embeddings = len(indices) * trainer.backbone_embeddings_per_crop
        cached = trainer.embed_crops(1, indices)
        runs = {
            "backbone embeddings alone": lambda: trainer.embed_crops(1, indices),
            "train_enhancer step": lambda: trainer.train_step(1, 0),
            "diffusion update alone": lambda: trainer.diffusion_update(1, indices, *cached),
        }
        seconds = round_robin_seconds(runs, warmup={"train_enhancer step": 1, "diffusion update alone": 1},
                                      repeats=args.repeats)
    params = sum(p.numel() for p in trainer.network.parameters())
    print(f"# SEED training speed ({cpu_name()}, {torch.get_num_threads()} threads, load {load_before} -> "
          f"{load_averages()})")
    print(f"backbone {config['backbone']} ({trainer.embed_dim}-dim), rdm_mlp {params:,} parameters, "
          f"{len(indices)} crops x {trainer.backbone_embeddings_per_crop} versions = {embeddings} backbone embeddings per step, "
          f"median of {args.repeats} rounds\n")
    print("| run | seconds per step | embeddings/s | vs backbone alone |")
    print("| --- | ---: | ---: | ---: |")
    base = seconds["backbone embeddings alone"]
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {embeddings / value:.1f} | {base / value:.2f}x |")
    share = seconds["diffusion update alone"] / seconds["train_enhancer step"]
    print(f"\ndiffusion network's share of a step: {100 * share:.1f}% (diffusion update alone / step); "
          f"step minus backbone: {100 * (seconds['train_enhancer step'] - base) / seconds['train_enhancer step']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
