"""gc_paused: off inside, back on after (also after an exception); left alone when already off."""

from __future__ import annotations

import gc
import threading

import pytest

from quills.streams.gcpause import gc_paused


def test_the_collector_is_off_inside_and_on_again_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_inside_still_turns_it_back_on() -> None:
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_in_two_threads_keep_it_off_until_the_last_one_ends() -> None:
    # The Kafka consumer's worker thread reads while the event loop decodes: the decode, begun first and
    # ended first, must not turn the collector on under the read.
    reading, decoded = threading.Event(), threading.Event()
    seen: list[bool] = []

    def reader() -> None:
        with gc_paused():
            reading.set()
            decoded.wait(5)
            seen.append(gc.isenabled())

    thread = threading.Thread(target=reader)
    with gc_paused():
        thread.start()
        reading.wait(5)
    decoded.set()
    thread.join(5)
    assert seen == [False]
    assert gc.isenabled()
