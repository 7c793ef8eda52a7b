"""ONNX Runtime and TorchScript exports give PyTorch's embeddings within 1e-4, for every
exported model family, on real speech; a failing parity check is loud and leaves no file."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from tests.export.model_dirs import SMALL_MODELS, make_model_dir, one_torch_thread, bundled_test_audio  # noqa: F401
from wespk.inference.frontend import FeatureFrontend
from wespk.export.jit_export import export_model_dir_to_torchscript
from wespk.export.onnx_export import export_model_dir_to_onnx
from wespk.export.parity import ParityError
from wespk.inference.model_dir import load_speaker_model
from wespk.io.audio import load_audio
from wespk.models import embedding_from_output

TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=list(SMALL_MODELS))
def exported(request, tmp_path_factory):
    """A family's model dir and its ONNX and TorchScript exports (in a separate dir)."""
    family = request.param
    root = tmp_path_factory.mktemp(family)
    model_dir = make_model_dir(root / "model", family)
    out_dir = root / "deploy"
    onnx_report = export_model_dir_to_onnx(str(model_dir), str(out_dir / "final.onnx"))
    jit_report = export_model_dir_to_torchscript(str(model_dir), str(out_dir / "final.pt"))
    return {"family": family, "model_dir": model_dir, "out_dir": out_dir,
            "onnx_report": onnx_report, "jit_report": jit_report}


def _other_speech_batch(config):
    """Features of three utterances of other speakers than the parity check's, unpadded."""
    frontend = FeatureFrontend(config)
    feats = []
    for speaker, seconds in ((5, 3.1), (9, 1.7), (14, 2.4)):
        samples, rate = load_audio(str(bundled_test_audio(speaker, 1)))
        feats.append(frontend(samples[: int(seconds * rate)], rate))
    return feats


def _padded(feats):
    lengths = torch.tensor([f.shape[0] for f in feats])
    batch = torch.zeros(len(feats), int(lengths.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        batch[i, : f.shape[0]] = f
    return batch, lengths


def test_parity_reports_are_within_tolerance(exported):
    for key in ("onnx_report", "jit_report"):
        report = exported[key]
        assert report.passed, report.summary()
        assert report.max_abs_diff <= TOLERANCE
        assert len(report.case_diffs) == 2  # single utterance and padded batch
        assert report.reference_scale > 1e-3  # embeddings are not degenerate zeros


def test_exports_equal_pytorch_on_other_speech(exported):
    """Independent of wespk's runners: raw onnxruntime and torch.jit.load on other speakers' speech,
    as a padded batch and as one utterance (TorchScript without lengths)."""
    model, config = load_speaker_model(str(exported["model_dir"]))
    feats = _other_speech_batch(config)
    batch, lengths = _padded(feats)
    with torch.no_grad():
        expected_batch = embedding_from_output(model(batch, lengths)).numpy()
        expected_single = embedding_from_output(model(feats[1][None])).numpy()
    session = onnxruntime.InferenceSession(str(exported["out_dir"] / "final.onnx"),
                                           providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["feats", "lengths"]
    assert [o.name for o in session.get_outputs()] == ["embedding"]
    got_batch = session.run(None, {"feats": batch.numpy(), "lengths": lengths.numpy()})[0]
    got_single = session.run(None, {"feats": feats[1][None].numpy(),
                                    "lengths": np.array([feats[1].shape[0]], dtype=np.int64)})[0]
    assert got_batch.shape == expected_batch.shape
    np.testing.assert_allclose(got_batch, expected_batch, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got_single, expected_single, rtol=0, atol=TOLERANCE)

    module = torch.jit.load(str(exported["out_dir"] / "final.pt"))
    # The optimising executor re-profiles every new shape; plain execution is what the runner uses.
    with torch.no_grad(), torch.jit.optimized_execution(False):
        got_batch = module(batch, lengths).numpy()
        got_single = module(feats[1][None]).numpy()  # lengths are optional
    np.testing.assert_allclose(got_batch, expected_batch, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got_single, expected_single, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("exported", ["XVEC"], indirect=True)
def test_export_dir_is_a_usable_model_dir(exported):
    """config.yaml is copied next to the export, so the API loads the export dir as a model dir."""
    import wespk
    assert (exported["out_dir"] / "config.yaml").read_text() == (exported["model_dir"] / "config.yaml").read_text()
    wav = str(bundled_test_audio(3, 2))
    reference = wespk.load_model(exported["model_dir"]).embed(wav)
    for backend in ("onnx", "jit"):
        embedder = wespk.load_model(exported["out_dir"], backend=backend)
        assert embedder.backend == backend
        np.testing.assert_allclose(embedder.embed(wav), reference, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("exported", ["REPVGG_TINY_A0"], indirect=True)
def test_repvgg_is_exported_in_deploy_form(exported):
    """One fused 3x3 conv per RepVGG block, not the 3x3 + 1x1 (+ BN identity) training branches."""
    from wespk.models.repvgg import RepVGGBlock
    model, _ = load_speaker_model(str(exported["model_dir"]))
    blocks = sum(isinstance(m, RepVGGBlock) for m in model.modules())
    graph = onnx.load(str(exported["out_dir"] / "final.onnx")).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert blocks > 20
    assert len(convs) == blocks
    scripted = torch.jit.load(str(exported["out_dir"] / "final.pt"))
    names = [name for name, _ in scripted.named_parameters()]
    assert any("rbr_reparam" in name for name in names)
    assert not [name for name in names if "rbr_1x1" in name or "rbr_dense" in name]


def test_failed_parity_is_loud_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """A runtime that drifts by 1e-3 fails the export with the max abs difference in the message."""
    from wespk.bin import export_onnx as export_onnx_main
    from wespk.inference.runners import OnnxRunner
    model_dir = make_model_dir(tmp_path / "model", "XVEC")
    original = OnnxRunner.embed_features
    monkeypatch.setattr(OnnxRunner, "embed_features", lambda self, feats: original(self, feats) + 1e-3)
    output = tmp_path / "out" / "final.onnx"
    with pytest.raises(ParityError) as failure:
        export_model_dir_to_onnx(str(model_dir), str(output))
    assert failure.value.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    assert "max abs difference 1.00e-03" in str(failure.value)
    assert not output.exists()
    assert not list((tmp_path / "out").glob(".final.onnx.*"))  # no temporary left behind

    status = export_onnx_main.main(["--model_dir", str(model_dir), "--output", str(output)])
    assert status == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "parity check FAILED" in message and "max abs difference 1.00e-03" in message
    assert not output.exists()


def test_frontend_matches_the_extractor_features():
    """The API's fbank front end gives exactly the features of the extraction pipeline, also after resampling."""
    from scipy.signal import resample_poly
    from tests.export.model_dirs import fbank_config
    from wespk.inference.extractor import EmbeddingExtractor
    config = fbank_config("XVEC", SMALL_MODELS["XVEC"][1])
    samples, rate = load_audio(str(bundled_test_audio(2, 0)))
    extractor = EmbeddingExtractor(torch.nn.Identity(), config)
    frontend = FeatureFrontend(config)
    torch.testing.assert_close(frontend(samples, rate), extractor.features(samples, rate), rtol=0, atol=0)
    at_22k = resample_poly(samples, 441, 320).astype(np.float32)
    feats = frontend(at_22k, 22050)
    torch.testing.assert_close(feats, extractor.features(at_22k, 22050), rtol=0, atol=0)
    assert abs(feats.shape[0] - frontend(samples, rate).shape[0]) <= 1


def test_ge2e_partial_window_export(tmp_path):
    """The GE2E LSTM exports its window encoder; windowing outside the graph gives PyTorch's embeddings."""
    from wespk.models import list_models
    if "GE2E_LSTM" not in list_models():
        pytest.skip("GE2E_LSTM is not registered in wespk.models yet")
    import yaml
    import wespk
    config = {"model": "GE2E_LSTM",
              "model_args": dict(feat_dim=40, hidden_dim=32, embed_dim=24, num_layers=2, partial_frames=160,
                                 partial_rate=1.3, min_coverage=0.75, trailing_frames=2),
              "dataset_args": {"feature_type": "resemblyzer_mel", "resample_rate": 16000}}
    model_dir = tmp_path / "ge2e"
    model_dir.mkdir()
    from wespk.models import get_speaker_model
    torch.manual_seed(0)
    torch.save(get_speaker_model("GE2E_LSTM")(**config["model_args"]).state_dict(), model_dir / "avg_model.pt")
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config))
    onnx_report = export_model_dir_to_onnx(str(model_dir), str(tmp_path / "out" / "final.onnx"))
    jit_report = export_model_dir_to_torchscript(str(model_dir), str(tmp_path / "out" / "final.pt"))
    assert onnx_report.max_abs_diff <= TOLERANCE and jit_report.max_abs_diff <= TOLERANCE
    wavs = [str(bundled_test_audio(7, 0)), str(bundled_test_audio(8, 1))]
    reference = wespk.load_model(model_dir).embed_batch(wavs)
    for backend in ("onnx", "jit"):
        got = wespk.load_model(tmp_path / "out", backend=backend).embed_batch(wavs)
        np.testing.assert_allclose(got, reference, rtol=0, atol=TOLERANCE)
