"""Read a TinyDB-layout JSON file one document at a time, with each document's byte range.

A catalog of 100,000 documents is a ~160 MB file; `json.loads` of it holds every document as
Python objects at once (~6 KB each). This reader walks the two outer levels of the file —
`{"<table>": {"<doc id>": {document}, ...}, ...}` — itself and hands each document to
`json.JSONDecoder.raw_decode` separately, from a window of the file that slides forward, so
only one document (and one window of text) is in memory at a time. The byte range of every
document is reported, so a caller can read one document again later with one `seek` + `read`,
and copy unchanged documents into a new file byte for byte.

It accepts exactly what `json.loads` accepts for such a file (whitespace anywhere, any key order,
non-ASCII text); anything else raises `ValueError` with what was expected.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

CHUNK = 1 << 20  # bytes read at a time
MAX_VALUE = 64 << 20  # a single document larger than this is not a catalog document
_WHITESPACE = " \t\n\r"
_DECODER = json.JSONDecoder()
_NUMBER_TAIL = re.compile(r"[0-9eE+\-.]*")  # what may still follow a number's first digits


class _Window:
    """A sliding window of decoded text over a binary file, with byte offsets."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0  # index into `text`
        self.byte = 0  # the byte offset in the file of text[pos]
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk (dropping the text before `pos`). False at the end of the file."""
        if self.eof:
            return False
        raw = self._handle.read(CHUNK)
        if not raw:
            self.eof = True
            tail = self._decoder.decode(b"", final=True)
        else:
            tail = self._decoder.decode(raw)
        self.text = self.text[self.pos :] + tail
        self.pos = 0
        return True

    def advance(self, to: int) -> None:
        consumed = self.text[self.pos : to]
        self.byte += len(consumed) if consumed.isascii() else len(consumed.encode("utf-8"))
        self.pos = to

    def skip_whitespace(self) -> str:
        """The next non-blank character ("" at the end of the file), not consumed."""
        while True:
            text, pos = self.text, self.pos
            while pos < len(text) and text[pos] in _WHITESPACE:
                pos += 1
            self.advance(pos)
            if pos < len(text):
                return text[pos]
            if not self.fill():
                return ""

    def expect(self, chars: str, what: str) -> str:
        found = self.skip_whitespace()
        if not found or found not in chars:
            raise ValueError(f"expected {what} at byte {self.byte}, found {found or 'the end'!r}")
        self.advance(self.pos + 1)
        return found

    def value(self) -> tuple[Any, int, int]:
        """The next JSON value, and the byte range [start, end) it occupies in the file."""
        self.skip_whitespace()
        while True:
            try:
                parsed, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.text) - self.pos > MAX_VALUE or not self.fill():
                    raise ValueError(f"{exc.msg} at byte {self.byte}") from None
                continue
            tail = _NUMBER_TAIL.match(self.text, end)
            if not self.eof and tail is not None and tail.end() == len(self.text):
                # A value that may go on (a number, `true`…) reaches the end of the window:
                # read on, so that "1" followed by ".5" in the next chunk is read as 1.5.
                self.fill()
                continue
            start = self.byte
            self.advance(end)
            return parsed, start, self.byte


def read_tables(
    handle: BinaryIO, *, streamed: str
) -> Iterator[tuple[str, str | None, Any, int, int]]:
    """Walk a TinyDB-layout file.

    Yields `(table, doc id, value, start, end)`: for the table named `streamed`, one item with
    doc id and value None where it starts, then one per document (each parsed on its own); for
    every other table one item with doc id None and the whole table as value (those are small).
    A table that appears twice is reported twice (with `json.loads` the later one wins).

    Raises:
        ValueError: the file is not such a JSON object (the message names what and where).
    """
    window = _Window(handle)
    if window.skip_whitespace() == "":
        raise ValueError("the file is empty")
    window.expect("{", "an object")
    if window.skip_whitespace() == "}":
        window.advance(window.pos + 1)
    else:
        while True:
            table, _, _ = window.value()
            if not isinstance(table, str):
                raise ValueError(f"expected a table name at byte {window.byte}")
            window.expect(":", "':'")
            if table == streamed:
                yield table, None, None, window.byte, window.byte  # the table starts
                yield from _documents(window, table)
            else:
                value, start, end = window.value()
                yield table, None, value, start, end
            if window.expect(",}", "',' or '}'") == "}":
                break
    if window.skip_whitespace() != "":
        raise ValueError(f"extra data after the object at byte {window.byte}")


def _documents(window: _Window, table: str) -> Iterator[tuple[str, str | None, Any, int, int]]:
    if window.skip_whitespace() != "{":
        raise ValueError(f"the {table!r} table is not an object")
    window.advance(window.pos + 1)
    if window.skip_whitespace() == "}":
        window.advance(window.pos + 1)
        return
    while True:
        doc_id, _, _ = window.value()
        if not isinstance(doc_id, str):
            raise ValueError(f"expected a document id at byte {window.byte}")
        window.expect(":", "':'")
        value, start, end = window.value()
        yield table, doc_id, value, start, end
        if window.expect(",}", "',' or '}'") == "}":
            return
