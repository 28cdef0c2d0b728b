"""What ships inside the package: the example config, the systemd unit and the docs.

They live at the top of the source tree (`config.example.toml`, `deploy/`, `docs/`); the
`shipped/` folder of this package links to them, so an installed bl931 carries the same files.
`bl931tui --example-config` prints the example; `bl931tui --systemd-unit` prints the unit with
the paths of *this* installation filled in (the program, and the installed docs for
`Documentation=`), ready to be reviewed and copied to /etc/systemd/system.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

SHIPPED = Path(__file__).resolve().parent / "shipped"

# The placeholders the unit file is written with (see deploy/bl931.service).
_PROGRAM = "/opt/bl931/venv/bin/bl931tui"
_DOCS = "file:///opt/bl931/docs/operations.md"


def example_config() -> str:
    return (SHIPPED / "config.example.toml").read_text(encoding="utf-8")


def _program() -> str:
    beside = Path(sys.executable).parent / "bl931tui"
    if beside.is_file():
        return str(beside)
    return shutil.which("bl931tui") or _PROGRAM


def systemd_unit() -> str:
    """The unit with this installation's program and docs paths."""
    text = (SHIPPED / "bl931.service").read_text(encoding="utf-8")
    docs = (SHIPPED / "docs" / "operations.md").resolve()
    text = text.replace(_PROGRAM, _program())
    return text.replace(_DOCS, docs.as_uri())
