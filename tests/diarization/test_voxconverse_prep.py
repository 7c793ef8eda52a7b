"""The VoxConverse recipe's preparation on a tiny fake layout of the unpacked archives."""

import subprocess
import sys

from tests.conftest import REPO
from wespk.diarization.rttm import read_rttm

RECIPE = REPO / "examples" / "voxconverse" / "v1"


def _prepare(*args):
    return subprocess.run([sys.executable, "local/prepare_data.py", *map(str, args)], cwd=RECIPE,
                          capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def _layout(root, keys_audio, keys_rttm):
    (root / "test" / "voxconverse_test_wav").mkdir(parents=True)     # the test archive's folder
    (root / "voxconverse-master" / "test").mkdir(parents=True)
    for key in keys_audio:
        (root / "test" / "voxconverse_test_wav" / f"{key}.wav").write_bytes(b"RIFF")
    for i, key in enumerate(keys_rttm):
        (root / "voxconverse-master" / "test" / f"{key}.rttm").write_text(
            f"SPEAKER {key} 1 0.00 1.50 <NA> <NA> spk{i}a <NA> <NA>\n"
            f"SPEAKER {key} 1 1.20 2.00 <NA> <NA> spk{i}b <NA> <NA>\n")


def test_prepares_wav_scp_rttm_and_speaker_counts(tmp_path):
    _layout(tmp_path, ["aepyx", "bxcfq"], ["aepyx", "bxcfq"])
    result = _prepare("--audio_dir", tmp_path / "test", "--rttm_dir", tmp_path / "voxconverse-master" / "test",
                      "--out_dir", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    wav_scp = (tmp_path / "data" / "wav.scp").read_text().splitlines()
    assert [line.split()[0] for line in wav_scp] == ["aepyx", "bxcfq"]
    assert wav_scp[0].split()[1].endswith("voxconverse_test_wav/aepyx.wav")
    assert (tmp_path / "data" / "reco2num_spk").read_text() == "aepyx 2\nbxcfq 2\n"
    ref = read_rttm(tmp_path / "data" / "rttm")
    assert sorted(ref) == ["aepyx", "bxcfq"] and len(ref["aepyx"]) == 2


def test_missing_references_are_named(tmp_path):
    _layout(tmp_path, ["aepyx", "zzzzz"], ["aepyx"])
    args = ["--audio_dir", tmp_path / "test", "--rttm_dir", tmp_path / "voxconverse-master" / "test",
            "--out_dir", tmp_path / "data"]
    result = _prepare(*args)
    assert result.returncode == 1 and "zzzzz" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "wav.scp").exists()
    assert _prepare(*args, "--allow_missing").returncode == 0
    assert (tmp_path / "data" / "wav.scp").read_text().split()[0] == "aepyx"
