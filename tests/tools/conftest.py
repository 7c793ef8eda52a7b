"""Fixtures for the tests of the Kaldi-style scripts in tools/.

The tests run the scripts the way a recipe does (bash, perl, python in a
subprocess) on data dirs built from a few real recordings.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"

# Real speech: wespk's development corpus when this machine has it (WAV),
# else the corpus bundled with the repository (FLAC, decoded to WAV here).
AUDIO_SOURCES = [
    (Path("/work/shared/data/dev_corpus"), "*.wav"),
    (REPO / "corpus" / "mini", "*.flac"),
]
SPEAKERS = ["aishell-S0913", "arctic-clb", "arctic-slt"]
UTTERANCES_PER_SPEAKER = 2


def _run_tool(name, *args, cwd=None, check=False):
    """Run tools/<name> with the interpreter a recipe would use; return the
    CompletedProcess (text stdout and stderr)."""
    script = TOOLS / name
    if name.endswith(".sh"):
        command = ["bash", str(script)]
    elif name.endswith(".pl"):
        command = ["perl", str(script)]
    else:
        command = [sys.executable, str(script)]
    result = subprocess.run(command + [str(a) for a in args], cwd=cwd,
                            capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{name} {args} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def _find_speaker_files(speaker):
    for root, pattern in AUDIO_SOURCES:
        if not root.is_dir():
            continue
        for directory in sorted(root.glob(f"**/{speaker}")):
            files = sorted(directory.glob(pattern))
            if len(files) >= UTTERANCES_PER_SPEAKER:
                return files[:UTTERANCES_PER_SPEAKER]
    raise FileNotFoundError(
        f"no recordings of speaker {speaker} in " + ", ".join(str(r) for r, _ in AUDIO_SOURCES))


@pytest.fixture(scope="session")
def recordings(tmp_path_factory):
    """Six real 16 kHz recordings (3 speakers x 2) as WAV files.

    Returns a sorted list of (utt_id, speaker_id, wav_path)."""
    audio_dir = tmp_path_factory.mktemp("audio")
    entries = []
    for speaker in SPEAKERS:
        (audio_dir / speaker).mkdir()
        for source in _find_speaker_files(speaker):
            target = audio_dir / speaker / (source.stem + ".wav")
            if source.suffix == ".wav":
                shutil.copyfile(source, target)
            else:
                samples, rate = soundfile.read(source, dtype="int16")
                soundfile.write(target, samples, rate, subtype="PCM_16")
            entries.append((source.stem, speaker, target))
    return sorted(entries)


def _write_lines(path, lines):
    Path(path).write_text("".join(line + "\n" for line in lines))


def _make_data_dir(directory, recordings):
    """A clean data dir (wav.scp, utt2spk, spk2utt) for the recordings."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_lines(directory / "wav.scp", [f"{utt} {path}" for utt, _, path in recordings])
    _write_lines(directory / "utt2spk", [f"{utt} {spk}" for utt, spk, _ in recordings])
    speakers = {}
    for utt, spk, _ in recordings:
        speakers.setdefault(spk, []).append(utt)
    _write_lines(directory / "spk2utt", [" ".join([spk] + utts) for spk, utts in sorted(speakers.items())])
    return directory


@pytest.fixture
def run_tool():
    """run_tool(name, *args, cwd=None, check=False) -> CompletedProcess."""
    return _run_tool


@pytest.fixture
def make_data_dir():
    """make_data_dir(directory, recordings) -> directory, a clean data dir."""
    return _make_data_dir


@pytest.fixture
def data_dir(tmp_path, recordings):
    """A clean data dir of all six recordings."""
    return _make_data_dir(tmp_path / "data", recordings)
