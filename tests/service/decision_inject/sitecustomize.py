"""A second operator's decision arriving during a child `bl931tui`'s last look, via PYTHONPATH.

`BL931_DECIDE_DURING_LAST_LOOK=reject|hold`: the first time the last look re-hashes the copy a
delete is about to remove (`check_target_unchanged`, its last and slowest step: minutes for a
large scan), the operator named by `BL931_DECIDER` records that decision on this delete through
a *second* connection to the state store at `BL931_DECISION_STORE`, exactly as
`bl931tui --reject` or the TUI in another process would. The re-hash then goes on as usual.

`BL931_LAST_LOOK_IO_ERROR=1`: the first file the last look re-hashes at the endpoint it deletes
from cannot be read (EIO, a disk or NFS hiccup), so the check cannot run and the delete is
skipped for the pass.

`BL931_TEST_OPERATOR=alice`: this process's own uid is named `alice` by the account database
(passwd), so the real CLI records decisions as alice. bl931 names operators from the kernel's
uid, never from `$USER`: a test with one OS account needs this to play two operators.

Production code is not touched: the hooks wrap the calls the executor makes.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

_WHAT = os.environ.get("BL931_DECIDE_DURING_LAST_LOOK")
_OPERATOR = os.environ.get("BL931_TEST_OPERATOR")

if _OPERATOR:
    from engine import operators as _operators

    _real_user = _operators.SystemAccounts.user

    def _user(self: Any, uid: int) -> tuple[str, int] | None:
        found = _real_user(self, uid)
        return (_OPERATOR, found[1]) if found and uid == os.geteuid() else found

    _operators.SystemAccounts.user = _user  # type: ignore[method-assign]

if _WHAT:
    if _WHAT not in ("reject", "hold"):
        raise SystemExit(f"BL931_DECIDE_DURING_LAST_LOOK={_WHAT!r}: not reject or hold")
    from engine import delete_look as _delete_look
    from engine.clock import SYSTEM_CLOCK
    from engine.model import ActionKind, action_id
    from engine.state import StateStore

    _real_check = _delete_look.check_target_unchanged
    _decided: list[str] = []

    def _check_while_someone_decides(scan: Any, target: str, *args: Any, **kw: Any) -> Any:
        if not _decided:
            delete = action_id(ActionKind.DELETE, scan.id, scan.checksum, None, target)
            _decided.append(delete)
            other = StateStore(Path(os.environ["BL931_DECISION_STORE"]))
            who = os.environ.get("BL931_DECIDER", "second-operator")
            try:
                if _WHAT == "reject":
                    other.reject([delete], who, SYSTEM_CLOCK.now(), "decided during the last look")
                else:
                    other.place_hold(
                        scan.id, "decided during the last look", who, SYSTEM_CLOCK.now()
                    )
            finally:
                other.close()
        return _real_check(scan, target, *args, **kw)

    _delete_look.check_target_unchanged = _check_while_someone_decides

if os.environ.get("BL931_LAST_LOOK_IO_ERROR"):
    from engine import last_look as _last_look

    _real_checksum = _last_look.file_checksum
    _failed: list[bool] = []

    def _checksum_or_io_error(path: Any, *args: Any, **kw: Any) -> Any:
        if not _failed:
            _failed.append(True)
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return _real_checksum(path, *args, **kw)

    _last_look.file_checksum = _checksum_or_io_error
