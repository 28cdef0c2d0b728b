"""The chaos harness with Globus endpoints: the same world, moved by Transfer tasks.

dtn, cfs and hpss are collections of the fake Transfer API (`tests/fakes/transfer_api.py`)
served from the test process on 127.0.0.1; each collection's root is the workspace, and each
endpoint's `root` is its folder in it, so the harness reads every copy's bytes where it always
does. The dtn is also mounted here (`path`), as in production, so the inventory walks it. Every
child `bl931tui` drives the real globus-sdk against the fake.

Besides new scans, users rewriting scans at the dtn and processes killed at random points, a
pass may suffer what Transfer does to a client:

- a delete task that ends FAILED part-way (PERMISSION_DENIED, or EXPIRED past its deadline)
  after removing some of its files, Transfer saying only that it failed;
- a transfer task that ends FAILED part-way (ENDPOINT_ERROR), some files copied;
- a copy whose bytes arrive corrupted (checksum verification fails at the destination);
- bursts of 503 on one API route, longer than globus-sdk's own retries;
- a collection that refuses the client for one pass (403, no identity mapping);
- death right before a delete task reaches Transfer, or right after Transfer accepted it.

Not drawn here: rot at rest on a Globus-only copy (bl931 cannot re-read those bytes: a known
limit in docs/safety.md), and unmounted or aliased roots (a collection has no marker; the local
flavour covers them).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from tests.fakes.transfer_api import FakeTransferAPI
from tests.service.chaos import CRASH_INJECT, Chaos, Faults

ROUTES = ("task", "ls", "submission_id", "delete", "transfer", "task_list")
COLLECTIONS = ("dtn", "cfs", "hpss")


def _globus_endpoints(collections: dict[str, str]) -> str:
    return "".join(
        f'[endpoints.{name}]\nkind = "globus"\ncollection = "{collections[name]}"\n'
        f'root = "/{name}"\n'
        + ('path = "dtn"\n' if name == "dtn" else "")
        + ("tape = true\n" if name == "hpss" else "")
        + "\n"
        for name in COLLECTIONS
    )


@dataclass
class GlobusChaos(Chaos):
    fake: FakeTransferAPI = field(init=False)
    collections: dict[str, str] = field(init=False)
    refused: list[str] = field(default_factory=list)  # collections unmapped for this pass
    # Kinds of one fault take turns, so every run that draws a fault twice has both kinds.
    turns: dict[str, int] = field(default_factory=lambda: {"delete": 0, "crash": 0})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.fake = FakeTransferAPI().start()
        self.collections = {
            name: self.fake.add_collection(self.ws.root, display_name=f"fake {name}")
            for name in COLLECTIONS
        }
        text = self.ws.config_path.read_text("utf-8")
        start = text.index("[endpoints.dtn]")
        end = text.index("[[copy]]")
        text = text[:start] + _globus_endpoints(self.collections) + text[end:]
        self.ws.config_path.write_text(text, "utf-8")

    def close(self) -> None:
        self.fake.stop()

    def child_env(self) -> dict[str, str]:
        return {**super().child_env(), **self.fake.environ}

    def _env(self, faults: str | None, crash_step: str | None, seed: int) -> dict[str, str]:
        env = self.child_env()
        if crash_step is not None:  # "before" / "after" a delete reaches Transfer
            env["PYTHONPATH"] = os.pathsep.join(
                [str(CRASH_INJECT), *filter(None, [env.get("PYTHONPATH")])]
            )
            env["BL931_CRASH_IN_GLOBUS_DELETE"] = crash_step
        return env

    def _draw_faults(self, number: int) -> Faults:
        """This pass's faults. The seeded stream draws the same numbers whatever the world
        looks like (which scan a user rewrites depends on what the engine did, and that on
        timing: it is drawn from a generator of its own), so a seed always injects the same
        kinds of fault, in the same passes."""
        drawn = Faults()
        rng, fake = self.rng, self.fake
        if number < 3 or rng.random() < 0.25:
            drawn.notes.append(f"+{len(self.write_scans(rng.randint(1, 3)))} scans")
        if rng.random() < 0.25:
            stream, self.rng = self.rng, random.Random(f"{self.seed}:{number}")
            try:
                changed = self.change_one()
            finally:
                self.rng = stream
            if changed:
                drawn.notes.append(changed)
        if rng.random() < 0.3:
            code = ("PERMISSION_DENIED", "EXPIRED")[self.turns["delete"] % 2]  # (turn by turn)
            self.turns["delete"] += 1
            after = rng.randint(0, 4)
            fake.fail_next_task(code, f"fake {code}", after_items=after, kind="DELETE")
            drawn.notes.append(f"delete fails part-way ({code} after {after} items)")
        if rng.random() < 0.2:
            after = rng.randint(0, 3)
            fake.fail_next_task(
                "ENDPOINT_ERROR", "fake endpoint error", after_items=after, kind="TRANSFER"
            )
            drawn.notes.append(f"transfer fails part-way (after {after} items)")
        if rng.random() < 0.15:
            fake.corrupt_next_copy = True
            drawn.notes.append("copy corrupted in flight")
        if rng.random() < 0.2:
            route = rng.choice(ROUTES)
            fake.fail_next(route, rng.randint(3, 5), 503)
            drawn.notes.append(f"503 burst on {route}")
        if rng.random() < 0.15:
            name = rng.choice(("cfs", "hpss"))
            fake.unmap_identity(self.collections[name])
            self.refused.append(name)
            drawn.notes.append(f"{name} refuses the client")
        death = rng.random()
        if death < 0.2:
            drawn.kill_after = rng.uniform(0.1, 1.0)
            drawn.notes.append(f"SIGKILL at {drawn.kill_after:.2f}s")
        elif death < 0.3:
            drawn.crash_step = ("before", "after")[self.turns["crash"] % 2]
            self.turns["crash"] += 1
            drawn.notes.append(f"crash {drawn.crash_step} a delete reaches Transfer")
        return drawn

    def remount_all(self) -> None:
        """After a pass: collections that refused the client take it back; queued 503s end."""
        super().remount_all()
        for name in self.refused:
            self.fake.unmap_identity(self.collections[name], unmapped=False)
        self.refused.clear()
        self.fake.clear_faults()

    def settle(self, first: int, max_passes: int = 40) -> int:
        """Fault-free passes: knobs still armed (a failure for the next task) are dropped."""
        self.fake.clear_faults(tasks=True)
        return super().settle(first, max_passes)
