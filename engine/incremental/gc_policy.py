"""Cyclic garbage collection for a long-running service holding 100,000s of objects.

The reconciler keeps its scans, listings, evidence and verdicts from one pass to the next;
without help, every full (generation 2) collection walks all of them again, each pass.
After a pass, what is still alive is long-lived: `gc.freeze()` moves it out of the collector's
sight (it is still freed by reference counting when dropped). Cycles among frozen objects that
later become garbage wait for the next full walk, which unfreezes, collects everything and
freezes again, so nothing leaks for longer than `[safety] full_walk_seconds`.
"""

from __future__ import annotations

import gc


class GcPolicy:
    def after_pass(self, *, full: bool) -> None:
        if full:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)  # this pass's young garbage only: cheap
        gc.freeze()  # (gc.get_freeze_count() would walk every frozen object: not asked)
