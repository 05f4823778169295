"""``gc_paused()``: the cyclic garbage collector held off while a batch's short-lived objects exist.

Why: a batch creates thousands of objects at once (decoded Structs, librdkafka ``Message`` objects). Each
counts toward the collector's next run, so a batch would set off a dozen collections with nothing to find,
and objects alive during one get promoted and walked again by every later full collection. Paused, the
collector runs once after the batch instead.

The collector is process-wide, and pauses overlap: a Kafka consumer's worker thread reads the next batch
(``Message`` objects) while the event loop decodes the current one. So pauses nest across threads: the
first one turns the collector off, and only the last one to end turns it back on. (Each pause restoring
what it saw would let the decode end the read's pause halfway, and the collector would then walk and
promote the ``Message`` objects still being built.) A collector that was already off when the first pause
began (turned off by the caller) stays off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ("gc_paused",)

_lock = threading.Lock()
_holders = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic GC for the ``with`` block; enable it when the last overlapping pause ends.

    Re-enabled only if it was enabled when the first of the overlapping pauses began.
    """
    global _holders, _resume
    with _lock:
        if _holders == 0:
            _resume = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _resume:
                gc.enable()
