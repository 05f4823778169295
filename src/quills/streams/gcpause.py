"""``gc_paused()``: the cyclic garbage collector held off while a batch's short-lived objects exist.

Why: a batch creates thousands of objects at once (decoded Structs, librdkafka ``Message`` objects). Each
counts toward the collector's next run, so a batch would set off a dozen collections with nothing to find,
and objects alive during one get promoted and walked again by every later full collection. Paused, the
collector runs once after the batch instead. The collector is process-wide: a pause started while it is
already off (by the caller, or by another thread's pause) changes nothing and re-enables nothing.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("gc_paused",)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC for the ``with`` block if it is enabled; enable it again afterwards."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
