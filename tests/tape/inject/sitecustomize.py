"""Crash hook for one child `bl931tui` (loaded through PYTHONPATH): with
`BL931_CRASH_AFTER_TAPE_SUBMIT=1` the process dies (`os._exit(137)`, like SIGKILL) right after
the local tape runner accepted a job, before the job id reaches the state store."""

from __future__ import annotations

import os

if os.environ.get("BL931_CRASH_AFTER_TAPE_SUBMIT"):
    from engine.storage.tape_local import LocalTapeRunner

    _submit = LocalTapeRunner.submit

    def _dying_submit(self, name, script):  # type: ignore[no-untyped-def]
        _submit(self, name, script)
        os._exit(137)

    LocalTapeRunner.submit = _dying_submit  # type: ignore[method-assign]
