"""Additive noise at the requested SNR (real speech, real babble), noise sets."""

import os

import numpy as np
import pytest
import soundfile

from wespk.augment.noise import NoiseSet, add_noise, repeat_to_length, scale_to_snr, signal_power
from wespk.augment.noise_sets import NOISE_COLOURS, coloured_noise
from wespk.io.files import read_kaldi_map


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    return 10 * np.log10(signal_power(speech) / signal_power(noise))


@pytest.mark.parametrize("target", [0.0, 5.0, 13.0, 20.0])
def test_scale_to_snr_hits_the_target(speech_wavs, noise_and_rirs, target):
    speech, _ = soundfile.read(speech_wavs[0], dtype="float32")
    babble_path = read_kaldi_map(os.path.join(noise_and_rirs[0], "wav.scp"))["babble-0000"]
    babble, _ = soundfile.read(babble_path, dtype="float32")
    noise = scale_to_snr(speech, repeat_to_length(babble, len(speech)), target)
    assert abs(snr_db(speech, noise) - target) < 0.5
    mixed = add_noise(speech, repeat_to_length(babble, len(speech)), target)
    assert abs(snr_db(speech, mixed - speech) - target) < 0.5


@pytest.mark.parametrize("category", ["noise", "babble"])
def test_noise_set_mixes_at_drawn_snr(speech_wavs, noise_and_rirs, category):
    speech, rate = soundfile.read(speech_wavs[3], dtype="float32")
    noise_set = NoiseSet(noise_and_rirs[0], snr_ranges={category: [3.0, 12.0]})
    rng = np.random.default_rng(9)
    for _ in range(5):
        noise, used = noise_set.make_noise(speech, rate, category, rng)
        assert len(used) == 1 and used[0][0].startswith(category)
        assert 3.0 <= used[0][1] <= 12.0
        assert len(noise) == len(speech)
        assert abs(snr_db(speech, noise) - used[0][1]) < 0.5


def test_speech_category_sums_several_speakers(speech_wavs, noise_and_rirs):
    speech, rate = soundfile.read(speech_wavs[0], dtype="float32")
    noise_set = NoiseSet(noise_and_rirs[0], num_sources={"speech": [2, 3]})
    noise, used = noise_set.make_noise(speech, rate, "speech", np.random.default_rng(1))
    assert 2 <= len(used) <= 3
    assert len({key for key, _ in used}) == len(used)
    assert all(13.0 <= snr <= 20.0 for _, snr in used)
    assert signal_power(noise) > 0


def test_noise_set_categories(noise_and_rirs, tmp_path):
    noise_set = NoiseSet(noise_and_rirs[0])
    assert noise_set.categories == ["babble", "noise", "speech"]
    # Without utt2category the key prefix names the category (MUSAN keys).
    table = read_kaldi_map(os.path.join(noise_and_rirs[0], "wav.scp"))
    with open(tmp_path / "wav.scp", "w") as f:
        for key, path in table.items():
            f.write(f"{key} {path}\n")
    assert NoiseSet(str(tmp_path)).categories == ["babble", "noise", "speech"]
    with open(tmp_path / "utt2category", "w") as f:
        f.writelines(f"{key} traffic\n" for key in table)
    with pytest.raises(ValueError, match="traffic"):
        NoiseSet(str(tmp_path))


def test_noise_span_is_read_at_random_places(noise_and_rirs):
    noise_set = NoiseSet(noise_and_rirs[0])
    key = noise_set.by_category["noise"][0]
    rng = np.random.default_rng(0)
    a = noise_set.read_random_span(key, 8000, 16000, rng)
    b = noise_set.read_random_span(key, 8000, 16000, rng)
    assert len(a) == len(b) == 8000 and not np.array_equal(a, b)
    full, _ = soundfile.read(noise_set.refs[key].path, dtype="float32")
    start = int(np.flatnonzero(np.isclose(full, a[0]) & np.isclose(np.roll(full, -1), a[1]))[0])
    assert np.array_equal(full[start:start + 8000], a)
    # Longer than the file: repeated.
    long = noise_set.read_random_span(key, len(full) * 2 + 5, 16000, rng)
    assert len(long) == len(full) * 2 + 5


@pytest.mark.parametrize("colour", sorted(NOISE_COLOURS))
def test_coloured_noise_slope(colour):
    noise = coloured_noise(colour, 2 ** 16, np.random.default_rng(2))
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise))
    band = (freqs > 0.005) & (freqs < 0.45)
    slope = np.polyfit(np.log(freqs[band]), np.log(spectrum[band]), 1)[0]
    assert abs(slope + NOISE_COLOURS[colour]) < 0.15
    assert abs(np.sqrt(np.mean(noise ** 2)) - 1.0) < 1e-3


def test_noise_set_files(noise_and_rirs):
    noise_dir, rir_dir = noise_and_rirs
    for folder, count in ((noise_dir, 10), (rir_dir, 4)):
        table = read_kaldi_map(os.path.join(folder, "wav.scp"))
        assert len(table) == count
        durations = read_kaldi_map(os.path.join(folder, "utt2dur"))
        for key, path in table.items():
            info = soundfile.info(path)
            assert info.samplerate == 16000
            assert abs(info.frames / 16000 - float(durations[key])) < 1e-3


def test_make_noise_set_cli_is_reproducible(speech_data_dir, tmp_path):
    from wespk.bin.make_noise_set import main
    small = ["--num-coloured", "2", "--num-babble", "1", "--babble-speakers", "3,3", "--num-rirs", "2",
             "--duration", "2"]
    assert main(["--data", speech_data_dir, "--out_dir", str(tmp_path / "a"), *small]) == 0
    assert main(["--train-data", speech_data_dir, *small, str(tmp_path / "b")]) == 0
    for sub in ("noise", "rirs"):
        table_a = read_kaldi_map(str(tmp_path / "a" / sub / "wav.scp"))
        table_b = read_kaldi_map(str(tmp_path / "b" / sub / "wav.scp"))
        assert list(table_a) == list(table_b)
        for key in table_a:
            with open(table_a[key], "rb") as fa, open(table_b[key], "rb") as fb:
                assert fa.read() == fb.read()
    assert read_kaldi_map(str(tmp_path / "a" / "noise" / "utt2category")) == {
        "babble-0000": "babble", "noise-white-0000": "noise", "noise-pink-0001": "noise"}
    with pytest.raises(SystemExit):
        main(["--data", speech_data_dir])  # no output directory
