"""CPU forward-pass benchmark of speaker models.

``python -m benchmarks.models [--models ResNet34,ECAPA_TDNN_GLOB_c512]
[--seconds 4] [--batch_sizes 1,16] [--variants eager,jit,bf16] [--threads N]``

For each model, variant and batch size it times the forward pass on random
fbank input (100 frames per second, 80 bins) and prints a markdown table:
seconds per call and per utterance, the real-time factor (compute time /
audio duration), the achieved GFLOP/s (FLOPs from
:func:`wespk.models.flops.count_flops`) and that rate as a fraction of a plain
fp32 2048x2048 matmul timed in turns with the model calls, and the cosine
between the variant's and the eager fp32 embeddings.

Variants:

* ``eager``: the PyTorch module, fp32;
* ``jit``: ``torch.jit.freeze(torch.jit.script(model))`` (``trace`` if the
  model does not script), fp32;
* ``bf16``: eager under ``torch.autocast('cpu', dtype=torch.bfloat16)``;
  fast only on CPUs with native bf16 (AVX512-BF16 / AMX).

Each figure is the median of several timed calls after warm-up calls; the
variants and the matmul of one batch size are timed round-robin so that
load from other processes hits them alike.  The default run takes about a
minute on two idle cores.
"""

import argparse
import logging
import os
import sys
import warnings
from types import MappingProxyType
from typing import Callable, List, Tuple

import torch
import torch.nn.functional as F

from benchmarks.timing import cpu_name, round_robin_seconds
from wespk.models import embedding_from_output, get_speaker_model
from wespk.models.flops import count_flops
from wespk.utils.logs import setup_logging

logger = logging.getLogger('benchmarks.models')

FRAMES_PER_SECOND = 100
FEAT_DIM = 80
VARIANTS = ('eager', 'jit', 'bf16')
# model -> model_args of WeSpeaker's VoxCeleb v2 configs
MODEL_ARGS = MappingProxyType({
    'ResNet34': MappingProxyType({'feat_dim': FEAT_DIM, 'embed_dim': 256}),
    'ECAPA_TDNN_GLOB_c512': MappingProxyType({
        'feat_dim': FEAT_DIM,
        'embed_dim': 192
    }),
})
MATMUL_SIZE = 2048


def matmul_run() -> Callable[[], object]:
    """A plain fp32 MATMUL_SIZE x MATMUL_SIZE matmul (the reference rate)."""
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    b = torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    return lambda: torch.mm(a, b)


def compile_variant(model: torch.nn.Module, variant: str,
                    example: torch.Tensor) -> Tuple[Callable, str]:
    """A callable running ``model`` as ``variant``, and a note on how."""
    if variant == 'eager':
        return model, ''
    if variant == 'bf16':

        def run_bf16(x):
            with torch.autocast('cpu', dtype=torch.bfloat16):
                return model(x)

        return run_bf16, ''
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            return torch.jit.freeze(torch.jit.script(model)), 'script'
        except Exception as error:  # scripting is best effort; trace always works
            logger.warning('torch.jit.script failed (%s); tracing instead',
                           error)
            return torch.jit.freeze(torch.jit.trace(model, example)), 'trace'


def benchmark_model(name: str, variants: List[str], batch_sizes: List[int],
                    seconds: float) -> List[str]:
    """Markdown table rows for one model."""
    torch.manual_seed(0)
    model = get_speaker_model(name)(**MODEL_ARGS[name]).eval()
    num_frames = int(round(seconds * FRAMES_PER_SECOND))
    flops_per_utt = count_flops(model, num_frames, FEAT_DIM)
    matmul_flops = 2 * MATMUL_SIZE**3
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, num_frames, FEAT_DIM)
        runs = {'matmul': matmul_run()}
        notes, cosines = {}, {}
        with torch.no_grad():
            reference = embedding_from_output(model(x))
            for variant in variants:
                try:
                    run, notes[variant] = compile_variant(model, variant, x)
                    embedding = embedding_from_output(run(x)).float()
                except RuntimeError as error:
                    logger.warning('%s %s batch %d failed: %s', name, variant,
                                   batch, error)
                    rows.append(f'| {name} | {variant} | {batch} | failed '
                                '| | | | | | |')
                    continue
                cosines[variant] = F.cosine_similarity(embedding,
                                                       reference,
                                                       dim=1).min().item()
                runs[variant] = lambda run=run: run(x)
            # every variant already ran once (the cosine check); the frozen
            # JIT module optimises itself during its first two calls
            seconds_per_call = round_robin_seconds(
                runs,
                warmup={'matmul': 1, 'jit': 1},
                repeats=5 if batch == 1 else 3)
        matmul_rate = matmul_flops / seconds_per_call['matmul'] / 1e9
        for variant in cosines:
            call = seconds_per_call[variant]
            per_utt = call / batch
            rate = flops_per_utt / per_utt / 1e9
            how = notes[variant]
            label = f'{variant} ({how})' if how else variant
            rows.append(f'| {name} | {label} | {batch} | {call:.3f} | '
                        f'{per_utt:.3f} | {per_utt / seconds:.4f} | '
                        f'{rate:.1f} | {matmul_rate:.1f} | '
                        f'{rate / matmul_rate:.0%} | {cosines[variant]:.5f} |')
            logger.info(rows[-1])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', default=','.join(MODEL_ARGS))
    parser.add_argument('--seconds', type=float, default=4.0,
                        help='audio duration per utterance')
    parser.add_argument('--batch_sizes', default='1,16')
    parser.add_argument('--variants', default=','.join(VARIANTS))
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (default: PyTorch default)')
    args = parser.parse_args(argv)
    setup_logging(level=logging.WARNING)
    models = [m for m in args.models.split(',') if m]
    variants = [v for v in args.variants.split(',') if v]
    bad = ([m for m in models if m not in MODEL_ARGS] +
           [v for v in variants if v not in VARIANTS])
    if bad:
        print(f'benchmarks.models: unknown {bad}; models: '
              f'{", ".join(MODEL_ARGS)}; variants: {", ".join(VARIANTS)}',
              file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(',')]

    load_before = os.getloadavg()[0]
    rows = []
    for name in models:
        rows += benchmark_model(name, variants, batch_sizes, args.seconds)

    print(f'CPU: {cpu_name()}, {os.cpu_count()} cores, '
          f'{torch.get_num_threads()} threads, torch {torch.__version__}, '
          f'capability {torch.backends.cpu.get_cpu_capability()}')
    print(f'1-minute load average: {load_before:.1f} before, '
          f'{os.getloadavg()[0]:.1f} after')
    print(f'input: {args.seconds:g} s of audio per utterance '
          f'({int(round(args.seconds * FRAMES_PER_SECOND))} frames x '
          f'{FEAT_DIM} fbank)')
    print()
    print('| model | variant | batch | s/call | s/utt | RTF | GFLOP/s '
          '| matmul GFLOP/s | vs matmul | cos vs eager |')
    print('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: '
          '| ---: |')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
