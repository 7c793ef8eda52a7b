"""Extraction: jobs, batching, bad input; a real (random-weight) ResNet on real audio."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import CORPUS, REPO
from wespk.io.embeddings import read_embeddings


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    config = {"model": "ResNet34",
              "model_args": {"feat_dim": 80, "embed_dim": 16, "m_channels": 4, "two_emb_layer": False},
              "dataset_args": {"resample_rate": 16000, "fbank_args": {"num_mel_bins": 80}}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    from wespk.models import get_speaker_model
    torch.manual_seed(0)
    model = get_speaker_model("ResNet34")(**config["model_args"])
    torch.save(model.state_dict(), root / "avg_model.pt")
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    files = sorted((CORPUS / "test").glob("*/*.flac"))[:13]
    (root / "wav.scp").write_text("".join(f"{p.stem} {p}\n" for p in files))
    return root


def extract(model_dir, data, out, *extra):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "wespk.bin.extract", "--model_dir", str(model_dir),
                           "--data", str(data), "--out_dir", str(out), *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def test_nj1_and_nj3_give_the_same_scp(model_dir, data_dir, tmp_path):
    one = extract(model_dir, data_dir, tmp_path / "nj1", "--nj", "1", "--batch_size", "4")
    three = extract(model_dir, data_dir, tmp_path / "nj3", "--nj", "3", "--batch_size", "4")
    assert one.returncode == 0, one.stderr
    assert three.returncode == 0, three.stderr
    keys1, mat1 = read_embeddings(tmp_path / "nj1" / "xvector.scp")
    keys3, mat3 = read_embeddings(tmp_path / "nj3" / "xvector.scp")
    wav_keys = [line.split()[0] for line in (data_dir / "wav.scp").read_text().splitlines()]
    assert keys1 == keys3 == wav_keys            # list order, not job order
    assert np.abs(mat1 - mat3).max() <= 1e-6
    durations = dict(line.split() for line in (tmp_path / "nj3" / "utt2dur").read_text().splitlines())
    assert set(durations) == set(wav_keys) and all(float(d) > 1.0 for d in durations.values())
    assert not (tmp_path / "nj3" / ".jobs").exists()


def test_padded_batches_match_one_at_a_time(model_dir, data_dir, tmp_path):
    assert extract(model_dir, data_dir, tmp_path / "b1", "--batch_size", "1").returncode == 0
    # a padding bound this loose lets the 13 utterances (1.4 - 6 s) share batches of 8
    assert extract(model_dir, data_dir, tmp_path / "b8", "--batch_size", "8", "--max_padding", "10").returncode == 0
    _, single = read_embeddings(tmp_path / "b1" / "xvector.scp")
    _, batched = read_embeddings(tmp_path / "b8" / "xvector.scp")
    cosine = (single * batched).sum(1) / np.linalg.norm(single, axis=1) / np.linalg.norm(batched, axis=1)
    assert cosine.min() > 0.9999


def test_bad_utterances_skipped_or_strict(model_dir, data_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    short = tmp_path / "short.flac"
    import soundfile
    soundfile.write(short, np.zeros(1000, dtype=np.float32), 16000)   # 0.06 s
    lines = (data_dir / "wav.scp").read_text().splitlines()[:3]
    lines += [f"zz_missing {tmp_path}/missing.wav", f"zz_short {short}", f"zz_text {text}"]
    (bad / "wav.scp").write_text("\n".join(lines) + "\n")
    proc = extract(model_dir, bad, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "skipped").read_text().split() == ["zz_missing", "zz_short", "zz_text"]
    assert "missing.wav: file not found" in proc.stderr and "too short" in proc.stderr
    keys, _ = read_embeddings(tmp_path / "out" / "xvector.scp")
    assert len(keys) == 3
    strict = extract(model_dir, bad, tmp_path / "strict", "--strict")
    assert strict.returncode == 1 and "utterance zz_" in strict.stderr
    assert not (tmp_path / "strict" / "xvector.scp").exists()


def test_missing_model_config(data_dir, tmp_path):
    proc = extract(tmp_path, data_dir, tmp_path / "out")
    assert proc.returncode == 1
    assert "no config.yaml" in proc.stderr


def test_bf16_precision_stays_close_to_fp32(model_dir, data_dir, tmp_path):
    assert extract(model_dir, data_dir, tmp_path / "fp32").returncode == 0
    run = extract(model_dir, data_dir, tmp_path / "bf16", "--precision", "bf16")
    assert run.returncode == 0, run.stderr
    keys32, fp32 = read_embeddings(tmp_path / "fp32" / "xvector.scp")
    keys16, bf16 = read_embeddings(tmp_path / "bf16" / "xvector.scp")
    assert keys32 == keys16
    cosine = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cosine.min() >= 0.999
    assert np.abs(fp32 - bf16).max() > 0  # it did run in reduced precision
    from wespk.inference.runners import cpu_has_native_bf16
    # where bf16 is emulated (and slower than fp32) the run says so
    assert ("has no bf16 instructions" in run.stderr) == (cpu_has_native_bf16() is False)
    bad = extract(model_dir, data_dir, tmp_path / "x", "--precision", "int8")
    assert bad.returncode != 0 and "invalid choice: 'int8'" in bad.stderr


def test_native_bf16_from_cpu_flags():
    from wespk.inference.runners import cpu_has_native_bf16
    xeon = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n\nprocessor\t: 1\n"
    assert cpu_has_native_bf16(xeon) is False
    assert cpu_has_native_bf16(xeon.replace("avx512_vnni", "avx512_vnni avx512_bf16")) is True
    assert cpu_has_native_bf16("flags : sse2 amx_bf16 amx_tile") is True
    assert cpu_has_native_bf16("processor : 0\nFeatures : fp asimd\n") is None  # no x86 flags line


def test_batch_plan_bounds_padding_and_size():
    from wespk.data.records import Utterance
    from wespk.inference.extractor import plan_batches
    durations = [1.0, 1.02, 1.05, 1.5, 1.52, 3.0, 3.1, 3.15, 3.2, 3.25, 3.3, 10.0]
    utts = [Utterance(f"u{i:02d}", duration=d) for i, d in enumerate(durations)]
    batches = plan_batches(list(reversed(utts)), batch_size=4, max_padding=0.1)
    assert [[u.key for u in b] for b in batches] == [
        ["u00", "u01", "u02"], ["u03", "u04"], ["u05", "u06", "u07", "u08"], ["u09", "u10"], ["u11"]]
    for batch in batches:
        total = sum(u.duration for u in batch)
        assert len(batch) <= 4 and max(u.duration for u in batch) * len(batch) <= 1.1 * total
    # no bound on padding: plain length-sorted batches of 4
    assert [len(b) for b in plan_batches(utts, 4, max_padding=float("inf"))] == [4, 4, 4]
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches(utts, 0)
