"""Which device the scoring back end runs on: numpy on the CPU, or torch on a GPU.

The scoring stages import no GPU runtime unless asked: on a machine with no
GPU driver, ``auto`` means the CPU path without asking torch for CUDA (the
AS-norm search product of :mod:`wespk.scoring.cohort_search` uses torch for
its bf16 matrix product when the CPU has native bf16, numpy otherwise).
The results do not depend on the device (see :mod:`wespk.scoring.score_norm`).
"""

import os
import sys
from typing import Optional

#: Files present when a GPU driver (NVIDIA or ROCm) is installed.
_GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


def gpu_available() -> bool:
    """True when torch sees a CUDA (or ROCm) device; torch is imported only if a GPU driver is present."""
    if "torch" not in sys.modules and not any(os.path.exists(path) for path in _GPU_DRIVER_FILES):
        return False
    import torch

    return torch.cuda.is_available()


def resolve_scoring_device(name: Optional[str]):
    """Map ``None | auto | cpu | cuda | cuda:N`` to None (numpy on the CPU) or a ``torch.device``.

    ``auto`` is the GPU when one is present, else numpy; ``cpu`` is torch on
    the CPU (the GPU code path, for testing it without a GPU).
    """
    if name is None or (name == "auto" and not gpu_available()):
        return None
    import torch

    if name == "auto":
        return torch.device("cuda")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA device is available")
    return device
