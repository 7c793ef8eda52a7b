"""GE2E_LSTM: partial-window placement, training and utterance modes, lengths."""

import pytest
import torch
import torch.nn.functional as F

from wespk.models.ge2e_lstm import GE2E_LSTM


def small_model(**kwargs) -> GE2E_LSTM:
    torch.manual_seed(0)
    args = dict(feat_dim=8, hidden_dim=16, embed_dim=12, num_layers=2, partial_frames=20,
                partial_rate=None, partial_overlap=0.5)
    args.update(kwargs)
    return GE2E_LSTM(**args)


def test_resemblyzer_window_step_and_starts():
    model = GE2E_LSTM(partial_rate=1.3)
    assert model.partial_step == 77                 # round(100 / 1.3)
    assert model.partial_window_starts(1) == [0]    # shorter than a window: one padded window
    assert model.partial_window_starts(160) == [0]
    # 0.75 coverage boundary: the window at 77 needs 120 frames up to the last frame (index T-1)
    assert model.partial_window_starts(197) == [0]
    assert model.partial_window_starts(198) == [0, 77]
    assert model.partial_window_starts(237) == [0, 77]    # stop = 237 - 160 + 78 = 155: no third window
    assert model.partial_window_starts(238) == [0, 77]    # third start 154 allowed, coverage 83/160 dropped
    assert model.partial_window_starts(275) == [0, 77, 154]


def test_overlap_step_and_bad_arguments():
    assert GE2E_LSTM(partial_overlap=0.5).partial_step == 80
    with pytest.raises(ValueError, match="partial_overlap"):
        GE2E_LSTM(partial_overlap=1.0)
    with pytest.raises(ValueError, match="step"):
        GE2E_LSTM(partial_rate=0.5)            # 200-frame step > 160-frame windows
    with pytest.raises(ValueError, match="min_coverage"):
        GE2E_LSTM(min_coverage=0.0)
    model = small_model()
    with pytest.raises(ValueError, match=r"\[B, T, F\]"):
        model(torch.zeros(10, 8))


def test_training_mode_embeds_each_window_with_unit_norm_and_gradients():
    model = small_model().train()
    x = torch.randn(5, 20, 8)
    emb = model(x)
    assert emb.shape == (5, 12)
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    emb.sum().backward()
    assert model.lstm.weight_ih_l0.grad is not None and model.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_training_mode_lengths_read_the_last_valid_frame():
    model = small_model().train()
    x = torch.randn(3, 20, 8)
    lengths = torch.tensor([20, 13, 7])
    batched = model(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model.embed_partials(x[i:i + 1, :n])
        assert torch.allclose(batched[i], alone[0], atol=1e-5)


def test_utterance_embedding_is_normalised_mean_of_zero_padded_windows():
    model = small_model().eval()        # window 20 frames, step 10, coverage 0.75
    x = torch.randn(1, 47, 8)
    starts = model.partial_window_starts(47)
    assert starts == [0, 10, 20, 30]    # the last one reaches frame 49, past the end
    padded = torch.cat([x, torch.zeros(1, 60, 8)], dim=1)
    windows = torch.cat([padded[:, s:s + 20] for s in starts])
    expected = F.normalize(model.embed_partials(windows).mean(dim=0), dim=0)
    with torch.no_grad():
        got = model(x)[0]
    assert torch.allclose(got, expected, atol=1e-6)


def test_window_placement_rule_small_model():
    model = small_model()
    # stop = T - 20 + 10 + 1; last start kept when (T - 1 - start) / 20 >= 0.75
    assert model.partial_window_starts(47) == [0, 10, 20, 30]  # stop 38, coverage 16/20
    assert model.partial_window_starts(44) == [0, 10, 20]      # start 30 < stop 35, coverage 13/20 dropped
    assert model.partial_window_starts(46) == [0, 10, 20, 30]  # coverage 15/20 = 0.75 kept
    assert model.partial_window_starts(5) == [0]               # too short: one window anyway


def test_padded_batch_equals_one_at_a_time():
    model = small_model().eval()
    lengths = [47, 12, 33, 20]
    utts = [torch.randn(n, 8) for n in lengths]
    batch = torch.full((4, 47, 8), 3.0)      # garbage padding must not matter
    for i, u in enumerate(utts):
        batch[i, : u.shape[0]] = u
    with torch.no_grad():
        batched = model(batch, torch.tensor(lengths))
        for i, u in enumerate(utts):
            alone = model(u[None])[0]
            assert F.cosine_similarity(batched[i], alone, dim=0) > 0.9999
            assert torch.allclose(batched[i], alone, atol=1e-5)


def test_long_input_in_training_mode_gives_utterance_embeddings():
    model = small_model()
    x = torch.randn(2, 47, 8)
    train_out = model.train()(x)
    with torch.no_grad():
        eval_out = model.eval()(x)
    assert torch.allclose(train_out.detach(), eval_out, atol=1e-6)


def test_trailing_frames_are_read_but_not_counted_for_placement():
    plain = small_model().eval()
    tail = small_model(trailing_frames=2).eval()
    tail.load_state_dict(plain.state_dict())
    x = torch.randn(1, 46 + 2, 8)
    with torch.no_grad():
        # windows placed over 46 frames: [0, 10, 20, 30], the last one reading frames 46, 47
        starts = plain.partial_window_starts(46)
        padded = torch.cat([x, torch.zeros(1, 40, 8)], dim=1)
        windows = torch.cat([padded[:, s:s + 20] for s in starts])
        expected = F.normalize(plain.embed_partials(windows).mean(dim=0), dim=0)
        assert torch.allclose(tail(x)[0], expected, atol=1e-6)
        # zeroing the trailing frames changes the result, so they are used
        zeroed = x.clone()
        zeroed[:, 46:] = 0
        assert not torch.allclose(tail(zeroed)[0], expected, atol=1e-4)


def test_lengths_out_of_range_is_an_error():
    model = small_model().eval()
    with pytest.raises(ValueError, match="lengths"):
        model(torch.randn(2, 10, 8), torch.tensor([10, 11]))
