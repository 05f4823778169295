"""Turbine 1.x aggregation as pure state: host documents in, cluster documents out.

Per (type, name), each host's last document is kept and the cluster document is maintained by adding the
difference between a host's new document and its previous one:

- JSON integers are summed (every counter, gauge, mean, errorPercentage and numeric ``propertyValue_*``);
  a sum is shown clamped at 0.
- nested objects of integers are summed key by key (so percentiles become sums of percentiles, which the
  dashboard divides by ``reportingHosts``: an average of percentiles, as Turbine shows);
- everything else (strings, booleans, null, and floats, as Turbine 1.x does) counts hosts per value:
  one value when all agree, else a string such as ``{"false":2,"true":1}``;
- ``reportingHosts`` (1 when missing) is summed like any number; ``currentTime`` is dropped.

Going beyond Turbine: key-by-key summing of the ``quills_*_hist`` maps *is* the exact cluster histogram,
so each cluster document also gets ``quills_latencyExecute`` / ``quills_latencyTotal`` (exact cluster
percentiles, whole ms, keys as ``latencyExecute``) and their ``_mean``. The standard fields keep Turbine's
semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from quills.metrics import histogram
from quills.monitor.hystrix_format import PERCENTILE_KEYS

__all__ = ("ClusterAggregator", "BadDocument", "IGNORED_TYPES", "exact_percentiles")

#: document types that are never aggregated (our own status notes and a lower tier's meta documents)
IGNORED_TYPES = frozenset({"quills_status", "meta"})
_DROPPED = frozenset({"type", "name", "currentTime"})
_TICK_MS = 1024 / 1e6
_QUANTILES = tuple(float(key) for key in PERCENTILE_KEYS)
_NUMBER, _MAP, _STRING = 0, 1, 2
_MISSING: Any = object()
_EMPTY: dict[str, Any] = {}


class BadDocument(ValueError):
    """A host document that cannot be aggregated (not an object, or no string ``type``/``name``)."""


class _Aggregate:
    """The running cluster sums of one (type, name)."""

    __slots__ = ("cached", "changed_at", "hosts", "kinds", "maps", "name", "numbers", "strings", "type")

    def __init__(self, doc_type: str, name: str) -> None:
        self.type = doc_type
        self.name = name
        self.kinds: dict[str, int] = {}  # key -> kind, in the order keys were first seen
        self.numbers: dict[str, int] = {}
        self.maps: dict[str, dict[str, int]] = {}
        # per value, counted by (type, value): True and 1.0 are equal in Python but not on the wire
        self.strings: dict[str, dict[tuple[type, Any], int]] = {}
        self.hosts = 0
        self.changed_at = 0
        self.cached: dict[str, Any] | None = None


def _hashable(value: Any) -> Any:
    """A string attribute as a dict key: lists (and anything unhashable) by their JSON text."""
    return value if type(value) in (str, bool, float) or value is None else msgspec.json.encode(value)


def _add(aggregate: _Aggregate, key: str, value: Any, sign: int) -> None:
    """Add (sign 1) or take away (sign -1) one host's ``value`` of ``key``, by Turbine's kind of value."""
    kind = type(value)
    if kind is int:
        numbers = aggregate.numbers
        numbers[key] = numbers.get(key, 0) + sign * value
        aggregate.kinds.setdefault(key, _NUMBER)
    elif kind is dict:
        sums = aggregate.maps.get(key)
        if sums is None:
            sums = aggregate.maps[key] = {}
            aggregate.kinds.setdefault(key, _MAP)
        for sub, count in value.items():
            if type(count) is int:
                sums[sub] = sums.get(sub, 0) + sign * count
    else:
        counts = aggregate.strings.get(key)
        if counts is None:
            counts = aggregate.strings[key] = {}
            aggregate.kinds.setdefault(key, _STRING)
        tagged = (kind, _hashable(value))
        counts[tagged] = counts.get(tagged, 0) + sign


def _label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode()
    return msgspec.json.encode(value).decode()


def exact_percentiles(buckets: Mapping[str, int]) -> tuple[dict[str, int], int]:
    """Whole-ms percentiles (keys as ``latencyExecute``) and mean of a summed ``quills_*_hist`` map."""
    points = sorted((int(k), v) for k, v in buckets.items() if k.isdigit() and v > 0)
    total = sum(count for _, count in points)
    if not total:
        return dict.fromkeys(PERCENTILE_KEYS, 0), 0
    out: dict[str, int] = {}
    seen, at = 0, -1
    for key, q in zip(PERCENTILE_KEYS, _QUANTILES, strict=True):
        rank = max(1, -(-q * total // 100))
        while seen < rank:
            at += 1
            seen += points[at][1]
        out[key] = int(histogram.value_of(points[at][0]) * _TICK_MS + 0.5)
    mean = sum(histogram.value_of(index) * count for index, count in points) / total
    return out, int(mean * _TICK_MS + 0.5)


class ClusterAggregator:
    """The Turbine 1.x state of one cluster. Not thread-safe: feed it from one thread or event loop."""

    def __init__(self) -> None:
        self._aggregates: dict[tuple[str, str], _Aggregate] = {}
        self._hosts: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Grows with every change; pass it back to :meth:`documents` to get only what changed since."""
        return self._version

    def has_documents(self) -> bool:
        """True while any (type, name) has a cluster document."""
        return bool(self._aggregates)

    def hosts(self) -> list[str]:
        """Hosts with at least one document in the state."""
        return list(self._hosts)

    def update(self, host: str, doc: Any) -> bool:
        """Apply ``host``'s latest document. Returns False for ignored types (status notes, meta).

        The aggregator keeps ``doc`` as that host's last document (to subtract it later): do not change
        it afterwards.

        Raises:
            BadDocument: ``doc`` is not a JSON object with string ``type`` and ``name``.
        """
        if type(doc) is not dict:
            raise BadDocument(f"expected a JSON object, got {type(doc).__name__}")
        doc_type, name = doc.get("type"), doc.get("name")
        if type(doc_type) is not str or type(name) is not str:
            raise BadDocument("document lacks a string 'type' or 'name'")
        if doc_type in IGNORED_TYPES:
            return False
        key = (doc_type, name)
        if "reportingHosts" not in doc:
            doc = {**doc, "reportingHosts": 1}
        per_host = self._hosts.setdefault(host, {})
        old = per_host.get(key)
        aggregate = self._aggregates.get(key)
        if aggregate is None:
            aggregate = self._aggregates[key] = _Aggregate(doc_type, name)
        if old is None:
            aggregate.hosts += 1
            old = _EMPTY
        per_host[key] = doc
        if self._apply(aggregate, old, doc):
            self._touch(aggregate)
        return True

    def remove_host(self, host: str) -> bool:
        """Subtract everything ``host`` contributed (it dropped or discovery took it away)."""
        per_host = self._hosts.pop(host, None)
        if per_host is None:
            return False
        for key, old in per_host.items():
            aggregate = self._aggregates[key]
            self._apply(aggregate, old, _EMPTY)
            aggregate.hosts -= 1
            if aggregate.hosts <= 0:
                del self._aggregates[key]
                self._version += 1
            else:
                self._touch(aggregate)
        return True

    def documents(self, since: int = -1) -> list[dict[str, Any]]:
        """Cluster documents changed after version ``since`` (all of them by default), in first-seen order."""
        return [self._render(a) for a in self._aggregates.values() if a.changed_at > since]

    # -- internals -----------------------------------------------------------------------------------
    def _touch(self, aggregate: _Aggregate) -> None:
        self._version += 1
        aggregate.changed_at = self._version
        aggregate.cached = None

    @staticmethod
    def _apply(aggregate: _Aggregate, old: dict[str, Any], new: dict[str, Any]) -> bool:
        """Move the sums from ``old`` to ``new`` (one host's previous and latest document)."""
        changed = False
        get = old.get
        for key, value in new.items():
            before = get(key, _MISSING)
            # most keys of a tick are unchanged: one lookup and one comparison (done in C, maps included)
            if before == value and type(before) is type(value):
                continue
            if key in _DROPPED:
                continue
            if before is not _MISSING:
                _add(aggregate, key, before, -1)
            _add(aggregate, key, value, 1)
            changed = True
        if len(old) > len(new) or old.keys() != new.keys():
            for key, before in old.items():
                if key not in new and key not in _DROPPED:
                    _add(aggregate, key, before, -1)
                    changed = True
        return changed

    def _render(self, aggregate: _Aggregate) -> dict[str, Any]:
        if aggregate.cached is not None:
            return aggregate.cached
        out: dict[str, Any] = {"type": aggregate.type, "name": aggregate.name}
        for key, kind in aggregate.kinds.items():
            if kind == _NUMBER:
                out[key] = max(0, aggregate.numbers.get(key, 0))
            elif kind == _MAP:
                sums = aggregate.maps.get(key, {})
                out[key] = {sub: value for sub, value in sums.items() if value > 0}
                if key.startswith("quills_") and key.endswith("_hist"):
                    base = key[:-5]
                    out[base], out[base + "_mean"] = exact_percentiles(sums)
            else:
                present = [(tagged[1], n) for tagged, n in aggregate.strings[key].items() if n > 0]
                if len(present) == 1:
                    value = present[0][0]
                    out[key] = value.decode() if isinstance(value, bytes) else value
                elif present:
                    mixed = {_label(value): n for value, n in present}
                    out[key] = msgspec.json.encode(dict(sorted(mixed.items()))).decode()
        aggregate.cached = out
        return out
