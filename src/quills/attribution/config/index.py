"""The live configuration a service holds in a ``quills.Atom``: partners, rules, and the rules of each app
compiled for evaluation (templates parsed, regexes compiled, names in sets).

``RuleIndex`` is immutable (``immutables.Map`` inside); ``apply(change)`` returns a new index, so a
``swap(RuleIndex.apply, change)`` never disturbs readers, who look an app up in O(1) and never scan the
rules of other apps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import immutables

from quills.attribution.config.messages import ConfigChange, Partner, PostbackRule
from quills.attribution.config.template import Template, parse

__all__ = ("CompiledRule", "RuleIndex", "compile_rule")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate, with its partner."""

    rule: PostbackRule
    partner: Partner
    event_types: frozenset[str]
    event_names: frozenset[str] | None  # None: every name
    sources: frozenset[str]
    campaign: re.Pattern[str] | None
    countries_allow: frozenset[str]
    countries_deny: frozenset[str]
    url: Template
    body: Template | None
    # precomputed once per rule, used for every delivery it makes
    macros: tuple[str, ...]
    headers: dict[str, str]
    delay_ms: int
    max_age_ms: int
    timeout_s: float


def compile_rule(rule: PostbackRule, partner: Partner) -> CompiledRule:
    """Compile ``rule`` (already validated at save: a bad template here raises ``ValueError``)."""
    url = parse(rule.url_template, url=True)
    body = parse(rule.body_template, url=False) if rule.body_template is not None else None
    if isinstance(url, list) or isinstance(body, list):
        raise ValueError(f"rule {rule.rule_id}: invalid template: {url if isinstance(url, list) else body}")
    names = None if "*" in rule.event_names else frozenset(rule.event_names)
    regex = rule.filters.campaign_regex
    headers = dict(rule.headers)
    if body is not None and not any(h.lower() == "content-type" for h in headers):
        headers["Content-Type"] = "application/json"
    return CompiledRule(
        rule=rule,
        partner=partner,
        event_types=frozenset(rule.event_types),
        event_names=names,
        sources=frozenset(partner.sources),
        campaign=re.compile(regex) if regex else None,
        countries_allow=frozenset(rule.filters.countries_allow),
        countries_deny=frozenset(rule.filters.countries_deny),
        url=url,
        body=body,
        macros=tuple(sorted(url.macros | (body.macros if body is not None else frozenset()))),
        headers=headers,
        delay_ms=int(rule.delay_s * 1000),
        max_age_ms=int(rule.max_age_s * 1000),
        timeout_s=min(rule.timeout_s, partner.timeout_s),
    )


_EMPTY: immutables.Map[str, tuple[CompiledRule, ...]] = immutables.Map()
_NO_PARTNERS: immutables.Map[str, Partner] = immutables.Map()
_NO_RULES: immutables.Map[str, PostbackRule] = immutables.Map()
_EMPTY_BY_TYPE: immutables.Map[tuple[str, str], tuple[CompiledRule, ...]] = immutables.Map()


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """Partners, rules and each app's compiled active rules (rules whose partner is unknown wait)."""

    partners: immutables.Map[str, Partner] = _NO_PARTNERS
    rules: immutables.Map[str, PostbackRule] = _NO_RULES
    by_app: immutables.Map[str, tuple[CompiledRule, ...]] = _EMPTY
    version: int = 0
    # (app_id, event_type) -> the app's rules for that type: what evaluation looks up per event
    by_type: immutables.Map[tuple[str, str], tuple[CompiledRule, ...]] = _EMPTY_BY_TYPE

    @classmethod
    def of(cls, partners: list[Partner], rules: list[PostbackRule]) -> RuleIndex:
        """Build from full lists (a service's start, or a periodic reload from the database)."""
        index = cls(
            partners=immutables.Map({p.partner_id: p for p in partners}),
            rules=immutables.Map({r.rule_id: r for r in rules}),
        )
        return index._recompile({r.app_id for r in rules})

    def for_app(self, app_id: str) -> tuple[CompiledRule, ...]:
        """The active rules of ``app_id`` (empty if none)."""
        return self.by_app.get(app_id, ())

    def for_event(self, app_id: str, event_type: str) -> tuple[CompiledRule, ...]:
        """The active rules of ``app_id`` that fire on ``event_type`` (one lookup, no scan)."""
        return self.by_type.get((app_id, event_type), ())

    def apply(self, change: ConfigChange) -> RuleIndex:
        """This index with ``change`` applied (an older version of a rule or partner is ignored)."""
        if change.kind == "rule":
            old = self.rules.get(change.key)
            if change.op == "upsert" and change.rule is not None:
                if old is not None and old.version > change.rule.version:
                    return self
                rules = self.rules.set(change.key, change.rule)
                apps = {change.rule.app_id} | ({old.app_id} if old else set())
            elif old is not None:
                rules, apps = self.rules.delete(change.key), {old.app_id}
            else:
                return self
            return RuleIndex(self.partners, rules, self.by_app, self.version + 1, self.by_type)._recompile(
                apps
            )
        if change.kind == "partner":
            current = self.partners.get(change.key)
            if change.op == "upsert" and change.partner is not None:
                if current is not None and current.version > change.partner.version:
                    return self
                partners = self.partners.set(change.key, change.partner)
            elif current is not None:
                partners = self.partners.delete(change.key)
            else:
                return self
            apps = {r.app_id for r in self.rules.values() if r.partner_id == change.key}
            return RuleIndex(partners, self.rules, self.by_app, self.version + 1, self.by_type)._recompile(
                apps
            )
        if change.kind == "app" and change.op == "delete":
            gone = [rid for rid, r in self.rules.items() if r.app_id == change.key]
            rules = self.rules
            for rid in gone:
                rules = rules.delete(rid)
            index = RuleIndex(self.partners, rules, self.by_app, self.version + 1, self.by_type)
            return index._recompile({change.key})
        return self

    def _recompile(self, apps: set[str]) -> RuleIndex:
        if not apps:
            return self
        wanted: dict[str, list[CompiledRule]] = {a: [] for a in apps}
        for rule in self.rules.values():
            bucket = wanted.get(rule.app_id)
            if bucket is None or not rule.enabled:
                continue
            partner = self.partners.get(rule.partner_id)
            if partner is None or not partner.enabled:
                continue
            bucket.append(compile_rule(rule, partner))
        by_app = self.by_app.mutate()
        by_type = self.by_type.mutate()
        for app, compiled in wanted.items():
            for old in by_app.get(app, ()):
                for kind in old.event_types:
                    by_type.pop((app, kind), None)
            if compiled:
                ordered = tuple(sorted(compiled, key=lambda c: c.rule.rule_id))
                by_app[app] = ordered
                for kind in {k for c in ordered for k in c.event_types}:
                    by_type[(app, kind)] = tuple(c for c in ordered if kind in c.event_types)
            elif app in by_app:
                del by_app[app]
        return RuleIndex(self.partners, self.rules, by_app.finish(), self.version + 1, by_type.finish())
