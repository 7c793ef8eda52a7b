"""Shared fixtures: paths to the repo, the bundled corpus and the golden data."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpus" / "mini"
#: the full WeSpeaker golden references (not in the repo; CI has them beside the clone)
GOLDEN = Path(os.environ.get("WESPK_GOLDEN", REPO.parent / "shared" / "golden"))
#: the small golden subset committed with the tests (tests/golden/README.md): always present
COMMITTED_GOLDEN = REPO / "tests" / "golden"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mini_corpus() -> Path:
    return CORPUS


def full_golden_or_skip() -> Path:
    """The full golden folder; skip without it, except under ``CI=true``, where its absence fails loudly."""
    if GOLDEN.is_dir():
        return GOLDEN
    message = f"full golden reference data not found at {GOLDEN} (set WESPK_GOLDEN)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI must run the full golden checks", pytrace=False)
    pytest.skip(f"{message}; the committed subset in tests/golden is checked instead")


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return full_golden_or_skip()


@pytest.fixture(scope="session")
def committed_golden() -> Path:
    return COMMITTED_GOLDEN


def corpus_files(split: str = "train", speakers: int = 3, per_speaker: int = 2):
    """A few real FLAC files from the bundled corpus: [(speaker, utt, path)]."""
    out = []
    for spk_dir in sorted((CORPUS / split).iterdir())[:speakers]:
        for path in sorted(spk_dir.glob("*.flac"))[:per_speaker]:
            out.append((spk_dir.name, path.stem, path))
    return out
