"""Kill a child `bl931tui` at one step of a tape job, loaded through PYTHONPATH by
`tests/adversary/test_tape_swaps.py`. The process dies with `os._exit(137)`, as under SIGKILL.
Production code is not touched: the hooks wrap the calls the steps are made of.

`BL931_CRASH_AT_TAPE`:
- `restore_ran`: a restore job ran to completion (its members extracted into the target's staging
  folder, its job record `COMPLETED`), then death before the job was judged (nothing placed);
- `archive_ran`: a bundle job ran to completion (the bundle is on the HPSS folder, its job record
  `COMPLETED`), then death before the job was judged (nothing recorded verified).
"""

from __future__ import annotations

import os
from typing import Any

STEP = os.environ.get("BL931_CRASH_AT_TAPE", "")

if STEP:
    if STEP not in ("restore_ran", "archive_ran"):
        raise SystemExit(f"BL931_CRASH_AT_TAPE={STEP!r}: unknown step")
    from engine.storage import tape_judge, tape_restore

    def _die(*args: Any, **kwargs: Any) -> Any:
        os._exit(137)

    if STEP == "restore_ran":
        tape_restore.judge_restore = _die
    else:
        tape_judge.judge_archive = _die
