"""The live rule index: changes applied by ``swap`` from ``config.v1``, looked up per app."""

from __future__ import annotations

import threading

from quills import Atom
from quills.attribution.config import ConfigChange, RuleIndex

from ..postbacks.factories import partner, rule


def change(kind: str, op: str, key: str, **value: object) -> ConfigChange:
    return ConfigChange(change_id=key + op, at_ms=0, kind=kind, op=op, key=key, **value)  # type: ignore[arg-type]


def test_rule_changes_apply_to_their_app_only() -> None:
    idx = RuleIndex.of([partner()], [])
    idx = idx.apply(change("rule", "upsert", "r1", rule=rule(rule_id="r1", app_id="a", version=1)))
    idx = idx.apply(change("rule", "upsert", "r2", rule=rule(rule_id="r2", app_id="b", version=2)))
    assert [c.rule.rule_id for c in idx.for_app("a")] == ["r1"]
    idx = idx.apply(change("rule", "delete", "r1"))
    assert idx.for_app("a") == () and len(idx.for_app("b")) == 1


def test_an_older_version_never_overwrites_a_newer_one() -> None:
    idx = RuleIndex.of([partner()], [rule(version=5, delay_s=5)])
    idx = idx.apply(change("rule", "upsert", "r1", rule=rule(version=3, delay_s=3)))
    assert idx.for_app("app1")[0].rule.delay_s == 5


def test_rules_wait_for_their_partner() -> None:
    idx = RuleIndex.of([], [rule()])
    assert idx.for_app("app1") == ()
    idx = idx.apply(change("partner", "upsert", "net", partner=partner(version=1)))
    assert len(idx.for_app("app1")) == 1
    idx = idx.apply(change("partner", "upsert", "net", partner=partner(enabled=False, version=2)))
    assert idx.for_app("app1") == ()


def test_concurrent_swaps_from_many_threads_lose_no_rule() -> None:
    atom: Atom[RuleIndex] = Atom(RuleIndex.of([partner()], []))

    def writer(t: int) -> None:
        for i in range(25):
            r = rule(rule_id=f"r{t}-{i}", app_id=f"app{i % 5}", version=1)
            atom.swap(RuleIndex.apply, change("rule", "upsert", r.rule_id, rule=r))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    idx = atom.deref()
    assert len(idx.rules) == 200
    assert sum(len(idx.for_app(f"app{i}")) for i in range(5)) == 200
