"""Cut a child `bl931tui` at one step around a local catalog registration, loaded through
PYTHONPATH by `tests/adversary/test_catalog_custody_cli.py`. `BL931_CATALOG_CUT` says where:

- `before_write`: the pass noted that it asks the catalog to register a scan, and dies as it
  calls the catalog (nothing is written to the file);
- `after_record`: the catalog wrote the registration and the state store recorded it, and the
  process dies right after that record (before the rest of the pass);
- `after_forget`: the pass that acts on an acknowledged loss forgot the registrations, and the
  process dies right after (before it closed the alert or registered anything again);
- `scicat_before_write`, `scicat_after_write`: the same for SciCat: the process dies as it
  asks SciCat to register a scan, or right after SciCat answered that it holds the dataset
  (with its datablock and lifecycle), before the state store recorded it;
- `vanish_at_write`: no death: right before the catalog writes its changes, the file is moved
  to `BL931_CATALOG_AWAY` (an unmounted volume, a deleted file), once, so the write fails and
  the registration stays in memory (until the process ends, or a later pass writes it).

Each death is `os._exit(137)`, as under SIGKILL. Production code is not touched.
"""

from __future__ import annotations

import os
from typing import Any

_CUT = os.environ.get("BL931_CATALOG_CUT")

if _CUT:
    from engine.catalog import local

    if _CUT == "before_write":

        def _die_instead(self: Any, scan: Any, locations: Any) -> str:
            os._exit(137)

        local.LocalCatalog.register = _die_instead  # type: ignore[method-assign]

    elif _CUT == "after_record":
        from engine.catalog import custody

        _record = custody.Registrations.record

        def _record_then_die(self: Any, catalog: str, registered: Any, now: Any) -> None:
            registered = list(registered)
            _record(self, catalog, registered, now)
            if registered:
                os._exit(137)

        custody.Registrations.record = _record_then_die  # type: ignore[method-assign]

    elif _CUT == "after_forget":
        from engine.catalog import custody

        _forget = custody.Registrations.forget

        def _forget_then_die(self: Any, catalog: str, scans: Any, now: Any) -> None:
            scans = list(scans)
            _forget(self, catalog, scans, now)
            if scans:
                os._exit(137)

        custody.Registrations.forget = _forget_then_die  # type: ignore[method-assign]

    elif _CUT in ("scicat_before_write", "scicat_after_write"):
        from engine.catalog import scicat

        _register = scicat.ScicatCatalog.register

        def _cut_register(self: Any, scan: Any, locations: Any) -> str:
            if _CUT == "scicat_before_write":
                os._exit(137)
            pid = _register(self, scan, locations)
            os._exit(137)
            return pid  # never reached

        scicat.ScicatCatalog.register = _cut_register  # type: ignore[method-assign]

    elif _CUT == "vanish_at_write":
        _flush = local.LocalCatalog.flush
        _away = os.environ["BL931_CATALOG_AWAY"]

        _fired: list[bool] = []

        def _vanish_then_flush(self: Any) -> None:
            if not _fired and self.has_pending() and self.path.exists():
                _fired.append(True)  # once: the file may come back afterwards
                os.replace(self.path, _away)
            _flush(self)

        local.LocalCatalog.flush = _vanish_then_flush  # type: ignore[method-assign]
