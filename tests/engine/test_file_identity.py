"""A file's identity packed into one value reads, compares and replaces as the two fields it
was (issue 15, memory): the inventory trusts a checksum only while both still match."""

from __future__ import annotations

import dataclasses
import pickle

from hypothesis import given
from hypothesis import strategies as st

from engine.model import FileStat, ScanFile

PART = st.one_of(st.none(), st.integers(-(1 << 70), 1 << 70), st.integers(0, 1 << 64))


@given(PART, PART, PART, PART)
def test_equal_exactly_when_inode_and_ctime_are(inode_a, ctime_a, inode_b, ctime_b):
    a = FileStat("x.h5", 1, 2.0, inode_a, ctime_a)
    b = FileStat("x.h5", 1, 2.0, inode_b, ctime_b)
    assert (a.inode, a.ctime_ns) == (inode_a, ctime_a)
    assert (a == b) == ((inode_a, ctime_a) == (inode_b, ctime_b))
    if a == b:
        assert hash(a) == hash(b)
    f = ScanFile("x.h5", 1, 2.0, "c", inode=inode_a, ctime_ns=ctime_a)
    assert (f.inode, f.ctime_ns) == (inode_a, ctime_a)
    assert pickle.loads(pickle.dumps(a)) == a
    assert pickle.loads(pickle.dumps(f)) == f


def test_replace_keeps_or_changes_each_part():
    f = ScanFile("x.h5", 1, 2.0, "c", inode=7, ctime_ns=1_800_000_000_123_456_789)
    assert dataclasses.replace(f, size=3) == ScanFile(
        "x.h5", 3, 2.0, "c", 7, 1_800_000_000_123_456_789
    )
    assert dataclasses.replace(f, inode=None, ctime_ns=None).inode is None
    only = dataclasses.replace(f, inode=8)
    assert (only.inode, only.ctime_ns) == (8, 1_800_000_000_123_456_789)
    assert f != only  # a new inode: the checksum is not reused


def test_repr_names_the_parts():
    assert repr(FileStat("a", 1, 2.0, 3, 4)) == (
        "FileStat(path='a', size=1, mtime=2.0, inode=3, ctime_ns=4)"
    )
    assert "inode=None, ctime_ns=None" in repr(ScanFile("a", 1, 2.0, "c"))


def test_one_object_instead_of_two():
    listed = FileStat("a", 1, 2.0, 123_456_789, 1_800_000_000_123_456_789)
    assert dataclasses.fields(listed)[-1].name == "identity"
    assert isinstance(listed.identity, int)  # one int holds both
