"""The extraction engine: one resolver, input kinds, --format npy, in-memory segments, post-processing."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import CORPUS, REPO
from wespk.inference.extractor import EmbeddingExtractor, extract_embeddings, npy_paths
from wespk.inference.model_dir import ModelDirError, resolve_model_dir
from wespk.io.embeddings import read_embeddings

CONFIG = {"model": "ResNet34",
          "model_args": {"feat_dim": 40, "embed_dim": 8, "m_channels": 4, "two_emb_layer": False},
          "dataset_args": {"resample_rate": 16000, "fbank_args": {"num_mel_bins": 40}}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    from wespk.models import get_speaker_model
    torch.manual_seed(0)
    torch.save(get_speaker_model("ResNet34")(**CONFIG["model_args"]).state_dict(), root / "avg_model.pt")
    return root


@pytest.fixture(scope="module")
def audio_files():
    """Two utterances of each of two test speakers: ``<corpus>/test/<speaker>/<utt>.flac``."""
    speakers = sorted(p for p in (CORPUS / "test").iterdir() if p.is_dir())[:2]
    return [f for s in speakers for f in sorted(s.glob("*.flac"))[:2]]


def test_resolver_names_what_is_missing(tmp_path, model_dir):
    with pytest.raises(ModelDirError, match="no config.yaml"):
        resolve_model_dir(tmp_path)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    with pytest.raises(ModelDirError, match=r"no model file for backend 'auto' \(looked for avg_model.pt"):
        resolve_model_dir(tmp_path)
    with pytest.raises(ModelDirError, match="final.onnx or models/final.onnx"):
        resolve_model_dir(model_dir, "onnx")
    resolved = resolve_model_dir(model_dir)
    assert (resolved.backend, resolved.model_file) == ("torch", str(model_dir / "avg_model.pt"))
    assert resolved.config["model"] == "ResNet34"
    # a model file: its dir is the model dir
    assert resolve_model_dir(model_dir / "avg_model.pt").model_dir == str(model_dir)
    with pytest.raises(ModelDirError, match="a torch model file, but backend 'jit'"):
        resolve_model_dir(model_dir / "avg_model.pt", "jit")


def test_input_kind_and_waveform_frontend():
    from wespk.inference.frontend import FeatureFrontend, WaveformFrontend, build_frontend, input_kind
    assert input_kind(CONFIG) == "fbank" and isinstance(build_frontend(CONFIG), FeatureFrontend)
    ssl = {"model": "SSL_MHFA", "model_args": {"frontend": "wavlm"}, "dataset_args": {"resample_rate": 16000}}
    assert input_kind(ssl) == "waveform"
    assert input_kind({"model": "X", "dataset_args": {"frontend": "waveform"}}) == "waveform"
    frontend = build_frontend(ssl)
    assert isinstance(frontend, WaveformFrontend)
    samples = np.sin(np.arange(8000) / 5.0).astype(np.float32)
    out = frontend(samples, 8000)                      # resampled to the model's rate
    assert out.shape == (16000,) and out.dtype == torch.float32
    from wespk.io.audio import AudioError
    with pytest.raises(AudioError, match="too short"):
        frontend(samples[:400], 8000)


def test_npy_format_mirrors_the_input_tree_and_equals_the_ark(model_dir, audio_files, tmp_path):
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text("".join(f"{p.parent.name}-{p.stem} {p}\n" for p in audio_files))
    assert extract_embeddings(str(wav_scp), str(model_dir), str(tmp_path / "ark"), batch_size=3) == 4
    # the stage as a recipe runs it
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "wespk.bin.extract", "--model_dir", str(model_dir), "--data",
                          str(wav_scp), "--out_dir", str(tmp_path / "npy"), "--batch_size", "3", "--format", "npy"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    keys, ark = read_embeddings(tmp_path / "ark" / "xvector.scp")
    for key, vector, path in zip(keys, ark, audio_files):
        npy = tmp_path / "npy" / path.parent.name / f"{path.stem}.npy"   # relative to <corpus>/test
        stored = np.load(npy)
        assert stored.dtype == np.float32 and stored.shape == vector.shape, key
        assert np.abs(stored - vector).max() <= 1e-6, key   # float32 in both; another process
    index = dict(line.split() for line in (tmp_path / "npy" / "npy.scp").read_text().splitlines())
    assert list(index) == keys
    assert (tmp_path / "npy" / "utt2dur").read_text() == (tmp_path / "ark" / "utt2dur").read_text()
    assert not (tmp_path / "npy" / "xvector.ark").exists()


def test_npy_paths_of_segments_pipes_and_shared_files(tmp_path):
    from wespk.data.records import Utterance
    utts = [Utterance.from_wav_scp("spk1/a", "/data/x/rec1.flac"),
            Utterance.from_wav_scp("seg1", "/data/x/rec2.flac", start=0.0, end=1.5),
            Utterance.from_wav_scp("p1", "sox /data/x/rec3.flac -t wav - |"),
            Utterance.from_wav_scp("d1", "/data/y/rec4.flac"), Utterance.from_wav_scp("d2", "/data/y/rec4.flac"),
            Utterance.from_wav_scp("b", "/data/z/deep/rec5.wav")]
    assert npy_paths(utts) == {"spk1/a": "x/rec1.npy", "seg1": "seg1.npy", "p1": "p1.npy",
                               "d1": "d1.npy", "d2": "d2.npy", "b": "z/deep/rec5.npy"}
    with pytest.raises(ValueError, match="outside the output dir"):
        npy_paths([Utterance.from_wav_scp("../up", "cat /x.wav |")])
    with pytest.raises(ValueError, match="both be written to x/rec1.npy"):
        npy_paths(utts[:2] + [Utterance.from_wav_scp("b", "/data/z/deep/rec5.wav"),
                              Utterance.from_wav_scp("x/rec1", "cat /x.wav |")])


def test_cli_extract_format_npy(model_dir, audio_files, tmp_path, capsys):
    from wespk.cli import main
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text("".join(f"{p.stem} {p}\n" for p in audio_files[:2]))
    assert main(["extract", "--model", str(model_dir), "--wav-scp", str(wav_scp), "--out", str(tmp_path / "o"),
                 "--format", "npy", "-q"]) == 0
    assert "wrote 2 embeddings" in capsys.readouterr().out
    extractor = EmbeddingExtractor.from_model_dir(str(model_dir))
    from wespk.io.audio import load_audio
    samples, rate = load_audio(audio_files[0])
    single = extractor.embed_features([extractor.features(samples, rate)])[0]
    stored = np.load(tmp_path / "o" / f"{audio_files[0].stem}.npy")   # both files in one speaker dir
    assert np.abs(stored - single).max() <= 1e-5


def test_embed_segments_of_one_recording(model_dir, audio_files):
    from wespk.io.audio import load_audio
    extractor = EmbeddingExtractor.from_model_dir(str(model_dir))
    samples, rate = load_audio(audio_files[0])
    segments = [(0.0, 1.5), (0.75, 2.25), (1.0, 1.05), (0.5, 1.3)]   # the third is too short
    vectors, kept = extractor.embed_segments(samples, rate, segments, batch_size=2)
    assert kept == [0, 1, 3] and vectors.shape == (3, 8)
    for row, i in zip(vectors, kept):
        start, end = segments[i]
        piece = samples[int(round(start * rate)): int(round(end * rate))]
        alone = extractor.embed_features([extractor.features(piece, rate)])[0]
        assert np.abs(row - alone).max() <= 1e-5 * max(1.0, np.abs(alone).max())
    with pytest.raises(ValueError, match="start < end"):
        extractor.embed_segments(samples, rate, [(2.0, 1.0)])


def negate_and_tag(keys, embeddings):
    """A post-processing step for the test: the first column becomes the key's length."""
    out = -embeddings
    out[:, 0] = [len(k) for k in keys]
    return out


def test_postprocess_sees_keys_and_batches(model_dir, audio_files, tmp_path):
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text("".join(f"{'k' * (i + 1)} {p}\n" for i, p in enumerate(audio_files)))
    extract_embeddings(str(wav_scp), str(model_dir), str(tmp_path / "raw"), batch_size=2)
    extract_embeddings(str(wav_scp), str(model_dir), str(tmp_path / "post"), batch_size=2,
                       postprocess=negate_and_tag)
    keys, raw = read_embeddings(tmp_path / "raw" / "xvector.scp")
    _, post = read_embeddings(tmp_path / "post" / "xvector.scp")
    assert np.array_equal(post[:, 0], [len(k) for k in keys])
    assert np.array_equal(post[:, 1:], -raw[:, 1:])


def test_waveform_model_goes_through_the_same_engine(audio_files, tmp_path):
    """A tiny random-init WavLM + MHFA model dir: the engine feeds it waveforms, padded batches as one by one."""
    pytest.importorskip("transformers")
    from tests.frontends.conftest import tiny_config
    from wespk.inference.model_dir import build_speaker_model
    config = {"model": "SSL_MHFA",
              "model_args": {"frontend": "wavlm", "frontend_args": {"config": tiny_config(True)},
                             "head_nb": 4, "compression_dim": 32, "embed_dim": 16},
              "dataset_args": {"frontend": "waveform", "resample_rate": 16000}}
    model_dir = tmp_path / "ssl"
    model_dir.mkdir()
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    model = build_speaker_model(config).eval()
    torch.save(model.state_dict(), model_dir / "avg_model.pt")
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"rec {audio_files[0]}\n")
    segments = {"u0": (0.0, 1.0), "u1": (0.5, 2.0), "u2": (1.0, 1.6)}
    (data / "segments").write_text("".join(f"{k} rec {a} {b}\n" for k, (a, b) in segments.items()))
    extract_embeddings(str(data), str(model_dir), str(tmp_path / "b1"), batch_size=1)
    extract_embeddings(str(data), str(model_dir), str(tmp_path / "b3"), batch_size=3, max_padding=10)
    keys, single = read_embeddings(tmp_path / "b1" / "xvector.scp")
    _, batched = read_embeddings(tmp_path / "b3" / "xvector.scp")
    cosine = (single * batched).sum(1) / np.linalg.norm(single, axis=1) / np.linalg.norm(batched, axis=1)
    assert keys == list(segments) and single.shape == (3, 16) and cosine.min() >= 0.9999
    from wespk.io.audio import load_audio
    samples, rate = load_audio(audio_files[0], 0.5, 2.0)
    with torch.inference_mode():
        direct = model(torch.from_numpy(samples)[None]).numpy()[0]
    assert np.abs(single[1] - direct).max() <= 1e-4 * max(1.0, np.abs(direct).max())
