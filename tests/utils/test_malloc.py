"""Large buffers stay in the heap once wespk tunes the allocator: re-allocating them costs no page faults."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

# A forward pass in miniature: buffers of a few to tens of megabytes, allocated, used and freed, repeatedly.
SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    if sys.argv[1] == "tuned":
        from wespk.utils.malloc import keep_large_allocations_in_heap
        assert keep_large_allocations_in_heap()
        assert keep_large_allocations_in_heap()  # idempotent
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    def layer():
        a = np.ones(3 << 20, dtype=np.float32)
        b = np.ones(5 << 20, dtype=np.float32)
        c = a[: 1 << 20] + 1
        del a, b, c
    layer()
    before = faults()
    for _ in range(5):
        layer()
    print(faults() - before)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator tuning")
def test_large_buffers_are_reused_after_tuning():
    def page_faults(mode):
        out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])
    tuned, default = page_faults("tuned"), page_faults("default")
    assert tuned <= 50                       # the freed buffers are reused
    assert default >= 10 * max(tuned, 10)    # by default they are unmapped and faulted in again
