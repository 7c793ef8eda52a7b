"""Model tests run PyTorch single-threaded: on a shared 2-core machine the
many small convolutions here are several times faster without OpenMP
threads waiting on each other, and the golden tolerances cover the 1- vs
2-thread difference (README: at most 3e-5).

The golden checks run on two sets of WeSpeaker references: the small
models committed in ``tests/golden/models`` (always) and the full-size ones
of the shared golden folder (when it is present; under ``CI=true`` its
absence is a failure). :class:`CommittedGolden` and :class:`FullGolden`
give both the same interface.
"""

import json
import math
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Tuple

import pytest
import torch

from tests.conftest import COMMITTED_GOLDEN, full_golden_or_skip
from wespk.io.checkpoint import load_model_weights, save_checkpoint
from wespk.models import get_speaker_model
from wespk.models.ecapa_tdnn import ECAPA_TDNN
from wespk.models.repvgg import RepVGG

#: model family -> fp32 max-abs tolerance (golden README section 1)
TOLERANCE = {
    'ResNet34': 1e-4,
    'ECAPA_TDNN_GLOB_c512': 1e-4,
    'XVEC': 1e-4,
    'CAMPPlus': 5e-4,
    'REPVGG_TINY_A0': 1e-4,
}


@pytest.fixture(scope='module', autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid_weight(key: str, shape) -> torch.Tensor:
    """A committed model's weight of >= 2 dims, regenerated (tests/golden/README.md, "weights").

    Integers uniform in [-1024, 1024] from a generator seeded with the key's
    CRC-32, times a power of two near sqrt(3 / fan_in) / 1024: exact in
    float16, and the same on every CPU (integer sampling only).
    """
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    fan_in = max(1, math.prod(shape) // shape[0])
    exponent = round(math.log2(math.sqrt(3.0 / fan_in))) - 10
    return torch.randint(-1024, 1025, tuple(shape), generator=generator).float() * 2.0 ** exponent


def read(path: Path):
    return torch.load(path, map_location='cpu', weights_only=True)


class CommittedGolden:
    """Small WeSpeaker models (fewer channels) in tests/golden/models; see its README."""

    label = 'committed'
    builders = {
        'ResNet34': get_speaker_model('ResNet34'),
        'ECAPA_TDNN_GLOB_c512': ECAPA_TDNN,
        'XVEC': get_speaker_model('XVEC'),
        'CAMPPlus': get_speaker_model('CAMPPlus'),
        'REPVGG_TINY_A0': RepVGG,
    }

    def __init__(self, root: Path, work_dir: Path):
        self.root = root
        self.work_dir = work_dir

    def meta(self, name: str) -> Dict:
        return json.loads((self.root / f'{name}.json').read_text())

    def state_dict(self, name: str) -> 'OrderedDict[str, torch.Tensor]':
        """The WeSpeaker state_dict: stored vectors, regenerated weights, zero BN counters."""
        values = read(self.root / f'{name}.pt')['values'].float()
        state, offset = OrderedDict(), 0
        for key, shape, source in self.meta(name)['state_dict']:
            if source == 'grid':
                state[key] = grid_weight(key, shape)
            elif source == 'zero':
                state[key] = torch.zeros(shape, dtype=torch.long)
            else:
                count = math.prod(shape)
                state[key] = values[offset:offset + count].reshape(shape)
                offset += count
        assert offset == values.numel()
        return state

    def build(self, name: str) -> Tuple[torch.nn.Module, Dict]:
        """The wespk model with the golden kwargs, loaded from a bare state_dict file as WeSpeaker saves one."""
        meta = self.meta(name)
        model = self.builders[name](**meta['constructor_kwargs'])
        path = self.work_dir / f'{name}.avg_model.pt'
        save_checkpoint(str(path), self.state_dict(name))
        assert load_model_weights(model, str(path)) == ([], [])
        return model.eval(), meta

    def reference_keys(self, name: str):
        return [(key, shape) for key, shape, _ in self.meta(name)['state_dict']]

    def input(self, name: str, suffix: str) -> torch.Tensor:
        return read(self.root / ('input.pt' if suffix == 'output' else 'input_T237.pt')).float()

    def output(self, name: str, suffix: str) -> torch.Tensor:
        return read(self.root / f'{name}.{suffix}.pt')

    def file(self, name: str) -> Path:
        return self.root / name


class FullGolden:
    """The full-size references of the shared golden folder (its README)."""

    label = 'full'

    def __init__(self, root: Path):
        self.root = root

    def meta(self, name: str) -> Dict:
        return json.loads((self.root / f'{name}.json').read_text())

    def build(self, name: str) -> Tuple[torch.nn.Module, Dict]:
        meta = self.meta(name)
        model = get_speaker_model(name)(**meta['constructor_kwargs'])
        assert load_model_weights(model, str(self.root / f'{name}.pt')) == ([], [])
        return model.eval(), meta

    def reference_keys(self, name: str):
        return [(key, shape) for key, shape, _ in self.meta(name)['state_dict']]

    def input(self, name: str, suffix: str) -> torch.Tensor:
        return read(self.root / (f'{name}.input.pt' if suffix == 'output' else 'extra_input_T237.pt'))

    def output(self, name: str, suffix: str) -> torch.Tensor:
        return read(self.root / f'{name}.{suffix}.pt')

    def file(self, name: str) -> Path:
        return self.root / name


@pytest.fixture(scope='module', params=['committed', 'full'])
def golden(request, tmp_path_factory):
    """Each golden set in turn: the committed subset, then the full one (skipped, or failed in CI, if absent)."""
    if request.param == 'committed':
        return CommittedGolden(COMMITTED_GOLDEN / 'models', tmp_path_factory.mktemp('golden'))
    return FullGolden(full_golden_or_skip())
