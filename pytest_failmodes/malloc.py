"""Large blocks straight back to the system: a steady peak for long runs (glibc only).

glibc serves a block of 128 KiB or more with its own ``mmap`` and returns it to
the system when it is freed, but each time such a block is freed it raises that
threshold to the block's size (up to 32 MiB). After that, blocks below the new
threshold come from the heap, and the buffers a long run grows and copies (ids,
status codes, cohort members, parsed rows) leave holes there that stay in the
process's resident memory. At a million traces (``bench/memory.py`` (b)) the
peak RSS of one and the same run moved between 182 and 210 MB with nothing but
the name of its directory changed; with the threshold held at glibc's default
it is 166 MB, for no CPU time we could measure.
"""

from __future__ import annotations

import os

__all__ = ["hold_mmap_threshold"]

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3
#: glibc's default threshold; setting it explicitly also stops glibc from raising it
DEFAULT_THRESHOLD = 128 * 1024
_held = False
#: glibc's environment variables that set the threshold or what it decides
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def hold_mmap_threshold(size: int = DEFAULT_THRESHOLD) -> bool:
    """Hold glibc's mmap threshold at ``size`` for this process; whether it is held.

    A no-op (False) off glibc, and where the user tuned malloc through glibc's own
    environment variables, which take precedence."""
    global _held
    if _held:
        return True
    try:
        libc_version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a glibc system (macOS, Windows, musl)
        return False
    if not libc_version or not libc_version.startswith("glibc"):
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False  # the user's choice
    import ctypes

    try:
        _held = ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, size) == 1
    except (OSError, AttributeError):
        return False
    return _held
