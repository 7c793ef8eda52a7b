"""A zero-padded batch with lengths gives the embeddings of one utterance at a
time, for every model family (small configs, eval-mode BN with calibrated
statistics)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from wespk.models import embedding_from_output
from wespk.models.campplus import CAMPPlus
from wespk.models.ecapa_tdnn import ECAPA_TDNN
from wespk.models.repvgg import RepVGG, convert_to_deploy
from wespk.models.resnet import BasicBlock, Bottleneck, ResNet
from wespk.models.tdnn import XVEC

FEAT_DIM = 40
LENGTHS = [200, 137, 90]
# After CAM++'s stride-2 TDNN: 125, 107, 45 frames, so its 100-frame
# segment pooling sees full, partial and padded segments.
CAMPPLUS_LENGTHS = [250, 213, 90]
# CAM++'s 2-D front-end has a fixed width of 32; few bins keep it cheap.
CAMPPLUS_FEAT_DIM = 16


def small_models():
    """name -> (constructor, lengths, feat_dim); tiny widths keep it fast."""
    tiny_repvgg = dict(num_blocks=[1, 2, 1, 1],
                       strides=[1, 1, 2, 2, 2],
                       width_multiplier=[0.25] * 4,
                       pooling_func='TSTP',
                       feat_dim=FEAT_DIM,
                       embed_dim=32)
    return {
        'ResNet-basic-TSTP':
        (lambda: ResNet(BasicBlock, [1, 1, 1, 1],
                        m_channels=8,
                        feat_dim=FEAT_DIM,
                        embed_dim=32), LENGTHS, FEAT_DIM),
        'ResNet-bottleneck-MQMHASTP-two-emb':
        (lambda: ResNet(Bottleneck, [1, 1, 1, 1],
                        m_channels=8,
                        feat_dim=FEAT_DIM,
                        embed_dim=32,
                        pooling_func='MQMHASTP',
                        two_emb_layer=True), LENGTHS, FEAT_DIM),
        'ECAPA-GLOB-ASTP':
        (lambda: ECAPA_TDNN(channels=64,
                            feat_dim=FEAT_DIM,
                            embed_dim=32,
                            global_context_att=True), LENGTHS, FEAT_DIM),
        'XVEC-TSTP':
        (lambda: XVEC(feat_dim=FEAT_DIM, hid_dim=64, stats_dim=96,
                      embed_dim=32), LENGTHS, FEAT_DIM),
        'CAMPPlus':
        (lambda: CAMPPlus(feat_dim=CAMPPLUS_FEAT_DIM,
                          embed_dim=32,
                          growth_rate=8,
                          bn_size=2,
                          init_channels=16), CAMPPLUS_LENGTHS,
         CAMPPLUS_FEAT_DIM),
        'RepVGG-SE':
        (lambda: RepVGG(use_se=True, **tiny_repvgg), LENGTHS, FEAT_DIM),
        'RepVGG-RepSPK-deploy':
        (lambda: convert_to_deploy(
            calibrate(RepVGG(block='RepSPK', **tiny_repvgg), FEAT_DIM)),
         LENGTHS, FEAT_DIM),
    }


def calibrate(model: nn.Module, feat_dim: int) -> nn.Module:
    """Give every BN the statistics of a train-mode pass (non-trivial
    affine maps in eval mode), then switch to eval."""
    generator = torch.Generator().manual_seed(7)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
            if module.affine:
                with torch.no_grad():
                    module.weight.uniform_(0.5, 1.5, generator=generator)
                    module.bias.normal_(0, 0.1, generator=generator)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 120, feat_dim, generator=generator))
    return model.eval()


def padded_batch(lengths, feat_dim):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(len(lengths), max(lengths), feat_dim, generator=generator)
    for i, length in enumerate(lengths):
        x[i, length:] = 0.0
    return x, torch.tensor(lengths)


def embed(model, x, lengths=None):
    with torch.no_grad():
        return embedding_from_output(model(x, lengths))


@pytest.fixture(scope='module', params=sorted(small_models()))
def embeddings(request):
    """Embeddings of one padded batch: with lengths, without, with full
    lengths, and of each utterance alone."""
    torch.manual_seed(0)
    build, lengths, feat_dim = small_models()[request.param]
    model = calibrate(build(), feat_dim)
    x, lengths_tensor = padded_batch(lengths, feat_dim)
    full = torch.full((len(lengths), ), x.shape[1], dtype=torch.long)
    return {
        'masked': embed(model, x, lengths_tensor),
        'unmasked': embed(model, x),
        'full_lengths': embed(model, x, full),
        'alone': [embed(model, x[i:i + 1, :length])[0]
                  for i, length in enumerate(lengths)],
    }


def test_padded_batch_equals_one_at_a_time(embeddings):
    for i, alone in enumerate(embeddings['alone']):
        cosine = F.cosine_similarity(embeddings['masked'][i], alone,
                                     dim=0).item()
        assert cosine > 0.9999, (i, cosine)


def test_ignoring_lengths_changes_padded_embeddings(embeddings):
    """Sanity check of the test above: padding does matter without lengths."""
    cosine = F.cosine_similarity(embeddings['unmasked'][-1],
                                 embeddings['alone'][-1],
                                 dim=0).item()
    assert cosine < 0.9999


def test_full_lengths_equal_no_lengths(embeddings):
    without = embeddings['unmasked']
    scale = max(without.abs().max().item(), 1.0)
    difference = (embeddings['full_lengths'] - without).abs().max().item()
    assert difference <= 1e-5 * scale
