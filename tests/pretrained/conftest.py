"""Fixtures for the pretrained-model tests: real test-set audio, a converted
resemblyzer model dir, a synthetic resemblyzer-shaped checkpoint."""

from pathlib import Path
from typing import List

import pytest
import torch

from tests.conftest import CORPUS


#: One speaker of each source and channel in the bundled test set.
TEST_SPEAKERS = ("arctic-slt", "cvfa-00243bfe65", "cvfa-39655885fa", "cvtw-0ca034bbac",
                 "cvtw-202a22ab72", "libri-1034", "libri-1867", "vctk-p227")


@pytest.fixture(scope="session")
def test_flacs() -> List[Path]:
    """The first utterance of each of :data:`TEST_SPEAKERS` (real speech, 1.3 to 5 s)."""
    files = [sorted((CORPUS / "test" / speaker).glob("*.flac"))[0] for speaker in TEST_SPEAKERS]
    assert all(f.is_file() for f in files)
    return files


@pytest.fixture(scope="session")
def long_flac() -> Path:
    """The longest test utterance (11.4 s)."""
    return CORPUS / "test" / "vctk-p227" / "vctk-p227_p227_023.flac"


@pytest.fixture(scope="session")
def resemblyzer_model_dir(tmp_path_factory) -> Path:
    """The installed resemblyzer's encoder converted with the checkpoint tool."""
    pytest.importorskip("resemblyzer")
    from wespk.bin.checkpoint_tool import main
    out = tmp_path_factory.mktemp("resemblyzer_model")
    assert main(["convert-resemblyzer", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def synthetic_resemblyzer_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint laid out like resemblyzer's pretrained.pt, with random small weights."""
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(40, 32, 3, batch_first=True)
    linear = torch.nn.Linear(32, 24)
    state = {"similarity_weight": torch.tensor([12.5]), "similarity_bias": torch.tensor([-3.25])}
    state.update({f"lstm.{k}": v for k, v in lstm.state_dict().items()})
    state.update({f"linear.{k}": v for k, v in linear.state_dict().items()})
    path = tmp_path_factory.mktemp("fake_resemblyzer") / "pretrained.pt"
    torch.save({"step": 7, "model_state": state, "optimizer_state": {"state": {}, "param_groups": []}}, path)
    return path
