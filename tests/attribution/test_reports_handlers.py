"""Reports decisions without I/O: folding batches, reading queries, and data_complete_until."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from quills.attribution.reports.freshness import Bounds, Completeness
from quills.attribution.reports.handlers import (
    fold,
    parse_query,
    row_hash,
    row_text,
    split_row_text,
    text_hash,
)
from quills.attribution.reports.messages import ReportQuery, RowKey
from quills.attribution.reports.sketch import device_digest
from quills.streams import Batch

from .helpers import HOUR, T0, view


def test_fold_sums_per_row_keeps_distinct_devices_and_puts_late_events_in_their_hour() -> None:
    batch = Batch(
        "x",
        [
            view(),
            view(device_id="d2"),
            view(device_id="d1"),
            view(event_time=T0 - 30 * HOUR),  # late: its own hour
            view(event_type="in_app", event_name="AF_Purchase", event_revenue_usd=2.99),
            view(event_type="in_app", event_name="af_purchase", event_revenue_usd=-0.99),
        ],
    )
    result = fold(batch)
    rows = {key: (events, micros) for key, (events, micros, _) in result.rows.items()}
    now_session = ("a", T0 // HOUR, "ios", "organic", "", "ZZ", "session", "")
    assert rows[now_session] == (3, 0)
    assert rows[("a", T0 // HOUR - 30, "ios", "organic", "", "ZZ", "session", "")] == (1, 0)
    assert rows[("a", T0 // HOUR, "ios", "organic", "", "ZZ", "in_app", "af_purchase")] == (2, 2_000_000)
    digests = result.rows[now_session][2]
    assert sorted(digests[i : i + 8] for i in range(0, len(digests), 8)) == sorted(
        [device_digest("d1"), device_digest("d2")]
    )


def test_row_hashes_are_stable_and_fit_a_signed_bigint() -> None:
    key = ("a", 1, "ios", "organic", "", "ZZ", "session", "")
    assert row_hash(key) == row_hash(key) and 0 <= row_hash(key) < 2**63
    assert row_hash(key) != row_hash(("a", 2, "ios", "organic", "", "ZZ", "session", ""))
    # pinned: stored rows are found again by this hash after an upgrade or on another machine
    assert row_hash(key) == 7072539561858330636
    assert device_digest("d1").hex() == "52f1c0879978e392"


TODAY = dt.date(2026, 11, 22)


def test_a_valid_query() -> None:
    query = parse_query(
        {
            "app_id": "a",
            "from": "2026-11-01",
            "to": "2026-11-22",
            "group_by": "date,country",
            "timezone": "+08:00",
        },
        today=TODAY,
    )
    assert query == ReportQuery(
        app_id="a",
        first_day=dt.date(2026, 11, 1),
        last_day=TODAY,
        group_by=("date", "country"),
        offset_hours=8,
        format="json",
    )


def test_every_bad_parameter_is_reported() -> None:
    errors = parse_query(
        {
            "from": "2026-13-01",
            "to": "yesterday",
            "group_by": "date,nope,date",
            "timezone": "+05:30",
            "format": "xml",
            "limit": "3",
        },
        today=TODAY,
    )
    assert isinstance(errors, list)
    assert {p for p, _ in errors} == {"from", "to", "group_by", "timezone", "format", "limit"}
    too_long = parse_query({"from": "2026-01-01", "to": "2026-03-01"}, today=TODAY)
    assert too_long == [("to", "a report covers at most 31 days")]


def test_data_complete_until_is_the_latest_probe_whose_sequences_are_all_stored() -> None:
    clock = [1000]
    last = {"S": 10}
    stored: dict[str, str] = {}

    async def bounds() -> Bounds:
        return {"S": (1, last["S"])}

    def positions() -> Mapping[str, str]:
        return stored

    completeness = Completeness(bounds, positions, now_ms=lambda: clock[0])

    async def scenario() -> None:
        await completeness.probe()  # t=1000: 10 in the stream, none stored
        assert completeness.complete_until_ms is None
        clock[0], last["S"] = 2000, 20
        stored["S"] = "[[1,10]]"
        await completeness.probe()  # t=2000: 20 in the stream, 1..10 stored -> complete until 1000
        assert completeness.complete_until_ms == 1000
        clock[0] = 3000
        stored["S"] = "[[1,20]]"
        await completeness.probe()
        assert completeness.complete_until_ms == 3000
        assert completeness.lag_seconds() == 0.0

    asyncio.run(scenario())


_PART = st.text(alphabet=st.characters(codec="utf-8") | st.just("\x1f"), max_size=8)


@given(
    key=st.tuples(_PART, st.integers(0, 10**7), _PART, _PART, _PART, _PART, _PART, _PART),
)
def test_a_row_key_as_text_splits_back_into_its_parts(key: RowKey) -> None:
    """Property: the text of a key splits back into the key (a part's own U+001F read as U+FFFD), and
    a key without U+001F keeps the text (and so the row hash) it always had."""
    text = row_text(key)
    clean = tuple(p.replace("\x1f", "\ufffd") if isinstance(p, str) else p for p in key)
    assert split_row_text(text) == clean
    if clean == key:
        assert text == "\x1f".join(map(str, key))
        assert row_hash(key) == text_hash(text)
