"""Places a Ctrl-C at one exact step of a child `bl931tui`, loaded through PYTHONPATH.

Only active when `BL931_INTERRUPT_AT` is set. `catalog.flush`: the first time the local catalog is
about to write its file, a KeyboardInterrupt arrives instead (what a Ctrl-C between registering
scans in memory and writing them would do). Production code is not touched.
"""

from __future__ import annotations

import os

if os.environ.get("BL931_INTERRUPT_AT") == "catalog.flush":
    from engine.catalog import local as _local

    _real_flush = _local.LocalCatalog.flush
    _fired = []

    def _interrupting_flush(self: _local.LocalCatalog) -> None:
        if not _fired and self._dirty:
            _fired.append(True)
            raise KeyboardInterrupt
        _real_flush(self)

    _local.LocalCatalog.flush = _interrupting_flush  # type: ignore[method-assign]
