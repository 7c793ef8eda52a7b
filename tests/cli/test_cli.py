"""The ``wespk`` command, run as a subprocess on real bundled speech with a small model dir."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

import wespk
from tests.export.model_dirs import make_model_dir, one_torch_thread, subprocess_env, bundled_test_audio  # noqa: F401
from wespk.api import cosine_similarity
from wespk.io.embeddings import read_embeddings

CONSOLE_SCRIPT = Path(sys.executable).parent / "wespk"


def run_wespk(*args, console_script=False):
    """Run the command; returns the CompletedProcess (text mode)."""
    if console_script and CONSOLE_SCRIPT.exists():
        command = [str(CONSOLE_SCRIPT)]
    else:
        command = [sys.executable, "-m", "wespk.cli"]
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("cli") / "xvec", "XVEC")


@pytest.fixture(scope="module")
def embedder(model_dir):
    return wespk.load_model(model_dir)


def _files(*pairs):
    return [str(bundled_test_audio(speaker, utt)) for speaker, utt in pairs]


def test_embed_prints_kaldi_text_vectors(model_dir, embedder):
    files = _files((0, 0), (1, 0), (2, 1))
    result = run_wespk("embed", "--model", model_dir, *files, console_script=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == files
    printed = np.array([[float(v) for v in line.split("[", 1)[1].rstrip(" ]").split()] for line in lines])
    np.testing.assert_allclose(printed, embedder.embed_batch(files), rtol=1e-6, atol=1e-6)


def test_embed_writes_ark_scp_and_npy(model_dir, embedder, tmp_path):
    files = _files((3, 0), (4, 0))
    result = run_wespk("embed", "--model", model_dir, *files, "-o", tmp_path / "out.ark")
    assert result.returncode == 0, result.stderr
    keys, vectors = read_embeddings(tmp_path / "out.scp")
    assert keys == files
    np.testing.assert_allclose(vectors, embedder.embed_batch(files), rtol=0, atol=1e-6)

    from wespk.cli import main
    assert main(["embed", "--model", str(model_dir), *files, "-o", str(tmp_path / "out.npy"), "-q"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), vectors, rtol=0, atol=1e-6)


def test_verify_prints_score_calibrated_score_and_decision(model_dir, embedder, tmp_path, capsys):
    calibrated_dir = tmp_path / "calibrated"
    shutil.copytree(model_dir, calibrated_dir)
    (calibrated_dir / "calibration.json").write_text(json.dumps({"scale": 8.0, "offset": -3.0}))
    enroll, test = _files((7, 0), (7, 1)), _files((7, 2))[0]
    result = run_wespk("verify", "--model", calibrated_dir, "--enroll", *enroll, "--test", test)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    enroll_mean = embedder.embed_batch(enroll).mean(axis=0)
    score = cosine_similarity(enroll_mean, embedder.embed(test))
    assert float(lines["score"]) == pytest.approx(score, abs=1e-4)
    llr = float(lines["calibrated"].split()[0])
    assert llr == pytest.approx(8.0 * score - 3.0, abs=1e-3)
    assert lines["decision"].startswith("same speaker" if llr >= 0 else "different speakers")

    # An explicit threshold decides on the cosine score, on both sides of it (in-process: same main()).
    from wespk.cli import main
    for threshold, verdict in ((score - 0.01, "same speaker"), (score + 0.01, "different speakers")):
        assert main(["verify", "--model", str(model_dir), "--enroll", *enroll, "--test", test,
                     "--threshold", str(threshold)]) == 0
        out = capsys.readouterr().out
        assert "calibrated" not in out
        assert f"decision: {verdict} " in out


def test_extract_torch_and_onnx_backends_agree(model_dir, tmp_path, capsys):
    """Both backends go through the one engine (extract_embeddings) with --nj jobs: torch from a subprocess,
    onnx in process with 1 and 2 jobs (the batch plan does not depend on the job count)."""
    from wespk.cli import main
    from wespk.export.onnx_export import export_model_dir_to_onnx
    deploy = tmp_path / "deploy"
    export_model_dir_to_onnx(str(model_dir), str(deploy / "final.onnx"))
    files = _files((8, 0), (9, 0), (10, 1), (11, 0), (12, 2))
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text("".join(f"utt{i} {path}\n" for i, path in enumerate(files)))
    outputs = {}
    for backend, model, nj in (("torch", model_dir, 2), ("onnx", deploy, 1), ("onnx", deploy, 2)):
        out = tmp_path / f"emb_{backend}_{nj}"
        args = ["extract", "--model", model, "--backend", backend, "--wav-scp", wav_scp, "--out", out,
                "--nj", nj, "--batch-size", 2]
        if backend == "torch":
            result = run_wespk(*args)
            assert result.returncode == 0, result.stderr
            stdout = result.stdout
        else:
            assert main([str(a) for a in args]) == 0
            stdout = capsys.readouterr().out
        assert "wrote 5 embeddings" in stdout
        outputs[backend, nj] = read_embeddings(out / "xvector.scp")
        assert (out / "utt2dur").read_text().count("\n") == 5
    keys = [f"utt{i}" for i in range(5)]
    assert outputs["torch", 2][0] == outputs["onnx", 1][0] == outputs["onnx", 2][0] == keys
    np.testing.assert_allclose(outputs["onnx", 1][1], outputs["torch", 2][1], rtol=0, atol=1e-4)
    # one job or two: the same batches, so the same vectors (float32 ark: within 1e-6)
    assert np.abs(outputs["onnx", 2][1] - outputs["onnx", 1][1]).max() <= 1e-6
    assert (tmp_path / "emb_onnx_1" / "utt2dur").read_text() == (tmp_path / "emb_onnx_2" / "utt2dur").read_text()


def test_enroll_and_identify_with_a_speaker_database(model_dir, embedder, tmp_path, capsys):
    from wespk.cli import main
    db = tmp_path / "speakers.json"
    enrollments = {"alice": _files((13, 0), (13, 1)), "bob": _files((14, 0), (14, 1))}
    result = run_wespk("enroll", "--model", model_dir, "--db", db, "alice", *enrollments["alice"])
    assert result.returncode == 0, result.stderr
    assert "enrolled alice: 2 file(s)" in result.stdout
    assert main(["enroll", "--model", str(model_dir), "--db", str(db), "bob", *enrollments["bob"]]) == 0
    assert "enrolled bob: 2 file(s), 2 enrollment(s) in all; " in capsys.readouterr().out
    stored = json.loads(db.read_text())
    assert [s["name"] for s in stored["speakers"]] == ["alice", "bob"]
    assert [s["count"] for s in stored["speakers"]] == [2, 2]

    query = _files((13, 2))[0]
    vector = embedder.embed(query)
    expected = sorted(((name, cosine_similarity(embedder.embed_batch(files).mean(axis=0), vector))
                       for name, files in enrollments.items()), key=lambda kv: -kv[1])
    result = run_wespk("identify", "--model", model_dir, "--db", db, query,
                       "--threshold", expected[1][1] + (expected[0][1] - expected[1][1]) / 2)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1  # only the best speaker is above the threshold
    name, score = lines[0].split()
    assert name == expected[0][0]
    assert float(score) == pytest.approx(expected[0][1], abs=1e-4)


def test_similarity_of_resampled_stereo_audio_prints_the_cosine_and_a_note(model_dir, embedder, tmp_path):
    from scipy.signal import resample_poly
    original = _files((15, 0))[0]
    samples, rate = soundfile.read(original, dtype="float32")
    upsampled = resample_poly(samples, 441, 160).astype(np.float32)
    converted = tmp_path / "stereo44k.wav"
    soundfile.write(converted, np.stack([0.8 * upsampled, 1.2 * upsampled], axis=1), 44100)
    result = run_wespk("similarity", "--model", model_dir, original, converted)
    assert result.returncode == 0, result.stderr
    assert "note:" in result.stderr
    assert "resampled from 44100 Hz to 16000 Hz" in result.stderr and "down-mixed 2 channels" in result.stderr
    expected = cosine_similarity(embedder.embed(original), embedder.embed(str(converted)))
    assert float(result.stdout.strip()) == pytest.approx(expected, abs=2e-6)
    assert expected > 0.99  # the same speech after resampling and down-mixing
    assert expected > cosine_similarity(embedder.embed(original), embedder.embed(_files((16, 0))[0]))


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "notes.wav").write_text("this is a text file, not audio\n")
    samples, rate = soundfile.read(str(bundled_test_audio(0, 0)), dtype="float32")
    soundfile.write(root / "clip.wav", samples[: rate // 10], rate)  # 0.1 s
    no_config = root / "no_config"
    no_config.mkdir()
    shutil.copy(Path(str(bundled_test_audio(0, 0))), root / "good.flac")
    return root


@pytest.mark.parametrize("case, expected", [
    ("missing file", "file not found"),
    ("text file named .wav", "cannot decode audio"),
    ("0.1 s clip", "too short"),
    ("model dir without config", "no config.yaml"),
])
def test_bad_input_gives_one_line_and_non_zero_exit(case, expected, bad_inputs, model_dir):
    good = bad_inputs / "good.flac"
    args = {"missing file": ("similarity", "--model", model_dir, good, bad_inputs / "absent.wav"),
            "text file named .wav": ("embed", "--model", model_dir, bad_inputs / "notes.wav"),
            "0.1 s clip": ("verify", "--model", model_dir, "--enroll", good, "--test", bad_inputs / "clip.wav"),
            "model dir without config": ("embed", "--model", bad_inputs / "no_config", good)}[case]
    result = run_wespk(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lines[0].startswith("wespk ")
    assert result.stdout == ""
