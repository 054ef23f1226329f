"""keep_freed_memory: glibc's allocator settings are applied where the C library has mallopt,
and a process that calls it keeps the pages of a freed block for the next one."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from densitylab._runtime import keep_freed_memory

GLIBC = platform.libc_ver()[0] == "glibc"

# Allocates three 4 MiB tensors and frees them, 200 times (a training step's activations), and
# prints the minor page faults it caused.
_CHILD = """
import resource, sys, torch
from densitylab._runtime import keep_freed_memory
if sys.argv[1] == "1":
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    a, b, c = torch.ones(2**20), torch.ones(2**20), torch.ones(2**20)
    del c, b, a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_it_says_whether_it_took_effect():
    assert keep_freed_memory() is GLIBC


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    def faults(keep: bool) -> int:
        out = subprocess.run([sys.executable, "-c", _CHILD, "1" if keep else "0"], check=True,
                             capture_output=True, text=True).stdout
        return int(out.split()[-1])

    # 600 blocks of 1,024 pages: faulted in afresh, 614,400 faults. With glibc's defaults the
    # count depends on what the process freed before (its thresholds move with each free):
    # 13,340 and 406,428 in two runs of this loop. Kept, the pages of the first blocks serve all.
    assert faults(keep=True) < 20 * 1024


# Keeps freed memory, allocates 64 blocks of 4 MiB (served from the heap), frees all but the
# last (which pins the heap's top, so free() alone cannot shrink it), and prints the resident
# memory in MiB before and after release_freed_memory.
_TRIM_CHILD = """
import sys, torch
from densitylab._runtime import keep_freed_memory, release_freed_memory
def resident_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
assert keep_freed_memory()
blocks = [torch.ones(2**20) for _ in range(64)]
last = blocks.pop()
del blocks
before = resident_mib()
assert release_freed_memory()
print(before, resident_mib())
"""


def test_release_says_whether_it_ran():
    from densitylab._runtime import release_freed_memory
    assert release_freed_memory() is GLIBC


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_release_hands_the_kept_blocks_back():
    out = subprocess.run([sys.executable, "-c", _TRIM_CHILD], check=True, capture_output=True,
                         text=True).stdout
    before, after = map(float, out.split()[-2:])
    # 63 freed blocks of 4 MiB were resident; the trim returns (nearly) all of them
    assert before - after > 200
