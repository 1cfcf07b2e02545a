"""glibc's allocator tuned for tensor work on the CPU.

By default glibc serves blocks over a few MB with mmap and hands freed memory at the heap's top
back to the kernel, so each training step maps, faults in and unmaps its activations again: on a
2-core CPU a small CNN's step then spends a tenth of its time in the kernel. Fixed thresholds keep
that memory in the process. Blocks over 32 MB (glibc's own ceiling for its moving threshold) are
still mapped and unmapped: kept in the heap, a ResNet-18's 131 MB activations fragmented it to
16 GB in an evaluation. Allocation only: no number changes. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_ABOVE = 32 * 2**20  # blocks this large are mapped, and unmapped when freed
TRIM_ABOVE = 256 * 2**20  # free memory at the heap's top kept before any goes back

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
