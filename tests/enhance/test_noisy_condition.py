"""The noisy evaluation condition: fixed SNR, reproducible per key, suffixed keys and trials."""

import numpy as np
import soundfile

from tests.conftest import CORPUS
from wespk.enhance.noisy_condition import build_noisy_copy, write_condition_trials
from wespk.io.audio import load_audio
from wespk.io.files import read_kaldi_map


def test_noisy_copy(tmp_path):
    from wespk.augment.noise_sets import build_noise_set, build_rir_set
    build_noise_set(str(tmp_path / "noise"), num_coloured=3, num_babble=0, duration=2.0, seed=5)
    build_rir_set(str(tmp_path / "rirs"), num_rirs=2, seed=6)
    files = sorted(CORPUS.glob("test/*/*.flac"))[:3]
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"{p.stem} {p}\n" for p in files))
    (data / "utt2spk").write_text("".join(f"{p.stem} {p.parent.name}\n" for p in files))
    assert build_noisy_copy(str(data), str(tmp_path / "snr5"), str(tmp_path / "noise"), None, 5.0, 1, "-snr5") == 3
    wav_scp = read_kaldi_map(tmp_path / "snr5" / "wav.scp")
    assert list(wav_scp) == [f"{p.stem}-snr5" for p in files]
    for p in files:
        clean, _ = load_audio(str(p))
        noisy, _ = soundfile.read(wav_scp[f"{p.stem}-snr5"], dtype="float32")
        if np.abs(noisy).max() < 0.98:   # not rescaled against clipping: the SNR is exact up to 16-bit rounding
            snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))
            assert abs(snr - 5.0) < 0.05
    build_noisy_copy(str(data), str(tmp_path / "again"), str(tmp_path / "noise"), str(tmp_path / "rirs"), 0.0, 1, "-x")
    build_noisy_copy(str(data), str(tmp_path / "again2"), str(tmp_path / "noise"), str(tmp_path / "rirs"), 0.0, 1, "-x")
    first = (tmp_path / "again" / "audio" / f"{files[0].stem}-x.wav").read_bytes()
    assert first == (tmp_path / "again2" / "audio" / f"{files[0].stem}-x.wav").read_bytes()
    assert read_kaldi_map(tmp_path / "again" / "utt2spk")[f"{files[0].stem}-x"] == files[0].parent.name

    (tmp_path / "trials").write_text("a b target\nc d nontarget\n")
    write_condition_trials(str(tmp_path / "trials"), str(tmp_path / "t2"), "", "-snr5")
    assert (tmp_path / "t2").read_text() == "a b-snr5 target\nc d-snr5 nontarget\n"
