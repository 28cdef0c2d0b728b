"""Kill a child `bl931tui` right after one persisted step of its first delete task.

Imported by `sitecustomize.py` (here and in `chaos_inject/`) when `BL931_CRASH_AT_DELETE` names a
step. The process dies with `os._exit(137)`, as under SIGKILL: no handler, no cleanup. Production
code is not touched; the hooks wrap the calls the steps are made of.

- `prepared`: the task row is `preparing` (submission id persisted), the mover never ran;
- `some_unlinked`: the mover's worker removed one file, then death (still `preparing`);
- `all_unlinked`: the worker removed every file of the task, then death (still `preparing`);
- `submitted`: the mover ran the task to the end and the executor recorded it `active` with its
  task id, then death (a new process polls an id nobody knows: `lost`);
- `before_receipt`: the task finished and was polled; death as its receipt is written.

Only the first delete task of the process is interrupted; copies are never touched.
"""

from __future__ import annotations

import os
from typing import Any

from engine import delete_records as _delete_records
from engine import submission as _submission
from engine.storage import local_mover

STEPS = ("prepared", "some_unlinked", "all_unlinked", "submitted", "before_receipt")
STEP = os.environ.get("BL931_CRASH_AT_DELETE", "")
if STEP not in STEPS:
    raise SystemExit(f"BL931_CRASH_AT_DELETE={STEP!r}: not one of {', '.join(STEPS)}")


def _die() -> None:
    os._exit(137)


_submit = local_mover.LocalMover.submit
_send = _submission.Submission.send
_record_deletion = _delete_records.DeleteRecords.record


def _submit_then_die(self: Any, request: Any) -> str:
    if request.kind != "delete" or STEP in ("submitted", "before_receipt"):
        return str(_submit(self, request))
    if STEP == "prepared":
        _die()
    limit = 1 if STEP == "some_unlinked" else None
    inner_unlink, done = os.unlink, [0]

    def counting_unlink(path: Any, *args: Any, **kw: Any) -> None:
        inner_unlink(path, *args, **kw)
        done[0] += 1
        if limit is not None and done[0] >= limit:
            _die()

    os.unlink = counting_unlink
    task_id = _submit(self, request)
    self.wait(task_id)  # every file of the task is gone (unless the first unlink killed us)
    _die()
    raise AssertionError("unreachable")


def _send_then_die(self: Any, mover: Any, task: Any, request: Any, now: Any) -> bool:
    sent = bool(_send(self, mover, task, request, now))
    if request.kind == "delete" and STEP == "submitted" and sent:
        row = next(t for t in self.store.tasks(["active"]) if t.submission_id == task.submission_id)
        mover.wait(row.task_id)  # the worker finished; only its outcome is never recorded
        _die()
    return sent


def _record_then_die(self: Any, *args: Any, **kwargs: Any) -> None:
    _die()


local_mover.LocalMover.submit = _submit_then_die  # type: ignore[method-assign]
_submission.Submission.send = _send_then_die  # type: ignore[method-assign]
if STEP == "before_receipt":
    _delete_records.DeleteRecords.record = _record_then_die  # type: ignore[method-assign]
