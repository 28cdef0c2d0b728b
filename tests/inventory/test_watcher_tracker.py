"""`CompletionTracker`: the completion rules as plain numbers (no threads, no sleeps)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.inventory.completion import CompletionTracker, Rule, Signal

QUIET = 10.0
CHECK = 1.0


def tracker(*, directory: bool = False) -> CompletionTracker:
    return CompletionTracker(quiet_seconds=QUIET, check_seconds=CHECK, directory_scans=directory)


def settle(t: CompletionTracker, sig: dict[str, str], start: float, end: float) -> float | None:
    """Drive the tracker like the checker thread: stat whatever is due, step by step.

    Returns the time the scan "s" completed, or None.
    """
    now = start
    while now <= end:
        for scan in t.due(now):
            done = t.record(scan, sig.get(scan), now)
            if done is not None and scan == "s":
                return now
        now = round(now + 0.25, 6)
    return None


def test_quiescence_needs_quiet_seconds_and_two_agreeing_stats() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    assert t.due(5.0) == []  # nothing to look at while the scan cannot be quiet yet
    assert settle(t, {"s": "a"}, 0.0, 30.0) == QUIET
    assert t.completed()["s"].rule is Rule.QUIET
    assert t.pending() == frozenset()


def test_changing_signature_postpones_completion() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    first = t.due(QUIET - CHECK)
    assert first == ["s"]
    assert t.record("s", "a", QUIET - CHECK) is None
    # The file grew without an event (a polled or network mount): the stats disagree.
    assert t.record("s", "b", QUIET) is None
    assert t.record("s", "b", QUIET + CHECK) is not None


def test_events_keep_a_scan_pending() -> None:
    t = tracker()
    for second in range(0, 40, 3):  # a writer pausing 3 s between frames, under quiet_seconds
        t.event("s", Signal.ACTIVITY, float(second))
        assert [s for s in t.due(float(second)) if t.record(s, "x", float(second))] == []
    assert "s" in t.pending()
    assert settle(t, {"s": "x"}, 39.0, 60.0) == 39.0 + QUIET


def test_marker_completes_at_once() -> None:
    t = tracker(directory=True)
    t.event("s", Signal.ACTIVITY, 0.0)
    t.event("s", Signal.MARKER, 0.5)
    assert t.due(0.5) == ["s"]
    done = t.record("s", "sig", 0.5)
    assert done is not None and done.rule is Rule.MARKER


def test_marker_stays_decisive_after_later_files() -> None:
    t = tracker(directory=True)
    t.event("s", Signal.MARKER, 0.0)
    t.event("s", Signal.ACTIVITY, 0.1)  # the marker's own close, or a last metadata file
    assert t.record("s", "sig", 0.2) is not None


def test_rename_into_place_completes_a_file_scan_at_once() -> None:
    t = tracker()
    t.event("s", Signal.MOVED_IN, 0.0)
    done = t.record("s", "sig", 0.0)
    assert done is not None and done.rule is Rule.MOVED_IN


def test_close_after_write_completes_after_one_agreeing_recheck() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    t.event("s", Signal.CLOSED, 2.0)
    assert settle(t, {"s": "sig"}, 2.0, 10.0) == 2.0 + CHECK
    assert t.completed()["s"].rule is Rule.CLOSED


def test_a_writer_that_reopens_loses_the_close_rule() -> None:
    t = tracker()
    t.event("s", Signal.CLOSED, 0.0)
    t.event("s", Signal.ACTIVITY, 0.5)  # reopened within check_seconds: caught
    t.event("s", Signal.CLOSED, 0.7)
    assert settle(t, {"s": "sig"}, 0.7, 5.0) is None  # now only quiescence will do
    done = settle(t, {"s": "sig"}, 5.0, 20.0)
    assert done is not None and 0.7 + QUIET <= done < 0.7 + QUIET + 0.25  # the step size


def test_close_and_rename_do_not_finish_a_directory_scan() -> None:
    t = tracker(directory=True)
    t.event("s", Signal.MOVED_IN, 0.0)
    t.event("s", Signal.CLOSED, 1.0)
    assert settle(t, {"s": "sig"}, 1.0, 5.0) is None
    assert settle(t, {"s": "sig"}, 5.0, 20.0) == 1.0 + QUIET


def test_growth_after_completion_reopens_the_scan() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    assert settle(t, {"s": "v1"}, 0.0, 20.0) is not None
    t.event("s", Signal.ACTIVITY, 30.0)
    assert "s" not in t.completed()
    assert t.counters.reopened == 1
    assert settle(t, {"s": "v2"}, 30.0, 60.0) == 30.0 + QUIET
    assert t.completed()["s"].signature == "v2"


def test_vanished_scan_is_forgotten() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    assert t.record("s", None, QUIET) is None
    assert not t.known("s")
    assert t.pending() == frozenset()


def test_gone_forgets_pending_and_completed() -> None:
    t = tracker()
    t.event("s", Signal.MOVED_IN, 0.0)
    t.record("s", "sig", 0.0)
    t.event("s", Signal.GONE, 1.0)
    assert t.completed() == {} and not t.known("s")


def test_failed_stat_backs_off_then_retries() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    retry = t.failed("s", QUIET)
    assert retry > QUIET
    assert t.due(QUIET + 0.1) == []
    assert t.due(retry) == ["s"]
    assert t.counters.stat_failures == 1
    for _ in range(20):
        retry = t.failed("s", retry)
    assert t.next_due() == retry  # capped backoff, never lost


def test_discover_counts_missed_but_not_the_start_up_baseline() -> None:
    t = tracker()
    assert t.discover("old", 100.0, age_seconds=1000, baseline=True) is False
    assert t.discover("new", 100.0, age_seconds=2, baseline=True) is False
    assert t.pending() == frozenset({"new"})  # recent: tracked; old: known only
    assert t.discover("lost", 200.0, age_seconds=500) is True
    assert t.discover("lost", 201.0, age_seconds=500) is False
    assert t.counters.discovered == 1
    # A missed scan that is already quiet completes on two agreeing stats.
    assert t.record("lost", "sig", 200.0) is None
    assert t.record("lost", "sig", 201.0) is not None


def test_event_for_a_discovered_scan_is_not_missed() -> None:
    t = tracker()
    t.event("s", Signal.ACTIVITY, 0.0)
    assert t.discover("s", 1.0, age_seconds=1.0) is False


def test_retain_forgets_scans_the_walk_no_longer_lists() -> None:
    t = tracker()
    t.event("a", Signal.MOVED_IN, 0.0)
    t.record("a", "sig", 0.0)
    t.discover("b", 0.0, 100.0, baseline=True)
    t.retain({"b"})
    assert not t.known("a") and t.known("b") and "a" not in t.completed()


def test_expire_bounds_memory_but_keeps_scans_known() -> None:
    t = CompletionTracker(
        quiet_seconds=QUIET, check_seconds=CHECK, directory_scans=False, keep_completed_seconds=60
    )
    t.event("s", Signal.MOVED_IN, 0.0)
    t.record("s", "sig", 0.0)
    t.expire(30.0)
    assert "s" in t.completed()
    t.expire(61.0)
    assert "s" not in t.completed() and t.known("s")
    assert t.discover("s", 62.0, 62.0) is False


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([Signal.ACTIVITY, Signal.CLOSED, Signal.MOVED_IN]),
        st.floats(min_value=0, max_value=5, allow_nan=False),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(EVENTS, st.booleans())
def test_never_complete_while_events_are_recent_unless_signalled(
    events: list[tuple[str, Signal, float]], directory: bool
) -> None:
    """Without a marker or rename/close (file scans), no scan completes while quiet is not up,
    and every scan completes eventually once events stop and stats agree."""
    t = tracker(directory=directory)
    now = 0.0
    last: dict[str, float] = {}
    strong: dict[str, bool] = {}
    for scan, signal, gap in events:
        now += gap
        t.event(scan, signal, now)
        last[scan] = now
        strong[scan] = not directory and signal in (Signal.CLOSED, Signal.MOVED_IN)
        for due in t.due(now):
            done = t.record(due, "sig", now)
            if done is not None and not strong.get(due, False):
                assert now - last[due] >= QUIET
    end = now + QUIET + 5 * CHECK
    step = now
    while step <= end:
        for due in t.due(step):
            t.record(due, "sig", step)
        step += CHECK / 2
    assert set(t.completed()) == set(last)
    assert t.pending() == frozenset()
