"""Parameter and FLOP counting."""

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
