"""Which installed versions differ from the lock (make test-latest).

Reads ``uv pip freeze`` output on stdin; prints one line per package whose
version differs from the one requirements.lock pins for this interpreter, and
the packages the lock does not have. Always exits 0: it informs, the test
suite that follows decides.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked(path: Path) -> dict[str, str]:
    """name -> version the lock pins for this interpreter and platform."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if not match:
            continue
        name, version, marker = match.groups()
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = version
    return pins


def main() -> int:
    pins = locked(Path(sys.argv[1]))
    installed = {}
    for line in sys.stdin:
        name, sep, version = line.strip().partition("==")
        if sep:
            installed[canonicalize_name(name)] = version
    changed = [
        f"  {name}: {pins[name]} (lock) -> {version}"
        for name, version in sorted(installed.items())
        if name in pins and pins[name] != version
    ]
    added = [f"  {name}: {version} (not in the lock)" for name, version in sorted(installed.items()) if name not in pins]
    if not changed and not added:
        print(f"test-latest: the newest versions the ranges allow are the locked ones ({len(pins)} packages)")
        return 0
    print(f"test-latest: versions that differ from {sys.argv[1]}: {len(changed)}; packages not in it: {len(added)}")
    print("\n".join(changed + added))
    return 0


if __name__ == "__main__":
    sys.exit(main())
