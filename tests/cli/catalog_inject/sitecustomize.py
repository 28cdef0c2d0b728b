"""A second writer of the local catalog, loaded into a child `bl931tui` through PYTHONPATH.

Only active when `BL931_CATALOG_SECOND_WRITER` is set: the first time bl931 is about to write
catalog changes to an existing file, another program (another bl931, an operator's script)
adds a document to that file first — after bl931 read it, before bl931 writes it. The writer
does what any careful program does (temporary file, `os.replace`) and knows nothing of bl931's
lock or generation counter. Production code is not touched.
"""

from __future__ import annotations

import json
import os
import sys

if os.environ.get("BL931_CATALOG_SECOND_WRITER"):
    from engine.catalog import local as _local

    _real_flush = _local.LocalCatalog.flush
    _fired: list[bool] = []

    def _other_writer(path: os.PathLike[str]) -> None:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        table = data.setdefault("datasets", {})
        key = str(max((int(k) for k in table), default=0) + 1)
        table[key] = {
            "pid": "other-tool/0001",
            "datasetName": "theirs.h5",
            "scientificMetadata": {"scan_id": {"value": "elsewhere/theirs.h5"}, "locations": []},
        }
        tmp = f"{os.fspath(path)}.other-writer.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
        print("second writer wrote elsewhere/theirs.h5", file=sys.stderr, flush=True)

    def _flush_after_another_writer(self: _local.LocalCatalog) -> None:
        if not _fired and self._dirty and self.path.exists():
            _fired.append(True)
            _other_writer(self.path)
        _real_flush(self)

    _local.LocalCatalog.flush = _flush_after_another_writer  # type: ignore[method-assign]
