"""Configuration of the platform: apps (and their hashed ingest keys), partners and postback rules, stored
in the database, changed through the config API (admin key), published on ``config.v1`` and followed by
each service in a ``quills.Atom``."""

from __future__ import annotations

from quills.attribution.config.follow import ConfigFollower
from quills.attribution.config.handlers import decode, probe_url, validate_rule
from quills.attribution.config.http import admin_only, config_routes, problem
from quills.attribution.config.index import CompiledRule, RuleIndex, compile_rule
from quills.attribution.config.messages import (
    CONFIG,
    EVENT_TYPES,
    AppInfo,
    ConfigChange,
    Filters,
    Partner,
    PostbackRule,
)
from quills.attribution.config.ssrf import TargetPolicy, UnsafeTarget, is_public_address
from quills.attribution.config.store import ConfigStore, Conflict, NotFound
from quills.attribution.config.template import MACROS, PERSONAL_MACROS, Part, Template, parse

__all__ = (
    "Partner",
    "Filters",
    "PostbackRule",
    "AppInfo",
    "ConfigChange",
    "CONFIG",
    "EVENT_TYPES",
    "MACROS",
    "PERSONAL_MACROS",
    "Template",
    "Part",
    "parse",
    "decode",
    "validate_rule",
    "probe_url",
    "RuleIndex",
    "CompiledRule",
    "compile_rule",
    "ConfigStore",
    "NotFound",
    "Conflict",
    "ConfigFollower",
    "TargetPolicy",
    "UnsafeTarget",
    "is_public_address",
    "config_routes",
    "admin_only",
    "problem",
)
