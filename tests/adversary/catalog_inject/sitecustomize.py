"""Kill a child `bl931tui` right after its local catalog wrote a change to the file (a
registration or a location update flushed) and before the executor recorded it in the state
store, loaded through PYTHONPATH by `tests/adversary/test_catalog_swaps.py` when
`BL931_CRASH_AFTER_CATALOG_WRITE=1`. The process dies with `os._exit(137)`, as under SIGKILL.
"""

from __future__ import annotations

import os
from typing import Any

if os.environ.get("BL931_CRASH_AFTER_CATALOG_WRITE") == "1":
    from engine.catalog import local

    _flush = local.LocalCatalog.flush

    def _flush_then_die(self: Any) -> None:
        had = bool(self._pending)
        _flush(self)
        if had:
            os._exit(137)

    local.LocalCatalog.flush = _flush_then_die  # type: ignore[method-assign]
