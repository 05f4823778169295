"""URL and body templates: macros parsed at save, anything unknown or unsafe refused with a reason."""

from __future__ import annotations

from quills.attribution.config import parse


def test_known_macros_and_modifiers_parse_into_parts() -> None:
    t = parse("https://a.example/p?x={click_id}&h={sha1:idfa}&r={raw:campaign}", url=True)
    assert not isinstance(t, list)
    assert t.macros == {"click_id", "idfa", "campaign"}
    assert len(t.params) == 3


def test_unknown_macro_is_refused_by_name() -> None:
    errors = parse("https://a.example/p?x={clickid}", url=True)
    assert isinstance(errors, list)
    assert any("{clickid}" in e for e in errors)


def test_unknown_modifier_is_refused() -> None:
    errors = parse("https://a.example/p?x={b64:click_id}", url=True)
    assert isinstance(errors, list) and any("modifier" in e for e in errors)


def test_non_http_schemes_are_refused() -> None:
    for url in ("ftp://a.example/x", "file:///etc/passwd", "gopher://a.example/", "javascript:alert(1)"):
        errors = parse(url, url=True)
        assert isinstance(errors, list), url


def test_macro_in_host_is_refused() -> None:
    errors = parse("https://{campaign}.example.com/p", url=True)
    assert isinstance(errors, list) and any("host" in e for e in errors)


def test_credentials_in_url_are_refused() -> None:
    errors = parse("https://user:pw@a.example/p", url=True)
    assert isinstance(errors, list) and any("credentials" in e for e in errors)


def test_unbalanced_brace_is_refused() -> None:
    errors = parse("https://a.example/p?x={click_id", url=True)
    assert isinstance(errors, list)


def test_session_rules_are_refused_since_sessions_are_not_read() -> None:
    from quills.attribution.config import PostbackRule, validate_rule

    rule = PostbackRule(
        rule_id="r", app_id="a", partner_id="p", event_types=("session",), url_template="https://a.example/p"
    )
    assert any("session" in e for e in validate_rule(rule))
