"""Print parameter counts and FLOPs of the registered speaker models.

``python -m wespk.bin.model_stats [--models ResNet34,CAMPPlus] [--seconds 2]``

Prints a markdown table: parameters in millions and GFLOPs of one forward
pass on N seconds of audio (fbank with ``--feat_dim`` bins, 100 frames per
second, batch 1).  FLOPs count two per multiply-add of the matrix products
and convolutions (``torch.utils.flop_counter``); WeSpeaker's and thop's
"FLOPs" figures are multiply-adds, i.e. half of these.  The models are built
with the ``model_args`` of WeSpeaker's VoxCeleb v2 configs (embedding size
512 for XVEC and CAM++, 192 for ECAPA-TDNN, 256 otherwise; default pooling).
"""

import argparse
import logging
import sys
from typing import Dict, List

import torch

from wespk.models import get_speaker_model, list_models
from wespk.models.ssl_model import SSL_MODELS
from wespk.models.flops import count_flops, count_parameters
from wespk.utils.logs import setup_logging

logger = logging.getLogger('wespk.bin.model_stats')

FRAMES_PER_SECOND = 100


def default_model_args(name: str, feat_dim: int) -> Dict:
    """WeSpeaker VoxCeleb v2 ``model_args`` for the model called ``name``."""
    if name in ('XVEC', 'CAMPPlus'):
        embed_dim = 512
    elif name.startswith('ECAPA_TDNN'):
        embed_dim = 192
    else:
        embed_dim = 256
    return {'feat_dim': feat_dim, 'embed_dim': embed_dim}


def model_stats_table(names: List[str], seconds: float, feat_dim: int) -> str:
    """The markdown table of parameters and GFLOPs for ``names``."""
    num_frames = int(round(seconds * FRAMES_PER_SECOND))
    lines = [
        f'| model | embed_dim | params (M) | GFLOPs ({seconds:g} s) |',
        '| --- | ---: | ---: | ---: |',
    ]
    for name in names:
        model_args = default_model_args(name, feat_dim)
        with torch.device('meta'):  # shapes only: no weight initialisation
            model = get_speaker_model(name)(**model_args)
        params = count_parameters(model) / 1e6
        try:
            gflops = count_flops(model, num_frames, feat_dim) / 1e9
        except NotImplementedError:  # an op with no meta kernel (GE2E_LSTM's bincount): count on the CPU
            gflops = count_flops(get_speaker_model(name)(**model_args), num_frames, feat_dim, device="cpu") / 1e9
        logger.info('%s: %.2f M parameters, %.2f GFLOPs', name, params,
                    gflops)
        lines.append(f'| {name} | {model_args["embed_dim"]} | {params:.2f} '
                     f'| {gflops:.2f} |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models',
                        default='',
                        help='comma-separated model names (default: every '
                        'registered model that takes fbank; the SSL_* models take '
                        'waveforms and a frontend config, see docs/ssl.md)')
    parser.add_argument('--seconds',
                        type=float,
                        default=2.0,
                        help='audio duration per utterance')
    parser.add_argument('--feat_dim', type=int, default=80)
    args = parser.parse_args(argv)
    setup_logging(level=logging.WARNING)
    names = [n for n in args.models.split(',') if n] or [n for n in list_models() if n not in SSL_MODELS]
    unknown = [n for n in names if n not in list_models()]
    waveform = [n for n in names if n in SSL_MODELS]
    if waveform:
        print(f'wespk.bin.model_stats: {", ".join(waveform)} take waveforms and a frontend config, not '
              f'{args.feat_dim}-dim fbank; see docs/ssl.md for their sizes', file=sys.stderr)
        return 1
    if unknown:
        print(f'wespk.bin.model_stats: unknown models {unknown}; known: '
              f'{", ".join(list_models())}', file=sys.stderr)
        return 1
    print(model_stats_table(names, args.seconds, args.feat_dim))
    return 0


if __name__ == '__main__':
    sys.exit(main())
