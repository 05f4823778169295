"""Atom: no lost updates under many threads, lock-free consistent reads, validators and watches."""

from __future__ import annotations

import threading

import immutables
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quills import Atom
from quills.atom import ValidationError


@settings(max_examples=10, deadline=None)
@given(threads=st.integers(2, 12), increments=st.integers(50, 400))
def test_concurrent_swaps_never_lose_an_update(threads: int, increments: int) -> None:
    atom: Atom[immutables.Map[str, int]] = Atom(immutables.Map(total=0, a=0, b=0))
    attempts = 0
    start = threading.Barrier(threads)

    def bump(m: immutables.Map[str, int], key: str) -> immutables.Map[str, int]:
        nonlocal attempts
        attempts += 1
        return m.set("total", m["total"] + 1).set(key, m[key] + 1)

    def worker(index: int) -> None:
        start.wait()
        for _ in range(increments):
            atom.swap(bump, "a" if index % 2 else "b")

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    value = atom.deref()
    assert value["total"] == threads * increments
    assert value["a"] + value["b"] == value["total"]
    assert atom.version == threads * increments
    assert attempts >= threads * increments  # retries happen; each is a recomputation, never a loss


def test_readers_always_see_a_consistent_value() -> None:
    atom = Atom(immutables.Map(x=0, y=0))  # invariant: x == y
    stop = threading.Event()
    torn: list[object] = []

    def writer() -> None:
        for i in range(1, 3000):
            atom.reset(immutables.Map(x=i, y=i))
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            value = atom.deref()
            if value["x"] != value["y"]:
                torn.append(value)

    threads = [threading.Thread(target=writer), *(threading.Thread(target=reader) for _ in range(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torn == []


def test_validator_refuses_and_keeps_the_old_value() -> None:
    atom = Atom(1, validator=lambda v: v >= 0)
    with pytest.raises(ValidationError, match="refused"):
        atom.swap(lambda v: v - 5)
    with pytest.raises(ValidationError):
        atom.reset(-1)
    assert atom.deref() == 1
    with pytest.raises(ValidationError):
        Atom(-1, validator=lambda v: v >= 0)


def test_compare_and_set_uses_identity() -> None:
    first = immutables.Map(a=1)
    atom = Atom(first)
    assert not atom.compare_and_set(immutables.Map(a=1), immutables.Map(a=2))  # equal but not the same
    assert atom.compare_and_set(first, immutables.Map(a=3))
    assert atom.deref()["a"] == 3


def test_watches_see_every_change_with_old_and_new() -> None:
    atom = Atom(0)
    seen: list[tuple[str, int, int]] = []
    atom.add_watch("log", lambda key, a, old, new: seen.append((key, old, new)))
    atom.swap(lambda v: v + 1)
    atom.reset(10)
    atom.compare_and_set(10, 11)
    atom.remove_watch("log")
    atom.reset(99)
    assert seen == [("log", 0, 1), ("log", 1, 10), ("log", 10, 11)]
