"""Device and process-group helpers.

The only place where backend literals (``cuda``, ``nccl``, ``gloo``) appear.
Works unchanged for one process, torchrun on one machine and torchrun over
several nodes (rendezvous c10d): everything is read from the environment
torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` ...).
"""

import contextlib
import dataclasses
import datetime
import logging
import os
from typing import Optional

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: Optional[str]

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N|mps`` to a device; ``auto`` prefers CUDA."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda requested but CUDA is not available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


def backend_for(device: torch.device) -> str:
    """nccl for CUDA devices, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device_name: str = "auto", timeout_minutes: int = 30) -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE set).

    A plain ``python -m`` run (no WORLD_SIZE) is a single process without a
    process group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    backend = None
    if world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
        backend = backend_for(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend,
                                    timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank,
                    device=device, backend=backend)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (in place); a no-op for one process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from ``src`` to every process."""
    if not is_distributed():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def autocast_context(device: torch.device, precision: str):
    """``torch.autocast`` for ``bf16``/``fp16``; a null context for ``fp32``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=dtype)
