"""Faults for a child `bl931tui --flight-check`, loaded through PYTHONPATH by
tests/adversary/test_ops_flight.py. Production code is not touched; the hooks wrap
`engine.flight_check._verify`, which runs right after a copy leg's transfer finished.

`BL931_FC_FAULT`:
- `corrupt`: flip one byte of the canary copy on the target before it is verified (silent
  corruption on the target storage after the transfer);
- `crash`: die (`os._exit(137)`, as under SIGKILL) once the first copy landed on its target,
  before verification and before any cleanup: canaries stay on the source and the target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FAULT = os.environ.get("BL931_FC_FAULT", "")

if FAULT:
    if FAULT not in ("corrupt", "crash"):
        raise SystemExit(f"BL931_FC_FAULT={FAULT!r}: unknown fault")
    from engine import flight_check as _fc

    _verify = _fc._verify

    def _faulty_verify(run: Any, target: str, evidence: Any) -> Any:
        if FAULT == "crash":
            os._exit(137)
        root = run.backends.local_roots.get(target)
        copy = Path(root) / run.canary.path
        data = bytearray(copy.read_bytes())
        data[len(data) // 2] ^= 0x01
        copy.write_bytes(bytes(data))
        return _verify(run, target, evidence)

    _fc._verify = _faulty_verify
