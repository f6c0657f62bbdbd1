"""Host memory: keep freed buffers in the process so XLA's CPU steps stop page-faulting.

XLA's CPU runtime allocates each call's temporary buffers (tens of MiB for a train step)
with malloc and frees them when the call returns. glibc serves requests that large with a
fresh `mmap` (or from a worker thread's arena, which cannot grow past 64 MiB, so also
`mmap`) and unmaps them on free, so every call touches brand-new pages: one minor page
fault and a kernel page-zeroing per 4 KiB. Measured on the 2-core CPU (2026-11-29): the
Caser step on Games (65 MiB of temporaries) took 16,650 page faults and 33 ms per call;
with the settings below, 0 faults and 17.5 ms; NextItNet 18,879 faults, 61 → 45 ms.

`keep_freed_memory` sets glibc's malloc (via `mallopt`) to serve every thread from the main
heap (`M_ARENA_MAX` 1), never to `mmap` (`M_MMAP_MAX` 0) and to return freed memory to the
OS only above 2 GiB free at the heap top (`M_TRIM_THRESHOLD`), so a step's freed
temporaries are reused by the next one. The cost: the process's resident memory stays near
its peak. It only helps if it runs before XLA starts its thread pools (the first
computation): the CLI calls it first thing; `trainer.prepare` calls it too, which is enough
for a script that builds its run before computing anything. `JAXREC_HOST_MALLOC=default`
turns it off. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc <malloc.h>
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the malloc settings once per process; True if they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if sys.platform != "linux" or os.environ.get("JAXREC_HOST_MALLOC") == "default":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
    _applied = all(mallopt(option, value) == 1 for option, value in settings)
    return _applied
