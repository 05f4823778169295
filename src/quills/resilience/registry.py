"""The registry: every command and thread pool by name, their snapshots, runtime options and listeners."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from quills.clock import SYSTEM_CLOCK, Clock
from quills.errors import ConfigError
from quills.resilience.async_command import AsyncCommand
from quills.resilience.core import CommandCore, CommandSnapshot
from quills.resilience.events import CommandRegistered, EventPublisher, Listener
from quills.resilience.options import CommandOptions, ThreadPoolOptions
from quills.resilience.pool import ThreadPool, ThreadPoolSnapshot
from quills.resilience.sync_command import Command

__all__ = ("Registry", "AnyCommand")

AnyCommand = Command[Any, Any] | AsyncCommand[Any, Any]


class Registry:
    """Named commands and pools. ``quills.registry`` is the process-wide one; tests may make their own.

    A command registered under a name already taken replaces the old one (a ``CommandRegistered`` event
    says so), which keeps module reloads and tests simple.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: dict[str, AnyCommand] = {}
        self._pools: dict[str, ThreadPool] = {}
        self.events = EventPublisher()

    # -- building ------------------------------------------------------------------------------------
    def build(
        self,
        fn: Callable[..., Any],
        options: CommandOptions,
        *,
        fallback: Callable[..., Any] | None = None,
        pool_options: ThreadPoolOptions | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> AnyCommand:
        """Build and register a command for ``fn`` (what :func:`quills.command` does, without decorating).

        Raises:
            ConfigError: the isolation does not suit ``fn`` (coroutine functions need ``"async"``, plain
                functions ``"thread"`` or ``"semaphore"``), or a sync command was given an async fallback.
        """
        is_async = inspect.iscoroutinefunction(fn)
        label = f"command {options.group}.{options.name}"
        if is_async and options.isolation != "async":
            raise ConfigError(
                f"{label}: a coroutine function needs isolation='async', not {options.isolation!r}"
            )
        if not is_async and options.isolation == "async":
            raise ConfigError(
                f"{label}: isolation='async' needs a coroutine function; use 'thread' or 'semaphore'"
            )
        if fallback is not None and not callable(fallback):
            raise ConfigError(f"{label}: fallback must be callable, got {fallback!r}")
        if not is_async and fallback is not None and inspect.iscoroutinefunction(fallback):
            raise ConfigError(f"{label}: a sync command cannot fall back to a coroutine function")
        core: CommandCore[Any, Any] = CommandCore(
            fn, options, fallback=fallback, clock=clock, publisher=self.events
        )
        command: AnyCommand
        if is_async:
            command = AsyncCommand(core)
        elif options.isolation == "thread":
            command = Command(core, self.pool(options.pool_name, pool_options, clock=clock))
        else:
            command = Command(core, None)
        with self._lock:
            self._commands[options.name] = command
        self.events.publish(CommandRegistered(options.group, options.name, clock.wall_ms()))
        return command

    def pool(
        self, name: str, options: ThreadPoolOptions | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> ThreadPool:
        """The pool called ``name``, created on first use; ``options`` given later reconfigure it."""
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = ThreadPool(name, options, clock=clock)
                return pool
        if options is not None and options != pool.options:
            pool.configure(options)
        return pool

    # -- reading -------------------------------------------------------------------------------------
    def commands(self) -> list[AnyCommand]:
        """Every registered command, in registration order."""
        with self._lock:
            return list(self._commands.values())

    def pools(self) -> list[ThreadPool]:
        """Every thread pool, in creation order."""
        with self._lock:
            return list(self._pools.values())

    def get(self, name: str) -> AnyCommand:
        """The command called ``name``; raises KeyError naming the known commands if there is none."""
        with self._lock:
            try:
                return self._commands[name]
            except KeyError:
                raise KeyError(f"no command {name!r}; known: {sorted(self._commands)}") from None

    def snapshots(self) -> list[CommandSnapshot]:
        """Frozen metrics of every command."""
        return [command.core.snapshot() for command in self.commands()]

    def pool_snapshots(self) -> list[ThreadPoolSnapshot]:
        """Frozen statistics of every thread pool."""
        return [pool.snapshot() for pool in self.pools()]

    # -- changing ------------------------------------------------------------------------------------
    def configure(self, name: str, **changes: Any) -> CommandOptions:
        """Change a command's options now, e.g. ``configure("get_user", timeout=2.0)``.

        Breaker options are changed with ``breaker=...`` or as ``breaker_<field>=...`` keywords
        (``breaker_force_open=True``). Returns the new options; invalid values raise ConfigError and
        change nothing.
        """
        command = self.get(name)
        breaker_changes = {key[8:]: changes.pop(key) for key in list(changes) if key.startswith("breaker_")}
        if breaker_changes:
            base = changes.get("breaker", command.core.options.breaker)
            try:
                changes["breaker"] = replace(base, **breaker_changes)
            except TypeError as exc:
                raise ConfigError(f"command {name!r}: {exc}") from None
        try:
            return command.core.configure(**changes)
        except TypeError as exc:
            raise ConfigError(f"command {name!r}: {exc}") from None

    def configure_pool(self, name: str, **changes: Any) -> ThreadPoolOptions:
        """Change a thread pool's options now, e.g. ``configure_pool("users", core_size=20)``."""
        with self._lock:
            pool = self._pools.get(name)
        if pool is None:
            raise KeyError(f"no thread pool {name!r}")
        try:
            options = replace(pool.options, **changes)
        except TypeError as exc:
            raise ConfigError(f"thread pool {name!r}: {exc}") from None
        pool.configure(options)
        return options

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Receive every command event (circuit transitions, rejections, fallbacks, registrations)."""
        return self.events.subscribe(listener)

    def remove(self, name: str) -> None:
        """Forget a command (its pool stays, shared pools may serve others)."""
        with self._lock:
            self._commands.pop(name, None)
