"""Keep freed memory in the process instead of returning it to the system.

A walk allocates and frees relevance tensors of up to hundreds of MiB per layer (CSC on
VGG-16 at 224 px: ten maps of 64 x 224 x 224 at the first convs). glibc's malloc serves
blocks that large with ``mmap`` and returns them with ``munmap``, so every layer of every
walk faults fresh pages in: a fifth to a third of the battery's CPU time went to the
kernel (benchmarks/RESULTS.md, "The faithfulness battery's CPU floor").

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve large blocks from its heap and
to keep what is freed, so the next walk reuses the same pages. The cost: the process keeps
its peak memory until it exits. ``liecheck``'s command line calls it at start; call it
yourself in a script or notebook that runs the battery (or set the environment variables
it names before Python starts). Elsewhere than glibc (macOS, musl, jemalloc or tcmalloc
preloaded) it does nothing and says so by returning ``False``.
"""

from __future__ import annotations

import ctypes
import os
import platform

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 1 << 30      # blocks below 1 GiB come from the heap
TRIM_THRESHOLD = 2**31 - 1    # keep up to 2 GiB of freed heap (mallopt takes an int)
TOP_PAD = 1 << 28             # grow the heap 256 MiB at a time
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
               "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
               "MALLOC_TOP_PAD_": str(TOP_PAD)}

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Configure glibc's malloc to keep freed memory (see the module docstring); ``True``
    when it took effect, ``False`` where the C library is not glibc, another allocator
    is preloaded, or ``LIECHECK_ALLOCATOR=system`` asks to leave it alone. Idempotent."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("LIECHECK_ALLOCATOR", "").lower() == "system":
        return False
    if platform.system() != "Linux" or "LD_PRELOAD" in os.environ:
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")         # glibc's soname (checked above)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = [mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD),
          mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD),
          mallopt(M_TOP_PAD, TOP_PAD)]
    _done = all(v == 1 for v in ok)
    return _done
