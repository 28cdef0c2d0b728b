"""One shared object for each value repeated across scans, endpoints and layers.

At 100k scans the same text is held many times over: a scan's id by the scans, every
endpoint's listing, every replica and evidence row and the catalog's registrations; its
checksum by the scan and the evidence of each copy; a listing's signature by the replica row,
the evidence and the verdict of each endpoint. Strings read from SQLite, JSON or a directory
listing are new objects each time, so each copy costs its full size (about 80 bytes for a
scan id or a digest). Interning them (`sys.intern`: the table holds no reference, an interned
string is freed with its last user) makes every layer share one object; timestamps parsed from
the same text in one read share one `datetime`.
"""

from __future__ import annotations

import sys
from datetime import datetime

shared = sys.intern


def shared_or_none(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


class Moments:
    """`datetime.fromisoformat`, one object per distinct text within one read (rows written in
    the same pass carry the same stamp)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}

    def __call__(self, text: str) -> datetime:
        moment = self._seen.get(text)
        if moment is None:
            if len(self._seen) > 4096:  # stamps of many passes: keep the memo small
                self._seen.clear()
            moment = self._seen[text] = datetime.fromisoformat(text)
        return moment
