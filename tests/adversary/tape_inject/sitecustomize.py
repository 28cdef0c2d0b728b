"""Kill a child `bl931tui` at one step of a tape job, loaded through PYTHONPATH by
`tests/adversary/test_tape_swaps.py`. The process dies with `os._exit(137)`, as under SIGKILL.
Production code is not touched: the hooks wrap the calls the steps are made of.

`BL931_CRASH_AT_TAPE`:
- `restore_ran`: a restore job ran to completion (its members extracted into the target's staging
  folder, its job record `COMPLETED`), then death before the job was judged (nothing placed);
- `archive_ran`: a bundle job ran to completion (the bundle is on the HPSS folder, its job record
  `COMPLETED`), then death before the job was judged (nothing recorded verified);
- `archive_running`: a bundle job's bash ended (the bundle is on the HPSS folder) but death came
  before its record was completed (still `RUNNING`, under a pid that is gone: read as FAILED).
"""

from __future__ import annotations

import os
from typing import Any

STEP = os.environ.get("BL931_CRASH_AT_TAPE", "")

if STEP:
    if STEP not in ("restore_ran", "archive_ran", "archive_running"):
        raise SystemExit(f"BL931_CRASH_AT_TAPE={STEP!r}: unknown step")
    from engine.storage import tape_judge, tape_restore

    def _die(*args: Any, **kwargs: Any) -> Any:
        os._exit(137)

    if STEP == "restore_ran":
        tape_restore.judge_restore = _die
    elif STEP == "archive_ran":
        tape_judge.judge_archive = _die
    else:
        from engine.storage import tape_local

        _write = tape_local.LocalTapeRunner._write

        def _die_before_the_record(self: Any, job_id: str, record: dict[str, Any]) -> None:
            if record.get("state") != "RUNNING" and "-archive-" in str(record.get("name")):
                os._exit(137)
            _write(self, job_id, record)

        tape_local.LocalTapeRunner._write = _die_before_the_record  # type: ignore[method-assign]
