"""Cancelling a tape task: bl931 gave up on it (a stall, `engine/task_watch.py`).

Every bundle or recall job of the task that was submitted and has not been judged is asked to
end (`TapeRunner.cancel`; the `sfapi` runner's scancel). Nothing is marked here: the jobs end
CANCELLED, the next poll judges them like any failed job, so no bundle of theirs counts, and
the task's scans end as needing attention with the reason the cancel was made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.store import tape as tape_store

if TYPE_CHECKING:
    from engine.storage.tape import TapeEndpoint


def cancel_jobs(endpoint: TapeEndpoint, task_id: str) -> list[str]:
    """Ask every submitted, unjudged job of task `task_id` to end; return their ids."""
    submission = task_id.removeprefix("tape:")
    rows = tape_store.bundles(endpoint.need_store(), endpoint.name, submission_id=submission)
    asked = [r.job_id for r in rows if r.job_id is not None and r.state == "submitted"]
    for job_id in asked:
        endpoint.runner.cancel(job_id)
    return asked
