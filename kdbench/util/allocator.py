"""glibc's allocator tuned for tensor work on the CPU.

By default glibc serves blocks over a few MB with mmap and hands freed memory at the heap's top
back to the kernel, so each training step maps, faults in and unmaps its activations again: on a
2-core CPU a small CNN's step then spends a fifth of its time in the kernel. Larger thresholds keep
that memory in the process. Allocation only: no number changes. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_ABOVE = 256 * 2**20  # blocks this large (a whole evaluation set as floats) are still mapped
TRIM_ABOVE = 512 * 2**20  # free memory at the heap's top kept before any goes back

_done = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process, once; False where there is no glibc."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)) & bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
    return _done
