"""Macro rendering: every substituted value percent-encoded, template text untouched, privacy applied."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from quills.attribution.config.template import MACROS
from quills.attribution.postbacks import (
    encode_value,
    evaluate,
    macro_values,
    postback_id,
    render_event_url,
    render_url,
)

from .factories import NOW, event, index, rule


def test_values_with_reserved_characters_are_percent_encoded() -> None:
    nasty = 'a b&c=d?e/f#g%h+i,j:k;l@m"n<o>p{q}r|s\\t^u~v[w]x`y(z)'
    (d,) = evaluate(index([rule()]), [event(click_id=nasty)], NOW)
    query = urlsplit(d.url).query
    assert query.count("&") == 1  # the value added no parameter
    assert parse_qs(query)["click"] == [nasty]
    assert "~" not in query and " " not in query


@given(st.text(min_size=1, max_size=60))
def test_any_value_round_trips_through_the_query(value: str) -> None:
    (d,) = evaluate(index([rule()]), [event(click_id=value)], NOW)
    split = urlsplit(d.url)
    assert split.hostname == "postbacks.example.com"
    assert split.path == "/p"
    assert parse_qs(split.query, keep_blank_values=True)["click"] == [value]


def test_encode_value_leaves_only_unreserved_characters() -> None:
    assert encode_value("AZaz09-._~ /") == "AZaz09-._%7E%20%2F"


def test_postback_id_is_a_stable_hash_of_rule_and_event() -> None:
    assert postback_id("r1", "e1") == postback_id("r1", "e1")
    assert postback_id("r1", "e1") != postback_id("r1", "e2")
    assert postback_id("r1", "e1") != postback_id("r2", "e1")
    e = event()
    (d,) = evaluate(index([rule()]), [e], NOW)
    assert d.postback_id == postback_id("r1", e.event_id)
    assert f"id={d.postback_id}" in d.url


def test_missing_value_renders_empty_or_drops_the_parameter() -> None:
    template = "https://a.example/p?c={campaign}&d={device_id}"
    (empty,) = evaluate(index([rule(url_template=template)]), [event(campaign=None)], NOW)
    assert empty.url == "https://a.example/p?c=&d=dev-1"
    (dropped,) = evaluate(index([rule(url_template=template, missing="drop")]), [event(campaign=None)], NOW)
    assert dropped.url == "https://a.example/p?d=dev-1"


def test_hash_modifiers_render_hex_digests() -> None:
    (d,) = evaluate(
        index([rule(url_template="https://a.example/p?h={sha1:device_id}&m={md5:device_id}")]),
        [event(device_id="abc")],
        NOW,
    )
    assert "h=a9993e364706816aba3e25717850c26c9cd0d89d" in d.url
    assert "m=900150983cd24fb0d6963f7d28e17f72" in d.url


def test_strip_privacy_renders_device_ids_empty() -> None:
    template = "https://a.example/p?g={advertising_id}&d={device_id}&ip={ip}&c={click_id}"
    (d,) = evaluate(index([rule(url_template=template)]), [event(is_lat=True, ip="1.2.3.4")], NOW)
    assert d.url == "https://a.example/p?g=&d=&ip=&c=c1"


def test_revenue_is_sent_only_when_the_rule_says_so() -> None:
    template = "https://a.example/p?r={revenue}&cur={currency}&v={event_value}&n={event_name}"
    e = event(
        event_type="in_app",
        event_name="af_purchase",
        event_revenue=2.99,
        event_revenue_currency="EUR",
        event_value='{"sku":"x"}',
    )
    base = {"event_types": ("in_app",), "url_template": template, "partner_event_map": {"af_purchase": "buy"}}
    (none,) = evaluate(index([rule(**base)]), [e], NOW)
    assert none.url == "https://a.example/p?r=&cur=&v=&n=buy"
    (values,) = evaluate(index([rule(**base, send_revenue="values_only")]), [e], NOW)
    assert "r=&cur=&v=%7B%22sku%22%3A%22x%22%7D" in values.url
    (both,) = evaluate(index([rule(**base, send_revenue="values_and_revenue")]), [e], NOW)
    assert "r=2.99&cur=EUR" in both.url


def test_body_values_are_json_escaped() -> None:
    import json

    r = rule(method="POST", body_template='{"click": "{click_id}", "ua": "{user_agent}"}')
    (d,) = evaluate(index([r]), [event(click_id='say "hi"\n', user_agent=None)], NOW)
    assert d.body is not None
    assert json.loads(d.body) == {"click": 'say "hi"\n', "ua": ""}
    assert d.headers["Content-Type"] == "application/json"


_EVERY_MACRO = (
    "https://a.example/p%41th/{click_id}?"
    + "&".join(f"{name}={{{name}}}" for name in sorted(MACROS))
    + "&h={sha1:device_id}&m={md5:idfa}&raw={raw:campaign}&lit=100%25"
)

_texts = st.none() | st.text(max_size=12)


@given(
    fields=st.fixed_dictionaries(
        {
            "click_id": _texts,
            "advertising_id": _texts,
            "idfa": _texts,
            "device_id": st.text(max_size=12),
            "campaign": _texts,
            "af_adset": _texts,
            "event_name": _texts,
            "event_value": _texts,
            "event_revenue": st.none() | st.floats(allow_nan=False),
            "event_revenue_currency": _texts,
            "is_retargeting": st.booleans(),
            "install_time": st.none() | st.integers(0, 2**41),
            "user_agent": _texts,
        }
    ),
    send_revenue=st.sampled_from(["none", "values_only", "values_and_revenue"]),
    strip=st.booleans(),
)
def test_the_one_pass_url_is_the_url_of_the_macro_values(
    fields: dict[str, object], send_revenue: str, strip: bool
) -> None:
    """render_event_url (what evaluate uses) renders exactly what macro_values + render_url render."""
    compiled = index([rule(url_template=_EVERY_MACRO, send_revenue=send_revenue)]).by_app["app1"][0]
    e = event(**fields)
    pid = postback_id("r1", e.event_id)
    values = macro_values(e, compiled, pid, strip=strip)
    assert render_event_url(e, compiled, pid, strip=strip) == render_url(
        compiled.url, values, drop_missing=False
    )


def test_each_rule_renders_through_its_own_compiled_url() -> None:
    """The compiled renderer is per rule object: a changed template or event-name map is never served from
    another rule's renderer, and a URL without macros (its '%' as written) renders as is."""
    e = event(event_type="in_app", event_name="af_purchase", click_id="c 1")
    first = index(
        [rule(event_types=("in_app",), url_template="https://a.example/x?n={event_name}&c={click_id}")]
    )
    mapped = index(
        [
            rule(
                event_types=("in_app",),
                url_template="https://a.example/x?n={event_name}&c={click_id}",
                partner_event_map={"af_purchase": "buy now"},
            )
        ]
    )
    plain = index([rule(event_types=("in_app",), url_template="https://b.example/100%25?fixed=%s")])
    for _ in range(2):  # the second time from the cache
        assert evaluate(first, [e], NOW)[0].url == "https://a.example/x?n=af_purchase&c=c%201"
        assert evaluate(mapped, [e], NOW)[0].url == "https://a.example/x?n=buy%20now&c=c%201"
        assert evaluate(plain, [e], NOW)[0].url == "https://b.example/100%25?fixed=%s"
