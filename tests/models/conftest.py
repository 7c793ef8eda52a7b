"""Model tests run PyTorch single-threaded: on a shared 2-core machine the
many small convolutions here are several times faster without OpenMP
threads waiting on each other, and the golden tolerances cover the 1- vs
2-thread difference (README: at most 3e-5)."""

import pytest
import torch


@pytest.fixture(scope='module', autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
