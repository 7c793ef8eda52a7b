"""Real speech for the data, feature and augmentation tests.

Utterances come from the dev corpus (``$WESPK_DEV_CORPUS``, default
``/work/shared/data/dev_corpus``, 16-bit WAV) when it is there, else from the
corpus bundled with the repo (``corpus/mini``, the same recordings as FLAC).
Tests get them as 16-bit WAV copies in a temporary directory.
"""

import os
import shutil
from pathlib import Path
from typing import List

import pytest
import soundfile

DEV_CORPUS = Path(os.environ.get("WESPK_DEV_CORPUS", "/work/shared/data/dev_corpus"))
BUNDLED = Path(__file__).resolve().parents[2] / "corpus" / "mini"


def speaker_files(speaker: str, count: int) -> List[Path]:
    """The first ``count`` recordings (sorted by name) of ``speaker``; skips the
    test when no copy of the corpus is available."""
    candidates = [(DEV_CORPUS / speaker, ".wav")] + [(BUNDLED / split / speaker, ".flac")
                                                     for split in ("train", "test")]
    for folder, suffix in candidates:
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix == suffix)
            if len(files) >= count:
                return files[:count]
    pytest.skip(f"no recordings of {speaker} in {DEV_CORPUS} or {BUNDLED}")


def copy_as_wav(source: Path, target: Path) -> Path:
    """Copy a recording to ``target`` (a .wav path) as 16-bit PCM WAV."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix == ".wav":
        shutil.copy(source, target)
    else:
        samples, rate = soundfile.read(source, dtype="int16")
        soundfile.write(target, samples, rate, subtype="PCM_16")
    return target


@pytest.fixture(scope="session")
def speech_wavs(tmp_path_factory):
    """Paths of four real 16 kHz utterances from different speakers (a fixture
    the feature and augmentation tests import into their conftest)."""
    out = tmp_path_factory.mktemp("speech")
    return [str(copy_as_wav(source, out / f"{source.stem}.wav"))
            for speaker in ("vctk-p225", "arctic-slt", "aishell-S0913", "cvtw-0ca034bbac")
            for source in speaker_files(speaker, 1)]
