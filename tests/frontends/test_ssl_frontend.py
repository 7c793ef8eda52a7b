"""SSLFrontend: hidden states equal transformers' own, lengths, padding, loading."""

import json

import pytest
import torch

from tests.frontends.conftest import tiny_config
from wespk.frontends.ssl_frontend import FrontendError, SSLFrontend, frontend_from_args, normalize_waveform


@pytest.mark.parametrize("stable", [False, True])
@pytest.mark.parametrize("frontend", ["wavlm", "hubert", "wav2vec2"])
def test_hidden_states_equal_the_transformers_model(frontend, stable):
    torch.manual_seed(0)
    model = SSLFrontend(frontend, config=tiny_config(stable)).eval()
    wav = torch.randn(2, 8000)
    hidden, frames = model(wav)
    with torch.no_grad():
        reference = model.model(wav, output_hidden_states=True).hidden_states
    assert hidden.shape == (2, 64, 24, 3) and frames.tolist() == [24, 24]
    assert len(reference) == model.num_layers == 3
    for layer, expected in enumerate(reference):
        assert (hidden[..., layer] - expected.transpose(1, 2)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("stable", [False, True])
def test_padded_batch_equals_each_utterance_alone(stable):
    torch.manual_seed(1)
    model = SSLFrontend("wavlm", config=tiny_config(stable)).eval()
    lengths = torch.tensor([9600, 7000, 4000])
    wav = torch.randn(3, 9600) * (torch.arange(9600)[None, :] < lengths[:, None])
    with torch.no_grad():
        hidden, frames = model(wav, lengths)
        # the conv stack's rule: floor((n - 400) / 320) + 1 for the usual kernels and strides
        assert frames.tolist() == [(n - 400) // 320 + 1 for n in lengths.tolist()] == [29, 21, 12]
        for i, n in enumerate(lengths.tolist()):
            alone, _ = model(wav[i:i + 1, :n])
            assert (hidden[i, :, :frames[i]] - alone[0]).abs().max().item() <= 1e-5
        assert hidden[1, :, 21:].abs().max().item() == 0.0 and hidden[2, :, 12:].abs().max().item() == 0.0


def test_layerdrop_repeats_the_skipped_layers_input_in_training():
    torch.manual_seed(2)
    model = SSLFrontend("wavlm", config=tiny_config(layers=4), layerdrop=0.999).train()
    hidden, _ = model(torch.randn(1, 4000))
    assert hidden.shape[-1] == 5
    # WavLM never drops its first layer; every later one is (almost surely) skipped
    for layer in range(2, 5):
        assert torch.equal(hidden[..., layer], hidden[..., 1])


def test_long_input_is_cut_in_chunks_in_eval_mode_only():
    torch.manual_seed(3)
    model = SSLFrontend("wavlm", config=tiny_config(True), chunk_seconds=0.5).eval()
    wav = torch.randn(1, 16000 * 2)
    with torch.no_grad():
        chunked, frames = model(wav)
        model.chunk_seconds = 0.0
        whole, _ = model(wav)
    # four 0.5 s chunks of 24 frames; 99 frames unchunked
    assert chunked.shape[2] == frames.item() == 96 and whole.shape[2] == 99
    # away from the chunk edges the frames agree closely with the unchunked run
    cos = torch.nn.functional.cosine_similarity(chunked[0, :, 8:16, 0], whole[0, :, 8:16, 0], dim=0)
    assert cos.min().item() > 0.5


def test_normalize_waveform_over_valid_samples():
    wav = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 4.0, 8.0, 8.0]])
    out = normalize_waveform(wav, torch.tensor([3, 4]))
    assert out[0, 3].item() == 0.0
    assert abs(out[0, :3].mean().item()) < 1e-6 and abs(out[0, :3].var(unbiased=False).item() - 1) < 1e-5
    assert torch.allclose(out[1], torch.tensor([-1.0, -1.0, 1.0, 1.0]), atol=1e-5)


def test_loads_a_local_huggingface_dir_without_network(tmp_path):
    torch.manual_seed(4)
    source = SSLFrontend("hubert", config=tiny_config()).eval()
    source.model.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    loaded = SSLFrontend("hubert", model_dir=str(tmp_path)).eval()
    assert loaded.normalize
    wav = torch.randn(1, 6000)
    with torch.no_grad():
        expected, _ = source(normalize_waveform(wav))
        got, _ = loaded(wav)
    assert (got - expected).abs().max().item() <= 1e-6
    with pytest.raises(FrontendError, match="model_type 'hubert'"):
        SSLFrontend("wavlm", model_dir=str(tmp_path))


def test_bad_frontend_args_are_named():
    with pytest.raises(FrontendError, match="unknown frontend_args key"):
        frontend_from_args("wavlm", {"config": tiny_config(), "froze": True})
    with pytest.raises(FrontendError, match="hidden_sise"):
        SSLFrontend("wavlm", config={"hidden_sise": 64})
    with pytest.raises(FrontendError, match="no such directory"):
        SSLFrontend("wavlm", model_dir="/nonexistent/wavlm")
    with pytest.raises(FrontendError, match="unknown frontend 'whisper'"):
        SSLFrontend("whisper", config={})
    with pytest.raises(ValueError, match="shorter than one frame"):
        SSLFrontend("wavlm", config=tiny_config()).eval()(torch.randn(1, 300))
