"""Host memory: keep freed buffers in the process so XLA's CPU steps stop page-faulting.

XLA's CPU runtime allocates each call's temporary buffers (tens of MiB for a train step)
with malloc and frees them when the call returns. glibc serves requests that large with a
fresh `mmap` from XLA's worker threads and unmaps them on free (strace of a test function
with 122 MiB of temporaries: a new 128 MB mmap on every call), so every call touches brand-new pages: one minor
page fault and a kernel page-zeroing per 4 KiB. Measured on the 2-core CPU (2026-11-29):
the Caser step on Games (65 MiB of temporaries) took 16,650 page faults and 33 ms per
call; with the settings below, 0 faults and 17.5 ms; NextItNet 18,879 faults, 61 → 45 ms.

`keep_freed_memory` (config `train.host_malloc: keep-freed`) sets glibc's malloc (via
`mallopt`) to serve every thread from the main heap (`M_ARENA_MAX` 1; without it the
faults stayed), never to `mmap` (`M_MMAP_MAX` 0) and to return freed memory to the OS
only above 2 GiB free at the heap top (`M_TRIM_THRESHOLD`), so a step's freed
temporaries are reused by the next one. The costs: the process's resident memory stays near
its peak, and every thread shares one malloc lock. It is not a default because it does not
help every step: GRU4Rec's epoch time did not change, and CDAE ran at 8–9k users/s in 3 of
8 bench runs with it (16–21k in the others; 19–23k in 5 runs without), so only the configs
where it was measured to help turn it on (`caser_games`, `nextitnet_games`).

It only works if it runs before XLA starts its thread pools (the first computation):
`jaxrec train` and the benchmark cases apply the config's setting right after reading the
config, and `trainer.prepare` does too, which is enough for a script that builds its run
before computing anything. The environment variable `JAXREC_HOST_MALLOC=default` overrides
the config. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

from jaxrec.errors import ConfigError

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


SETTINGS = ("default", "keep-freed")


def apply_setting(value: str) -> bool:
    """Apply config `train.host_malloc` (default | keep-freed); True if keep-freed is in effect."""
    if value not in SETTINGS:
        raise ConfigError(f"train.host_malloc={value!r}: use one of {', '.join(SETTINGS)}")
    return keep_freed_memory() if value == "keep-freed" else bool(_applied)


def state() -> str:
    """What this process runs with: 'keep-freed' or 'default' (for benchmark records)."""
    return "keep-freed" if _applied else "default"
