"""Fixtures: a small real corpus (4 speakers x 4 utterances, see
``real_speech.py``), its data dir, raw list, shards, and a small noise / RIR set."""

import json
import os

import pytest

from tests.data.real_speech import copy_as_wav, speaker_files

SPEAKERS = ("aishell-S0913", "arctic-slt", "cvtw-0ca034bbac", "vctk-p225")
UTTS_PER_SPEAKER = 4


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """``<root>/<speaker>/<utt>.wav``: 16 real utterances."""
    root = tmp_path_factory.mktemp("corpus")
    for speaker in SPEAKERS:
        for source in speaker_files(speaker, UTTS_PER_SPEAKER):
            copy_as_wav(source, root / speaker / f"{source.stem}.wav")
    return str(root)


@pytest.fixture(scope="session")
def data_dir(corpus_dir, tmp_path_factory):
    """The corpus imported as a Kaldi data dir."""
    from wespk.data.importers import prepare_data_dir
    out = str(tmp_path_factory.mktemp("data") / "train")
    prepare_data_dir("folder", corpus_dir, out)
    return out


@pytest.fixture(scope="session")
def raw_list(data_dir):
    """A raw JSON-lines list (with durations) of the data dir."""
    from wespk.data.data_dir import read_data_dir
    path = os.path.join(data_dir, "raw.list")
    with open(path, "w") as f:
        for entry in read_data_dir(data_dir, need_spk=True):
            f.write(json.dumps({"key": entry.key, "wav": entry.audio.path, "spk": entry.speaker,
                                "duration": entry.duration}) + "\n")
    return path


def write_shards(data_dir: str, out_dir: str, num_shards: int) -> str:
    """Tar shards of a data dir (utterances dealt round-robin); returns the list path."""
    from wespk.data.data_dir import read_data_dir
    from wespk.data.shards import write_shard
    entries = read_data_dir(data_dir, need_spk=True)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for shard in range(num_shards):
        members = []
        for entry in entries[shard::num_shards]:
            with open(entry.audio.path, "rb") as f:
                members.append((entry.key, entry.speaker, f.read(), "wav"))
        path = os.path.join(out_dir, f"shard_{shard:03d}.tar")
        write_shard(path, members)
        paths.append(path)
    list_path = os.path.join(out_dir, "shard.list")
    with open(list_path, "w") as f:
        f.writelines(p + "\n" for p in paths)
    return list_path


@pytest.fixture(scope="session")
def shard_list(data_dir, tmp_path_factory):
    """Four shards of four utterances each."""
    return write_shards(data_dir, str(tmp_path_factory.mktemp("shards")), 4)


@pytest.fixture
def make_shards():
    """:func:`write_shards` for tests that need other shard layouts."""
    return write_shards


@pytest.fixture(scope="session")
def noise_dirs(data_dir, tmp_path_factory):
    """``(noise_dir, rir_dir)``: coloured noise, babble, and three simulated RIRs."""
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    from wespk.data.data_dir import audio_by_speaker
    out = tmp_path_factory.mktemp("noise")
    build_noise_set(str(out / "noise"), audio_by_speaker(data_dir), num_coloured=3, num_babble=2, babble_speakers=(3, 4),
                    duration=4.0, seed=3)
    build_rir_set(str(out / "rirs"), num_rirs=3, seed=4, rt60_range=(0.2, 0.5))
    return str(out / "noise"), str(out / "rirs")


@pytest.fixture(scope="session")
def spk2id(data_dir):
    from wespk.data.dataset import read_spk2id
    return read_spk2id(data_dir)
