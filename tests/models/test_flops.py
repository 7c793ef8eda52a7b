"""Parameter and FLOP counting."""

import pytest
import torch
import torch.nn as nn

from wespk.models import get_speaker_model
from wespk.models.flops import count_flops, count_parameters


class FrameLinear(nn.Module):
    """[B, T, F] -> [B, T, out]: one matmul of known size."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(80, 10)

    def forward(self, x):
        return self.linear(x)


def test_linear_flops_are_two_per_multiply_add():
    assert count_flops(FrameLinear(), num_frames=7, batch_size=3) == \
        2 * 3 * 7 * 80 * 10


def test_count_parameters():
    assert count_parameters(FrameLinear()) == 80 * 10 + 10


def test_resnet34_flops_for_four_seconds():
    # 18.1 GFLOP for 4 s of audio (the figure quoted in issue 4)
    model = get_speaker_model('ResNet34')(feat_dim=80, embed_dim=256)
    assert abs(count_flops(model, num_frames=400) / 1e9 - 18.1) < 0.05
    # WeSpeaker's ResNet34 has 6.63 M parameters (seg_1 is 5120 x 256)
    assert abs(count_parameters(model) / 1e6 - 6.63) < 0.01


def test_counting_leaves_the_model_on_its_device():
    model = FrameLinear()
    count_flops(model, num_frames=5)
    assert model.linear.weight.device.type == 'cpu'


class TwoLayerLSTM(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.lstm = torch.nn.LSTM(40, 32, num_layers=2, batch_first=True, **kwargs)

    def forward(self, x):
        return self.lstm(x)[0]


@pytest.mark.parametrize("kwargs, per_step_macs", [
    ({}, 4 * 32 * (40 + 32) + 4 * 32 * (32 + 32)),
    ({"bidirectional": True}, 2 * (4 * 32 * (40 + 32) + 4 * 32 * (64 + 32))),
    ({"proj_size": 8}, 4 * 32 * (40 + 8) + 32 * 8 + 4 * 32 * (8 + 8) + 32 * 8),
])
def test_lstm_flops_are_counted_from_their_sizes(kwargs, per_step_macs):
    # 3 utterances x 7 frames; the fused LSTM kernel is invisible to FlopCounterMode
    assert count_flops(TwoLayerLSTM(**kwargs), num_frames=7, feat_dim=40, batch_size=3, device="cpu") == \
        2 * per_step_macs * 3 * 7


def test_ge2e_lstm_flops_are_not_zero():
    from wespk.models import get_speaker_model
    model = get_speaker_model("GE2E_LSTM")()
    lstm = [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]
    assert lstm
    flops = count_flops(model, num_frames=160, feat_dim=40, device="cpu")
    assert flops >= sum(2 * 4 * m.hidden_size * (m.input_size + m.hidden_size) * 160 for m in lstm)
