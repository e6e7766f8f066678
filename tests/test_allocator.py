"""``liecheck.keep_freed_memory``: large tensors freed and allocated again reuse the
process's pages (no page fault per walk), where the C library is glibc."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

LOOP = """
import importlib.util, resource, sys, torch
spec = importlib.util.spec_from_file_location("allocator", sys.argv[2])  # not the package
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
ok = allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = torch.empty(16 * 2**20); a.fill_(1.0); b = a * 2; del a, b   # 64 MiB each
print(ok, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode: str, env=None) -> tuple[str, int]:
    import liecheck.allocator

    out = subprocess.run([sys.executable, "-c", LOOP, mode, liecheck.allocator.__file__],
                         capture_output=True, text=True, check=True, env=env).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    _, plain = _faults("plain")
    ok, kept = _faults("keep")
    assert ok == "True"
    # 20 rounds x 2 tensors x 16384 pages each without it; the pages of the first round
    # only (reused after) with it
    assert plain > 20 * 16384 and kept < plain / 5, (plain, kept)


def test_it_can_be_switched_off():
    import os

    ok, _ = _faults("keep", env={**os.environ, "LIECHECK_ALLOCATOR": "system"})
    assert ok == "False"
