"""What the `htar` and `hsi` shims share: HPSS paths mapped under `$HPSS_ROOT`.

The shims stand in for NERSC's HPSS clients in the demo and the tests (the local tape runner puts
this folder first on PATH). HPSS paths map under the directory named by `HPSS_ROOT`: `/a/b` and
`a/b` are both `$HPSS_ROOT/a/b`. A missing `HPSS_ROOT` is HPSS being down (exit 72), never an
empty archive.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOWN = 72


def hpss_root() -> Path:
    root = os.environ.get("HPSS_ROOT")
    if not root or not Path(root).is_dir():
        print(f"*** HPSS unavailable: HPSS_ROOT={root!r} is not a directory", file=sys.stderr)
        sys.exit(DOWN)
    return Path(root)


def mapped(hpss_path: str) -> Path:
    root = hpss_root()
    rel = hpss_path.lstrip("/")
    target = (root / rel) if rel else root
    if ".." in Path(rel).parts:
        print(f"*** refusing a path with '..': {hpss_path}", file=sys.stderr)
        sys.exit(64)
    return target


def index_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".idx")
