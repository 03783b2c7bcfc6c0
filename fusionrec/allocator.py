"""Keep freed memory in the process instead of handing it back to the kernel (glibc only).

PyTorch's CPU allocator has no cache: every activation tensor is ``malloc``'d and
``free``'d per call. With glibc's defaults a freed block larger than the dynamic mmap
threshold, or a freed top of the heap larger than the trim threshold, goes back to the
kernel, and the next batch faults the same amount in again, page by page, each page
zeroed by the kernel. For image encoders that cost more than the convolutions
themselves: EfficientNet-Lite0 on 64-image batches spent 2 s in the kernel per 1 s of
user time (``perf``: ``clear_page_erms``, ``exc_page_fault``). Raising the trim
threshold and fixing the mmap threshold at its maximum (32 MiB) keeps those blocks in
the heap, so a batch reuses the pages of the last one.

The cost: memory freed by a step stays with the process (it is reused by the next
step, not returned), so the resident size reflects the largest step rather than the
current one. ``FUSIONREC_KEEP_FREED_MEMORY=0`` turns it off, and glibc's own settings win:
when ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or a
``glibc.malloc`` entry of ``GLIBC_TUNABLES`` is set (for example the fixed small mmap threshold
of the million-item training runs, docs/benchmarks/scaling.md), nothing is changed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# glibc rejects an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit), so larger
# blocks are always mmap'd; these values keep everything below that in the heap.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024

_GLIBC_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")

_applied: bool | None = None


def _glibc_configured_by_user() -> bool:
    return any(k in os.environ for k in _GLIBC_MALLOC_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds once per process; True when they are in effect.

    A no-op (False) off Linux/glibc, when ``FUSIONREC_KEEP_FREED_MEMORY=0``, when the
    environment already configures glibc's malloc, or when ``mallopt`` refuses a value.
    Forked workers (DataLoader) inherit the setting.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("FUSIONREC_KEEP_FREED_MEMORY", "1").strip() in ("0", "false", "no", "off"):
        return False
    if _glibc_configured_by_user() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl and other C libraries have no mallopt: nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    _applied = ok
    return ok
