"""Kill a child `bl931tui` right after one persisted step of its first *replace* (a copy whose
item may overwrite: `TransferItem.overwrite`), loaded through PYTHONPATH by
`tests/adversary/test_versions_crash.py`. The process dies with `os._exit(137)`, as under
SIGKILL. Production code is not touched; the hooks wrap the calls the steps are made of.

`BL931_CRASH_AT_REPLACE`:
- `prepared`: the task row is `preparing` (submission id persisted), the mover never ran;
- `copied`: the mover's worker wrote the new version over the target, then death before the
  executor learnt the task id (still `preparing`);
- `submitted`: the mover finished and the executor recorded the task `active`, then death (a
  new process polls an id nobody knows: `lost`).
"""

from __future__ import annotations

import os
from typing import Any

STEP = os.environ.get("BL931_CRASH_AT_REPLACE", "")

if STEP:
    if STEP not in ("prepared", "copied", "submitted"):
        raise SystemExit(f"BL931_CRASH_AT_REPLACE={STEP!r}: unknown step")
    from engine import submission as _submission
    from engine.storage import local_mover

    _submit = local_mover.LocalMover.submit
    _send = _submission.Submission.send

    def _is_replace(request: Any) -> bool:
        return request.kind == "copy" and any(i.overwrite for i in request.items)

    def _submit_then_die(self: Any, request: Any) -> str:
        if not _is_replace(request) or STEP == "submitted":
            return str(_submit(self, request))
        if STEP == "prepared":
            os._exit(137)
        task_id = _submit(self, request)
        self.wait(task_id)
        os._exit(137)

    def _send_then_die(self: Any, mover: Any, task: Any, request: Any, now: Any) -> bool:
        sent = bool(_send(self, mover, task, request, now))
        if STEP == "submitted" and sent and _is_replace(request):
            row = next(
                t for t in self.store.tasks(["active"]) if t.submission_id == task.submission_id
            )
            mover.wait(row.task_id)
            os._exit(137)
        return sent

    local_mover.LocalMover.submit = _submit_then_die  # type: ignore[method-assign]
    _submission.Submission.send = _send_then_die  # type: ignore[method-assign]

# `BL931_REWRITE_DURING_REPLACE=PATH`: right as the first replace is handed to the local mover
# (after its last look), a user rewrites PATH (the DTN source) with other bytes: a rewrite while
# the replace is in flight.
_REWRITE = os.environ.get("BL931_REWRITE_DURING_REPLACE")
if _REWRITE:
    from engine.storage import local_mover as _lm

    _plain_submit = _lm.LocalMover.submit
    _rewritten = [False]

    def _submit_after_rewrite(self: Any, request: Any) -> str:
        if not _rewritten[0] and request.kind == "copy" and any(i.overwrite for i in request.items):
            _rewritten[0] = True
            with open(_REWRITE, "wb") as out:
                out.write(b"rewritten while the replace was in flight " * 20)
        return str(_plain_submit(self, request))

    _lm.LocalMover.submit = _submit_after_rewrite  # type: ignore[method-assign]
