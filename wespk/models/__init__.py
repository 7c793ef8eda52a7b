"""Speaker embedding models, built by WeSpeaker name.

Usage::

    from wespk.models import get_speaker_model, embedding_from_output
    model = get_speaker_model('ResNet34')(feat_dim=80, embed_dim=256,
                                          pooling_func='TSTP',
                                          two_emb_layer=False)
    outputs = model(fbank, lengths)          # fbank [B, T, F], lengths [B]
    embedding = embedding_from_output(outputs)

Names and ``model_args`` keys are WeSpeaker's (the ``model:`` and
``model_args:`` entries of its YAML configs), and so are the ``state_dict``
key names, so WeSpeaker checkpoints load as they are.  Every model's
``forward(x, lengths=None)`` takes fbank frames [B, T, F] and optional valid
lengths [B]; it returns what WeSpeaker's model returns (a tuple whose last
element is the embedding, or the embedding tensor itself).
"""

from types import MappingProxyType
from typing import Callable, List, Tuple, Union

import torch
import torch.nn as nn

from wespk.models import campplus, ecapa_tdnn, ge2e_lstm, repvgg, resnet, ssl_model, tdnn

SPEAKER_MODELS = MappingProxyType({
    'XVEC': tdnn.XVEC,
    'ECAPA_TDNN_c512': ecapa_tdnn.ECAPA_TDNN_c512,
    'ECAPA_TDNN_c1024': ecapa_tdnn.ECAPA_TDNN_c1024,
    'ECAPA_TDNN_GLOB_c512': ecapa_tdnn.ECAPA_TDNN_GLOB_c512,
    'ECAPA_TDNN_GLOB_c1024': ecapa_tdnn.ECAPA_TDNN_GLOB_c1024,
    'ResNet18': resnet.ResNet18,
    'ResNet34': resnet.ResNet34,
    'ResNet50': resnet.ResNet50,
    'ResNet101': resnet.ResNet101,
    'ResNet152': resnet.ResNet152,
    'ResNet221': resnet.ResNet221,
    'ResNet293': resnet.ResNet293,
    'REPVGG_TINY_A0': repvgg.REPVGG_TINY_A0,
    'REPVGG_TINY_RSBB_A0': repvgg.REPVGG_TINY_RSBB_A0,
    'REPVGG_A0': repvgg.REPVGG_A0,
    'REPVGG_RSBB_A0': repvgg.REPVGG_RSBB_A0,
    'REPVGG_A1': repvgg.REPVGG_A1,
    'REPVGG_A2': repvgg.REPVGG_A2,
    'REPVGG_RSBB_A2': repvgg.REPVGG_RSBB_A2,
    'REPVGG_B0': repvgg.REPVGG_B0,
    'REPVGG_RSBB_B0': repvgg.REPVGG_RSBB_B0,
    'REPVGG_B1': repvgg.REPVGG_B1,
    'REPVGG_B1g2': repvgg.REPVGG_B1g2,
    'REPVGG_B1g4': repvgg.REPVGG_B1g4,
    'REPVGG_B2': repvgg.REPVGG_B2,
    'REPVGG_B2g2': repvgg.REPVGG_B2g2,
    'REPVGG_B2g4': repvgg.REPVGG_B2g4,
    'REPVGG_B3': repvgg.REPVGG_B3,
    'REPVGG_B3g2': repvgg.REPVGG_B3g2,
    'REPVGG_B3g4': repvgg.REPVGG_B3g4,
    'REPVGG_D2SE': repvgg.REPVGG_D2SE,
    'CAMPPlus': campplus.CAMPPlus,
    'GE2E_LSTM': ge2e_lstm.GE2E_LSTM,
    **ssl_model.SSL_MODELS,  # SSL_ASTP, SSL_ECAPA_TDNN_GLOB_c512, SSL_MHFA
})


def list_models() -> List[str]:
    """Names accepted by :func:`get_speaker_model`, in registry order."""
    return list(SPEAKER_MODELS)


def get_speaker_model(name: str) -> Callable[..., nn.Module]:
    """Return the constructor of the speaker model called ``name``.

    Call the result with WeSpeaker's ``model_args``, e.g.
    ``get_speaker_model('CAMPPlus')(feat_dim=80, embed_dim=512)``.

    Raises:
        ValueError: if ``name`` is not registered; the message lists the
            known names.
    """
    if name not in SPEAKER_MODELS:
        raise ValueError(f'unknown speaker model {name!r}; known models: '
                         f'{", ".join(SPEAKER_MODELS)}')
    return SPEAKER_MODELS[name]


def embedding_from_output(
        outputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]]) -> torch.Tensor:
    """The embedding in a model's output: ``outputs[-1]`` of a tuple, else the
    tensor itself (what WeSpeaker's ``extract.py`` does)."""
    if isinstance(outputs, (tuple, list)):
        return outputs[-1]
    return outputs
