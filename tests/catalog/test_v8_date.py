"""The fake SciCat's port of V8's `new Date(s)` leniency, against the strings that matter."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.fakes.v8_date import js_date_accepts

# Observed on a real backend (and in Node 20): each of these becomes a Date in a `where` filter.
DATES = [
    "/ALS/9.3.1",
    "ALS 9.3.1",
    "scan 1",
    "0001",
    "/data/2026-04-03",
    "9.3.1",
    "als-9.3.1",
    "2026",
    "/tmp/x/cfs/raw/2026/11",
    "2026-11-27T00:00:00+00:00",
    "March 5",
    "Mar 5 2020 10:30 pm",
]
STRINGS = [
    "/ALS/BL931",
    "2026/11/scan_0001.txt",
    "bl931/abc-123",
    "bl931/6f0c2c55-93a1-4d0e-9b31-0b1a93100931",
    "ALS 11.0.1.2",
    "scan_0001",
    "Jane PI",
    "x 1 y",
    "a1",
    "p1/u/s",
    "10:30",
    "2020-13-01",
]


@pytest.mark.parametrize("text", DATES)
def test_dates(text: str) -> None:
    assert js_date_accepts(text)


@pytest.mark.parametrize("text", STRINGS)
def test_strings(text: str) -> None:
    assert not js_date_accepts(text)


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to compare with")
def test_agrees_with_node() -> None:
    extra = ["1 2 3 4", "13/40/2020", "Nov 27, 2026", "(x) 5", "5 (x)", "5+3", "utc 5", "32"]
    extra += ["0", "100", "10:61", "24:00", "24:01", "12:00 am", "13:00 pm", "NeXus/HDF5"]
    texts = DATES + STRINGS + extra
    script = (
        "for (const s of JSON.parse(process.argv[1]))"
        " console.log(isNaN(new Date(s).getTime()) ? 0 : 1)"
    )
    answer = subprocess.run(
        ["node", "-e", script, json.dumps(texts)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(answer) == len(texts)
    assert {t: js_date_accepts(t) for t in texts} == {
        t: a == "1" for t, a in zip(texts, answer, strict=True)
    }
