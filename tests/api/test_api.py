"""The Python API: load_model on every backend, embed from paths / arrays / tensors,
similarity, the speaker manager (enroll, search, save, load) and score calibration."""

import json

import numpy as np
import pytest
import soundfile
import torch

import wespk
from tests.export.model_dirs import make_model_dir, one_torch_thread, bundled_test_audio  # noqa: F401
from wespk.api import (CalibrationError, EmbedderConfig, EmbedderConfigError, SpeakerDatabaseError,
                       SpeakerManager, cosine_similarity, load_score_calibrator)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("api") / "xvec", "XVEC")


@pytest.fixture(scope="module")
def embedder(model_dir):
    return wespk.load_model(model_dir)


@pytest.fixture(scope="module")
def exported_dir(model_dir, tmp_path_factory):
    """ONNX and TorchScript exports in a dir without config.yaml (they carry the config inside)."""
    from wespk.export.jit_export import export_torchscript
    from wespk.export.onnx_export import export_onnx
    from wespk.inference.model_dir import load_speaker_model
    model, config = load_speaker_model(str(model_dir))
    out = tmp_path_factory.mktemp("exported")
    export_onnx(model, config, str(out / "final.onnx"))
    export_torchscript(model, config, str(out / "final.pt"))
    return out


def _wavs(*pairs):
    return [str(bundled_test_audio(speaker, utt)) for speaker, utt in pairs]


def test_every_backend_gives_the_same_embeddings(embedder, exported_dir):
    wavs = _wavs((0, 0), (1, 1), (2, 0))
    reference = embedder.embed_batch(wavs)
    assert embedder.backend == "torch"
    for path, backend in ((exported_dir, "onnx"), (exported_dir, "jit"), (exported_dir / "final.onnx", "auto"),
                          (exported_dir / "final.pt", "auto")):
        other = wespk.load_model(path, backend=backend, batch_size=2)
        assert other.backend in ("onnx", "jit")
        assert other.model.config["model"] == "XVEC"  # read from inside the exported file
        np.testing.assert_allclose(other.embed_batch(wavs), reference, rtol=0, atol=1e-4)


def test_embed_takes_paths_arrays_and_tensors(embedder):
    path = _wavs((3, 0))[0]
    samples, rate = soundfile.read(path, dtype="float32")
    pcm, _ = soundfile.read(path, dtype="int16")
    reference = embedder.embed(path)
    assert reference.shape == (32,) and reference.dtype == np.float32
    for audio in (samples, torch.from_numpy(samples), pcm, np.stack([samples, samples]),
                  torch.from_numpy(np.stack([samples, samples], axis=1))):
        np.testing.assert_allclose(embedder.embed(audio, sample_rate=rate), reference, rtol=0, atol=1e-5)
    # Arrays default to the model's rate; an explicit rate is resampled.
    np.testing.assert_allclose(embedder.embed(samples), reference, rtol=0, atol=1e-5)
    from scipy.signal import resample_poly
    at_8k = resample_poly(samples, 1, 2).astype(np.float32)
    resampled = embedder.embed(at_8k, sample_rate=8000)
    other_speaker = embedder.embed(_wavs((4, 0))[0])
    assert cosine_similarity(resampled, reference) > cosine_similarity(other_speaker, reference)


def test_embed_batch_equals_one_at_a_time(embedder):
    wavs = _wavs((5, 0), (6, 1), (7, 0), (8, 2), (9, 0))
    one_by_one = np.stack([embedder.embed(w) for w in wavs])
    np.testing.assert_allclose(embedder.embed_batch(wavs), one_by_one, rtol=0, atol=1e-5)


def test_similarity_takes_audio_and_embeddings(embedder):
    a, b = _wavs((10, 0), (11, 0))
    vector_a, vector_b = embedder.embed(a), embedder.embed(b)
    expected = float(np.dot(vector_a, vector_b) / np.linalg.norm(vector_a) / np.linalg.norm(vector_b))
    assert embedder.similarity(a, b) == pytest.approx(expected, abs=1e-6)
    assert embedder.similarity(vector_a, b) == pytest.approx(expected, abs=1e-6)
    assert embedder.similarity(vector_a, torch.from_numpy(vector_b)) == pytest.approx(expected, abs=1e-6)
    assert embedder.similarity(a, a) == pytest.approx(1.0, abs=1e-6)


def test_bad_audio_raises_a_clear_error(embedder, tmp_path):
    from wespk.io.audio import AudioError
    with pytest.raises(AudioError, match="too short"):
        embedder.embed(np.zeros(1600, dtype=np.float32), sample_rate=16000)
    with pytest.raises(AudioError, match="file not found"):
        embedder.embed(tmp_path / "absent.wav")
    with pytest.raises(AudioError, match="NaN"):
        embedder.embed(np.full(16000, np.nan, dtype=np.float32))


@pytest.mark.parametrize("field, value", [("backend", "tensorflow"), ("batch_size", 0), ("batch_size", 2.5),
                                          ("device", "gpu"), ("num_threads", 0)])
def test_embedder_config_is_validated(field, value):
    with pytest.raises(EmbedderConfigError, match=field.split("_")[0]):
        EmbedderConfig(**{field: value})
    with pytest.raises(EmbedderConfigError, match="CPU"):
        EmbedderConfig(backend="onnx", device="cuda")
    assert EmbedderConfig() == EmbedderConfig(device="cpu", batch_size=16, backend="auto", num_threads=None)


def test_load_model_errors_name_the_problem(tmp_path, model_dir):
    from wespk.inference.model_dir import ModelDirError
    with pytest.raises(ModelDirError, match="not found"):
        wespk.load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="no config.yaml"):
        wespk.load_model(tmp_path / "empty")
    with pytest.raises(ModelDirError, match="final.onnx"):
        wespk.load_model(model_dir, backend="onnx")


def test_speaker_manager_averages_searches_and_removes():
    rng = np.random.default_rng(0)
    alice = rng.standard_normal((2, 8)).astype(np.float32)
    bob = rng.standard_normal(8).astype(np.float32)
    manager = SpeakerManager()
    assert manager.add("alice", alice[0]) == 1
    assert manager.add("alice", alice[1]) == 2  # a second enrollment is averaged in
    assert manager.add("bob", [bob]) == 1
    np.testing.assert_allclose(manager.embedding("alice"), alice.mean(axis=0), rtol=1e-6)
    query = alice.mean(axis=0) + 0.1 * bob
    results = manager.search(query)
    assert [name for name, _ in results] == ["alice", "bob"]
    assert results[0][1] == pytest.approx(cosine_similarity(query, alice.mean(axis=0)))
    assert results[0][1] > results[1][1]
    assert manager.search(query, threshold=results[0][1] + 1e-6) == []
    assert manager.search(query, threshold=results[1][1]) == results
    assert manager.search(query, top_k=1) == results[:1]
    manager.remove("bob")
    assert manager.names == ["alice"] and "bob" not in manager
    with pytest.raises(KeyError):
        manager.remove("bob")
    with pytest.raises(ValueError, match="dimension"):
        manager.add("carol", np.ones(4, dtype=np.float32))


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_speaker_database_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    manager = SpeakerManager()
    manager.add("alice", list(rng.standard_normal((3, 16)).astype(np.float32)))
    manager.add("bob", rng.standard_normal(16).astype(np.float32))
    path = tmp_path / f"speakers{suffix}"
    manager.save(path)
    loaded = SpeakerManager.load(path)
    assert loaded.names == ["alice", "bob"]
    assert [loaded.count(n) for n in loaded.names] == [3, 1]
    for name in manager.names:
        np.testing.assert_array_equal(loaded.embedding(name), manager.embedding(name))
    assert list(tmp_path.iterdir()) == [path]  # atomic write: no temporary file left
    loaded.add("alice", manager.embedding("alice"))  # enrollment continues after a reload
    assert loaded.count("alice") == 4


def test_speaker_database_errors(tmp_path, embedder):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(SpeakerDatabaseError, match="bad.json"):
        SpeakerManager.load(bad)
    other_dim = SpeakerManager()
    other_dim.add("x", np.ones(5, dtype=np.float32))
    other_dim.save(tmp_path / "five.json")
    with pytest.raises(SpeakerDatabaseError, match="5-dim"):
        SpeakerManager.load(tmp_path / "five.json", embedder)


def test_speaker_manager_enrolls_and_finds_audio(embedder):
    manager = SpeakerManager(embedder)
    manager.add("first", _wavs((12, 0), (12, 1)))
    manager.add("second", _wavs((13, 0)))
    np.testing.assert_allclose(manager.embedding("first"), embedder.embed_batch(_wavs((12, 0), (12, 1))).mean(axis=0),
                               rtol=0, atol=1e-5)
    results = manager.search(_wavs((12, 0))[0])
    assert results[0][0] == "first"
    assert results[0][1] == pytest.approx(cosine_similarity(embedder.embed(_wavs((12, 0))[0]),
                                                            manager.embedding("first")), abs=1e-6)


def test_pretrained_ge2e_model_identifies_real_speakers(tmp_path):
    """The converted resemblyzer model tells the bundled test speakers apart (when resemblyzer is installed)."""
    from wespk.pretrained.resemblyzer import ResemblyzerConversionError, convert_resemblyzer
    try:
        convert_resemblyzer(str(tmp_path / "ge2e"))
    except ResemblyzerConversionError as e:
        pytest.skip(str(e))
    model = wespk.load_model(tmp_path / "ge2e")
    manager = SpeakerManager(model)
    speakers = (0, 4, 8, 12, 16)
    for speaker in speakers:
        manager.add(f"spk{speaker}", _wavs((speaker, 0), (speaker, 1)))
    for speaker in speakers:
        best = manager.search(_wavs((speaker, 2))[0], top_k=2)
        assert best[0][0] == f"spk{speaker}"
        assert best[0][1] - best[1][1] > 0.05


def test_score_calibrators(tmp_path):
    from wespk.scoring.calibration import apply_qmf, save_qmf_model
    assert load_score_calibrator(str(tmp_path)) is None
    (tmp_path / "calibration.json").write_text(json.dumps({"scale": 4.0, "offset": -1.5, "threshold": 0.3}))
    calibrator = load_score_calibrator(str(tmp_path))
    assert calibrator.calibrate(0.5) == pytest.approx(0.5) and calibrator.threshold == 0.3
    (tmp_path / "calibration.json").write_text(json.dumps({"scale": "big", "offset": 0}))
    with pytest.raises(CalibrationError, match="scale"):
        load_score_calibrator(str(tmp_path))
    (tmp_path / "calibration.json").unlink()

    score_only = {"linear.weight": torch.tensor([[6.0]], dtype=torch.float64),
                  "linear.bias": torch.tensor([-2.0], dtype=torch.float64)}
    save_qmf_model(tmp_path / "qmf_model.pt", score_only)
    calibrator = load_score_calibrator(str(tmp_path))
    assert calibrator.calibrate(0.7) == pytest.approx(float(apply_qmf(score_only, np.array([[0.7]]))[0]))

    with_quality = {"linear.weight": torch.ones(1, 13, dtype=torch.float64),
                    "linear.bias": torch.zeros(1, dtype=torch.float64)}
    save_qmf_model(tmp_path / "qmf_model.pt", with_quality)
    with pytest.raises(CalibrationError, match="13 inputs"):
        load_score_calibrator(str(tmp_path))
