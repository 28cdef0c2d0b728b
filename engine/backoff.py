"""One exponential back-off for everything that waits after failing.

A failed action (`engine.executor`: retried after `[retry] base_seconds`, doubling per attempt,
at most `max_seconds`) and an endpoint whose listings keep failing (`engine.breaker`: skipped for
`[safety] endpoint_backoff_seconds`, doubling per further failure, at most
`endpoint_backoff_max_seconds`) wait by the same arithmetic, this function.
"""

from __future__ import annotations

# Past 2**30 × the base the cap has long applied; bounding the exponent keeps the float finite
# however many attempts a row has counted.
MAX_DOUBLINGS = 30


def backoff_seconds(doublings: int, base: float, maximum: float) -> float:
    """`base` doubled `doublings` times (none when zero or negative), at most `maximum`."""
    exponent = min(max(doublings, 0), MAX_DOUBLINGS)
    return float(min(maximum, base * 2**exponent))
