"""Fixtures: real utterances (WAV copies), a data dir of them, a small noise
set and simulated RIRs."""

import os

import pytest

from tests.data.real_speech import speech_wavs  # noqa: F401 - a fixture


@pytest.fixture(scope="session")
def speech_data_dir(speech_wavs, tmp_path_factory):
    """A Kaldi data dir (wav.scp, utt2spk) of the four utterances, one speaker each."""
    out = tmp_path_factory.mktemp("speech_dir")
    lines = sorted((os.path.splitext(os.path.basename(p))[0], p) for p in speech_wavs)
    with open(out / "wav.scp", "w") as f:
        f.writelines(f"{key} {path}\n" for key, path in lines)
    with open(out / "utt2spk", "w") as f:
        f.writelines(f"{key} {key.split('_')[0]}\n" for key, _ in lines)
    return str(out)


@pytest.fixture(scope="session")
def noise_and_rirs(speech_data_dir, tmp_path_factory):
    """A small noise set (coloured noise, babble, speech) and four simulated RIRs."""
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    from wespk.data.data_dir import audio_by_speaker
    out = tmp_path_factory.mktemp("noise")
    build_noise_set(str(out / "noise"), audio_by_speaker(speech_data_dir), num_coloured=5, num_babble=2,
                    babble_speakers=(3, 4), num_speech=3, duration=4.0, seed=5)
    build_rir_set(str(out / "rirs"), num_rirs=4, seed=6, rt60_range=(0.3, 0.6))
    return str(out / "noise"), str(out / "rirs")
