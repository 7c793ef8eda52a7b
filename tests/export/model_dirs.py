"""Small model dirs for the export, CLI and API tests.

A model dir is ``config.yaml`` + ``avg_model.pt`` with random weights. The
batch-norm statistics are calibrated on fbank of real bundled speech (one
train-mode pass with cumulative averaging), so activations have realistic
scales and embeddings are O(1), as in a trained model - random running
statistics make deep nets such as RepVGG blow up to 1e7.
"""

import os
from pathlib import Path
from typing import Dict, Optional

import pytest
import torch
import yaml

from tests.conftest import CORPUS

#: family -> (model name, small model_args); feat_dim is the fbank size.
SMALL_MODELS: Dict[str, tuple] = {
    "XVEC": ("XVEC", dict(feat_dim=40, hid_dim=64, stats_dim=96, embed_dim=32)),
    "ECAPA_TDNN_GLOB_c512": ("ECAPA_TDNN_GLOB_c512", dict(feat_dim=24, embed_dim=32)),
    "ResNet34": ("ResNet34", dict(feat_dim=16, embed_dim=32)),
    "CAMPPlus": ("CAMPPlus", dict(feat_dim=16, embed_dim=32, growth_rate=8, bn_size=2, init_channels=16)),
    "REPVGG_TINY_A0": ("REPVGG_TINY_A0", dict(feat_dim=16, embed_dim=32)),
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run torch single-threaded in the test modules that import this fixture; restore afterwards.

    On a machine shared with other jobs, two OpenMP threads spin against the
    other processes and cost two to three times the CPU time of one; the
    embeddings do not depend on the thread count. Subprocesses get
    ``OMP_NUM_THREADS=1`` from :func:`subprocess_env`.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def subprocess_env() -> Dict[str, str]:
    """The environment for ``wespk`` subprocesses: single-threaded, no ``WESPK_MODEL``."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WESPK_MODEL", None)
    return env


def bundled_test_audio(speaker_index: int = 0, utt_index: int = 0) -> Path:
    """A bundled test utterance: the ``utt_index``-th file of the ``speaker_index``-th test speaker."""
    speakers = sorted(p for p in (CORPUS / "test").iterdir() if p.is_dir())
    return sorted(speakers[speaker_index].glob("*.flac"))[utt_index]


def fbank_config(model: str, model_args: dict) -> dict:
    return {"model": model, "model_args": dict(model_args),
            "dataset_args": {"resample_rate": 16000, "cmn": True,
                             "fbank_args": {"num_mel_bins": model_args["feat_dim"], "frame_length": 25,
                                            "frame_shift": 10}}}


def calibrate_batch_norm(model: torch.nn.Module, config: dict, num_files: int = 8) -> None:
    """Set every BN's running statistics from one train-mode pass over 2 s of real speech per file."""
    from benchmarks.extract import calibrate_batch_norm as calibrate_on_features
    from wespk.inference.frontend import FeatureFrontend
    from wespk.io.audio import load_audio
    frontend = FeatureFrontend(config)
    feats = []
    for i in range(num_files):
        samples, rate = load_audio(str(bundled_test_audio(i, 0)))
        feats.append(frontend(samples[: 2 * rate], rate))
    calibrate_on_features(model, feats)


def make_model_dir(path: Path, family: str, seed: int = 0, config: Optional[dict] = None) -> Path:
    """Write ``config.yaml`` and ``avg_model.pt`` of a small random ``family`` model into ``path``."""
    from wespk.models import get_speaker_model
    name, model_args = SMALL_MODELS[family]
    config = config or fbank_config(name, model_args)
    torch.manual_seed(seed)
    model = get_speaker_model(name)(**model_args)
    calibrate_batch_norm(model, config)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / "avg_model.pt")
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path
