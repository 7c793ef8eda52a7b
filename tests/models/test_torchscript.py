"""Speaker models compile with torch.jit.script, lengths included, and give
the eager outputs (export and the benchmark's frozen modules rely on it).

CAM++ scripts too but takes seconds to compile, so it is left out here."""

import pytest
import torch

from wespk.models import embedding_from_output
from wespk.models.ecapa_tdnn import ECAPA_TDNN
from wespk.models.repvgg import RepVGG, convert_to_deploy
from wespk.models.resnet import Bottleneck, ResNet
from wespk.models.tdnn import XVEC

TINY_REPVGG = dict(num_blocks=[1, 1, 1, 1],
                   strides=[1, 1, 2, 2, 2],
                   width_multiplier=[0.25] * 4,
                   pooling_func='TSTP',
                   feat_dim=16,
                   embed_dim=8)

TINY_MODELS = {
    'ResNet': lambda: ResNet(Bottleneck, [1, 1, 1, 1], m_channels=4,
                             feat_dim=16, embed_dim=8, pooling_func='ASTP'),
    'ECAPA': lambda: ECAPA_TDNN(channels=16, feat_dim=16, embed_dim=8,
                                global_context_att=True),
    'XVEC': lambda: XVEC(feat_dim=16, hid_dim=16, stats_dim=24, embed_dim=8,
                         pooling_func='MQMHASTP'),
    'RepVGG-deploy': lambda: convert_to_deploy(
        RepVGG(use_se=True, **TINY_REPVGG)),
}


@pytest.mark.filterwarnings('ignore:`torch.jit.script` is deprecated')
@pytest.mark.parametrize('name', sorted(TINY_MODELS))
def test_script_matches_eager(name):
    torch.manual_seed(0)
    model = TINY_MODELS[name]().eval()
    scripted = torch.jit.script(model)
    x = torch.randn(2, 120, 16)
    lengths = torch.tensor([120, 77])
    with torch.no_grad():
        for args in ((x, ), (x, lengths)):
            expected = embedding_from_output(model(*args))
            actual = embedding_from_output(scripted(*args))
            assert torch.allclose(actual, expected, atol=1e-5)
