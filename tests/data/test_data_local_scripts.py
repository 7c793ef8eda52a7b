"""local/prepare_musan.sh and local/prepare_rirs_noises.sh on unpacked trees and on
archives (md5 checked before unpacking; both steps skipped once unpacked)."""

import hashlib
import os
import shutil
import subprocess
import tarfile

import pytest

from wespk.augment.noise import NoiseSet
from wespk.augment.reverb import RirSet
from wespk.io.files import read_kaldi_map

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(script, *args):
    return subprocess.run(["bash", os.path.join(REPO, "local", script), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def a_wav(corpus_dir):
    folder = os.path.join(corpus_dir, "arctic-slt")
    return os.path.join(folder, sorted(os.listdir(folder))[0])


def place(a_wav, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copy(a_wav, path)


def test_prepare_musan_lists_an_unpacked_musan(tmp_path, a_wav):
    download = tmp_path / "dl"
    for rel in ("noise/free-sound/noise-free-sound-0000.wav", "noise/sound-bible/noise-sound-bible-0001.wav",
                "music/fma/music-fma-0000.wav", "speech/librivox/speech-librivox-0000.wav",
                "speech/us-gov/speech-us-gov-0003.wav"):
        place(a_wav, str(download / "musan" / rel))
    (download / "musan" / ".extracted").write_text("")  # unpacked before: no archive needed
    out = tmp_path / "musan"
    proc = run("prepare_musan.sh", str(download), str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    categories = read_kaldi_map(str(out / "utt2category"))
    assert categories == {"music-fma-0000": "music", "noise-free-sound-0000": "noise",
                          "noise-sound-bible-0001": "noise", "speech-librivox-0000": "speech",
                          "speech-us-gov-0003": "speech"}
    assert list(read_kaldi_map(str(out / "wav.scp"))) == sorted(categories)
    assert NoiseSet(str(out)).categories == ["music", "noise", "speech"]
    # Re-running gives the same files.
    before = (out / "wav.scp").read_text()
    assert run("prepare_musan.sh", str(download), str(out)).returncode == 0
    assert (out / "wav.scp").read_text() == before


def test_prepare_rirs_lists_simulated_and_real_rirs(tmp_path, a_wav):
    download = tmp_path / "dl"
    top = download / "RIRS_NOISES"
    place(a_wav, str(top / "simulated_rirs/smallroom/Room001/Room001-00001.wav"))
    place(a_wav, str(top / "simulated_rirs/smallroom/Room001/Room001-00002.wav"))
    place(a_wav, str(top / "simulated_rirs/mediumroom/Room007/Room007-00001.wav"))
    place(a_wav, str(top / "real_rirs_isotropic_noises/air_type1_air_binaural_lecture_0_1.wav"))
    (top / "real_rirs_isotropic_noises/rir_list").write_text(
        "--rir-id large-air --room-id lecture "
        "RIRS_NOISES/real_rirs_isotropic_noises/air_type1_air_binaural_lecture_0_1.wav\n")
    (top / ".extracted").write_text("")
    out = tmp_path / "rirs"
    proc = run("prepare_rirs_noises.sh", "--rooms", "smallroom mediumroom", "--real", "true",
               str(download), str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_kaldi_map(str(out / "utt2category")) == {
        "mediumroom-Room007-00001": "mediumroom", "real-air_type1_air_binaural_lecture_0_1": "real",
        "smallroom-Room001-00001": "smallroom", "smallroom-Room001-00002": "smallroom"}
    assert len(RirSet(str(out))) == 4
    # A missing part of the archive is reported.
    proc = run("prepare_rirs_noises.sh", str(download), str(tmp_path / "all"))
    assert proc.returncode != 0 and "largeroom not found" in proc.stderr


def test_prepare_musan_checks_the_archive_before_unpacking(tmp_path, a_wav):
    tree = tmp_path / "tree"
    for rel in ("noise/free-sound/noise-free-sound-0000.wav", "music/fma/music-fma-0000.wav",
                "speech/librivox/speech-librivox-0000.wav"):
        place(a_wav, str(tree / "musan" / rel))
    download = tmp_path / "dl"
    download.mkdir()
    archive = download / "musan.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree / "musan", arcname="musan")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    out = tmp_path / "musan"

    # the published md5 is not this archive's: nothing is unpacked or listed
    proc = run("prepare_musan.sh", str(download), str(out))
    assert proc.returncode != 0
    assert f"musan.tar.gz: md5 {md5}, expected 0c472d4fc0c5141eca47ad1ffeb2a7df" in proc.stderr
    assert not (download / "musan").exists() and not (out / "wav.scp").exists()

    proc = run("prepare_musan.sh", "--md5", md5, str(download), str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (download / "musan" / ".extracted").exists()
    assert read_kaldi_map(str(out / "utt2category")) == {
        "music-fma-0000": "music", "noise-free-sound-0000": "noise", "speech-librivox-0000": "speech"}
    # unpacked once, the archive may go
    archive.unlink()
    proc = run("prepare_musan.sh", "--md5", md5, str(download), str(out))
    assert proc.returncode == 0 and "already unpacked" in proc.stdout + proc.stderr
