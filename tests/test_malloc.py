"""glibc's mmap threshold held for long runs (pytest_failmodes.malloc), in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pytest_failmodes import malloc

GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc") if hasattr(os, "confstr") else False

# Frees a 16 MiB block (glibc then serves blocks under 16 MiB from its heap), fills 64 blocks
# of 1 MiB, frees all but the last, and prints how much resident memory that left behind.
SCENARIO = r"""
import os, sys
from pytest_failmodes.malloc import hold_mmap_threshold
held = hold_mmap_threshold() if sys.argv[1] == "hold" else False
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
big = b"\x01" * (16 << 20)
del big
before = rss()
blocks = [b"\x01" * (1 << 20) for _ in range(64)]
last = blocks[-1]
del blocks
print(held, (rss() - before) >> 20)
"""


def scenario(arg: str, **env: str) -> tuple[bool, int]:
    clean = {k: v for k, v in os.environ.items() if k not in malloc._USER_SETTINGS and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", SCENARIO, arg], capture_output=True, text=True, check=True, env={**clean, **env})
    held, mib = out.stdout.split()
    return held == "True", int(mib)


@pytest.mark.skipif(not GLIBC or not os.path.exists("/proc/self/statm"), reason="glibc's malloc on Linux only")
def test_freed_large_blocks_leave_the_process_when_the_threshold_is_held() -> None:
    held, kept = scenario("hold")
    assert held and kept <= 8
    # the premise: without it, glibc keeps them (the heap cannot shrink under the last block)
    held, kept = scenario("leave")
    assert not held and kept >= 32


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_the_users_own_malloc_settings_win() -> None:
    # a threshold of 32 MiB set by the user stays: the 1 MiB blocks come from the heap, and stay
    held, kept = scenario("hold", MALLOC_MMAP_THRESHOLD_=str(32 << 20))
    assert not held and kept >= 32
    held, _ = scenario("hold", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4194304")
    assert not held


def test_off_glibc_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_confstr(name: str) -> str:
        raise ValueError(f"unrecognized configuration name {name!r}")

    monkeypatch.setattr(malloc, "_held", False)
    monkeypatch.setattr(os, "confstr", no_confstr)
    assert malloc.hold_mmap_threshold() is False
    monkeypatch.setattr(os, "confstr", lambda name: "musl 1.2")
    assert malloc.hold_mmap_threshold() is False
