"""Kill a child `bl931tui` right after it persisted the submission of its first copy to the
endpoint named by `BL931_CRASH_AT_COPY_TO` (the task row is `preparing`, the mover never ran),
loaded through PYTHONPATH by `tests/adversary/test_unmounted_resend.py`. The process dies with
`os._exit(137)`, as under SIGKILL. Production code is not touched: the hook wraps the local
mover's `submit`, which the executor calls only after the row is committed.
"""

from __future__ import annotations

import os
from typing import Any

TARGET = os.environ.get("BL931_CRASH_AT_COPY_TO", "")

if TARGET:
    from engine.storage import local_mover

    _submit = local_mover.LocalMover.submit

    def _die_before_copying(self: Any, request: Any) -> str:
        if request.kind == "copy" and request.target == TARGET:
            os._exit(137)
        return str(_submit(self, request))

    local_mover.LocalMover.submit = _die_before_copying  # type: ignore[method-assign]
