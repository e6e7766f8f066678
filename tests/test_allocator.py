"""``liecheck.keep_freed_memory``: large tensors freed and allocated again reuse the
process's pages (no page fault per walk), where the C library is glibc."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

LOOP = """
import ctypes, importlib.util, resource, sys, torch
spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])  # not the package
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
ok = allocator.keep_freed_memory() if sys.argv[1] == "keep" else None

class MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = torch.empty(16 * 2**20); a.fill_(1.0); b = a * 2; del a, b   # 64 MiB each
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
free_kept = libc.mallinfo2().fordblks      # freed bytes the heap keeps for reuse
print(ok, faults, free_kept)
"""


def _run(mode: str, env=None) -> tuple[str, int, int]:
    import liecheck.allocator

    out = subprocess.run([sys.executable, "-c", LOOP, mode, liecheck.allocator.__file__],
                         capture_output=True, text=True, check=True, env=env).stdout.split()
    return out[0], int(out[1]), int(out[2])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    _, plain, plain_free = _run("plain")
    ok, kept, kept_free = _run("keep")
    assert ok == "True"
    # glibc as it is returns each 64 MiB block to the system (mmap / munmap); kept, the
    # two freed blocks stay in the heap for the next round
    assert plain_free < 2**26 <= 2 * 2**26 <= kept_free, (plain_free, kept_free)
    # so the pages are faulted in once instead of every round (20 rounds x 2 tensors x
    # 16384 pages without; 25x fewer on a quiet machine, >= 4x with parallel tests
    # competing for memory)
    assert plain > 20 * 16384 and kept < plain / 2, (plain, kept)


def test_it_can_be_switched_off():
    ok, _, _ = _run("keep", env={**os.environ, "LIECHECK_ALLOCATOR": "system"})
    assert ok == "False"
