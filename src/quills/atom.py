"""``Atom``: shared state as one reference to an immutable value, changed by pure functions (Clojure's atom).

Readers call :meth:`Atom.deref` and get the current value with a plain attribute read: never a lock, never a
torn value, because values are immutable (use ``immutables.Map``, tuples, frozen dataclasses). Writers call
:meth:`Atom.swap` with a function of the old value; if another writer changed the atom in the meantime the
function runs again on the new value, so no update is ever lost. The compare-and-set itself holds a lock for
a few bytecodes only; the user's function runs outside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from quills.errors import QuillsError

__all__ = ("Atom", "ValidationError")

T = TypeVar("T")

Watch = Callable[[Any, "Atom[T]", T, T], None]


class ValidationError(QuillsError, ValueError):
    """A new value was refused by the atom's validator; the atom keeps its old value."""


class Atom(Generic[T]):
    """A thread-safe reference to an immutable value.

    Args:
        value: the initial value (should be immutable: ``immutables.Map``, a tuple, a frozen dataclass).
        validator: called with every proposed value; returning False or raising refuses it (the atom is
            unchanged and :class:`ValidationError` is raised). Default: none.

    Example::

        rules = Atom(immutables.Map())
        rules.swap(lambda m, app, r: m.set(app, r), "app-1", rule)   # a writer
        current = rules.deref()                                      # a reader, lock-free
    """

    __slots__ = ("_lock", "_validator", "_value", "_version", "_watches")

    def __init__(self, value: T, *, validator: Callable[[T], bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._validator = validator
        self._watches: dict[Any, Watch[T]] = {}
        self._validate(value)
        self._value = value
        self._version = 0

    def deref(self) -> T:
        """The current value (no lock: one attribute read)."""
        return self._value

    @property
    def version(self) -> int:
        """How many times the value has changed (0 at creation)."""
        return self._version

    def swap(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Set the value to ``fn(current, *args, **kwargs)`` and return it.

        ``fn`` may run more than once (when another writer got in first), so it must be free of side
        effects. Raises :class:`ValidationError` (value unchanged) if the validator refuses the result.
        """
        while True:
            old = self._value
            new = fn(old, *args, **kwargs)
            self._validate(new)
            with self._lock:
                if self._value is not old:
                    continue  # someone else changed it: recompute from their value
                self._value = new
                self._version += 1
            self._notify(old, new)
            return new

    def reset(self, value: T) -> T:
        """Set the value regardless of the current one; returns it."""
        self._validate(value)
        with self._lock:
            old = self._value
            self._value = value
            self._version += 1
        self._notify(old, value)
        return value

    def compare_and_set(self, expected: T, new: T) -> bool:
        """Set ``new`` only if the current value *is* ``expected`` (identity); True if it was set."""
        self._validate(new)
        with self._lock:
            if self._value is not expected:
                return False
            self._value = new
            self._version += 1
        self._notify(expected, new)
        return True

    def add_watch(self, key: Any, fn: Watch[T]) -> None:
        """Call ``fn(key, atom, old, new)`` after every change (in the writer's thread).

        A watch sees every change, but with concurrent writers two watches may run out of order; compare
        versions or read ``deref()`` when order matters. Re-adding a key replaces its watch.
        """
        self._watches = {**self._watches, key: fn}

    def remove_watch(self, key: Any) -> None:
        """Stop calling the watch added under ``key`` (no error if there is none)."""
        self._watches = {k: v for k, v in self._watches.items() if k != key}

    def _validate(self, value: T) -> None:
        if self._validator is None:
            return
        try:
            accepted = self._validator(value)
        except Exception as exc:
            raise ValidationError(f"atom value refused: {exc}") from exc
        if not accepted:
            raise ValidationError(f"atom value refused by validator {self._validator!r}: {value!r}")

    def _notify(self, old: T, new: T) -> None:
        for key, watch in self._watches.items():
            watch(key, self, old, new)

    def __repr__(self) -> str:
        return f"Atom({self._value!r})"
