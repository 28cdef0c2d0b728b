"""The `Mover` protocol states everything the engine calls on a mover, and every mover
implements all of it: nothing is probed for with `getattr`."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from engine.storage.base import Mover
from engine.storage.globus_mover import GlobusMover
from engine.storage.local_mover import LocalMover
from engine.storage.tape import TapeMover

ROOT = Path(__file__).resolve().parents[2]
MOVERS = [LocalMover, GlobusMover, TapeMover]

# What the executor, the task watch, the reconciler and the service call on a mover. The ones
# marked were probed with getattr before (`knows`/`track` by the executor, `keep_holds_in` by the
# retry holds, `close` by the service).
USED = {
    "name",
    "max_items_per_task",
    "max_active_tasks",
    "finishes_locally",
    "new_submission_id",
    "submit",
    "poll",
    "find_task",
    "cancel",
    "knows",  # was getattr
    "track",  # was getattr
    "keep_holds_in",  # was getattr
    "close",  # was getattr
}


def _protocol_members() -> dict[str, object]:
    members = {n: getattr(Mover, n) for n in vars(Mover) if not n.startswith("_")}
    members.update(dict.fromkeys(Mover.__annotations__))
    return members


def test_the_protocol_states_everything_the_engine_uses() -> None:
    assert set(_protocol_members()) >= USED


@pytest.mark.parametrize("mover", MOVERS, ids=lambda m: m.__name__)
def test_every_mover_implements_the_whole_protocol(mover: type) -> None:
    for name, declared in _protocol_members().items():
        assert hasattr(mover, name) or name in Mover.__annotations__, f"{mover.__name__}.{name}"
        if not callable(declared):
            # An attribute: a class attribute or one set in __init__.
            source = inspect.getsource(mover)
            assert hasattr(mover, name) or f"self.{name} =" in source, f"{mover.__name__}.{name}"
            continue
        implemented = getattr(mover, name)
        assert callable(implemented), f"{mover.__name__}.{name}"
        wanted = list(inspect.signature(declared).parameters)
        got = list(inspect.signature(implemented).parameters)
        assert got[: len(wanted)] == wanted, f"{mover.__name__}.{name}{got} vs {wanted}"
        extra = inspect.signature(implemented).parameters
        assert all(extra[p].default is not inspect.Parameter.empty for p in got[len(wanted) :])


def test_a_local_mover_is_a_mover_and_answers_the_former_getattr_methods(tmp_path: Path) -> None:
    mover = LocalMover({"dtn": tmp_path})
    try:
        assert isinstance(mover, Mover)
        # A task of this process carries its own request; one from before a restart is lost
        # whatever it is told, so there is nothing to be told.
        assert mover.knows("local-unknown") is True
        assert mover.poll("local-unknown").state == "lost"
    finally:
        mover.close(wait=False)


def _getattr_on_movers(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and "mover" in ast.unparse(node.args[0]).lower()
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_probes_a_mover_with_getattr() -> None:
    offenders = [
        hit
        for folder in ("engine", "bl931tui")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for hit in _getattr_on_movers(path)
    ]
    assert offenders == []
