"""Shared fixtures: paths to the repo, the bundled corpus and the golden data."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus" / "mini"
GOLDEN = Path(os.environ.get("WESPK_GOLDEN", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mini_corpus() -> Path:
    return CORPUS


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"golden reference data not found at {GOLDEN} (set WESPK_GOLDEN)")
    return GOLDEN


def corpus_files(split: str = "train", speakers: int = 3, per_speaker: int = 2):
    """A few real FLAC files from the bundled corpus: [(speaker, utt, path)]."""
    out = []
    for spk_dir in sorted((CORPUS / split).iterdir())[:speakers]:
        for path in sorted(spk_dir.glob("*.flac"))[:per_speaker]:
            out.append((spk_dir.name, path.stem, path))
    return out
