"""Turbine 1.x aggregation rules, and exact cluster percentiles from summed histograms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quills.metrics import histogram
from quills.monitor.aggregator import BadDocument, ClusterAggregator, exact_percentiles


def _cmd(name: str = "get", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "HystrixCommand", "name": name, "group": "g", "currentTime": 1}
    doc.update(fields)
    return doc


def _only(agg: ClusterAggregator) -> dict[str, Any]:
    docs = agg.documents()
    assert len(docs) == 1
    return docs[0]


def test_integers_are_summed_and_reporting_hosts_counted() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(rollingCountSuccess=5, errorPercentage=10, reportingHosts=1))
    agg.update("b", _cmd(rollingCountSuccess=7, errorPercentage=30, reportingHosts=1))
    doc = _only(agg)
    assert doc["rollingCountSuccess"] == 12 and doc["errorPercentage"] == 40
    assert doc["reportingHosts"] == 2
    assert "currentTime" not in doc
    assert list(doc)[:2] == ["type", "name"]


def test_a_host_update_replaces_its_previous_values() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(rollingCountSuccess=5))
    agg.update("b", _cmd(rollingCountSuccess=7))
    agg.update("a", _cmd(rollingCountSuccess=1))
    assert _only(agg)["rollingCountSuccess"] == 8


def test_missing_reporting_hosts_counts_as_one_and_tiers_add_up() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd())
    agg.update("turbine-b", _cmd(reportingHosts=4))
    assert _only(agg)["reportingHosts"] == 5


def test_nested_maps_are_summed_key_by_key() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(latencyExecute={"50": 3, "99": 10}))
    agg.update("b", _cmd(latencyExecute={"50": 5, "99": 20, "100": 40}))
    assert _only(agg)["latencyExecute"] == {"50": 8, "99": 30, "100": 40}


def test_agreeing_strings_and_booleans_keep_their_value() -> None:
    agg = ClusterAggregator()
    for host in "abc":
        agg.update(host, _cmd(isCircuitBreakerOpen=False, propertyValue_executionIsolationStrategy="THREAD"))
    doc = _only(agg)
    assert doc["isCircuitBreakerOpen"] is False
    assert doc["propertyValue_executionIsolationStrategy"] == "THREAD"
    assert doc["group"] == "g"


def test_disagreeing_values_become_a_string_of_counts() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(isCircuitBreakerOpen=True))
    agg.update("b", _cmd(isCircuitBreakerOpen=False))
    agg.update("c", _cmd(isCircuitBreakerOpen=False))
    value = _only(agg)["isCircuitBreakerOpen"]
    assert isinstance(value, str)
    assert json.loads(value) == {"false": 2, "true": 1}
    agg.update("a", _cmd(isCircuitBreakerOpen=False))
    assert _only(agg)["isCircuitBreakerOpen"] is False


def test_floats_count_as_strings_as_in_turbine() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(ratio=0.5))
    agg.update("b", _cmd(ratio=0.5))
    assert _only(agg)["ratio"] == 0.5
    agg.update("b", _cmd(ratio=0.25))
    assert json.loads(_only(agg)["ratio"]) == {"0.25": 1, "0.5": 1}


def test_a_lost_host_is_subtracted_and_the_last_host_removes_the_document() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(rollingCountSuccess=5, isCircuitBreakerOpen=True, latencyExecute={"50": 2}))
    agg.update("b", _cmd(rollingCountSuccess=7, isCircuitBreakerOpen=False, latencyExecute={"50": 4}))
    assert agg.remove_host("a") is True
    doc = _only(agg)
    assert doc["rollingCountSuccess"] == 7 and doc["reportingHosts"] == 1
    assert doc["isCircuitBreakerOpen"] is False and doc["latencyExecute"] == {"50": 4}
    assert agg.remove_host("a") is False
    agg.remove_host("b")
    assert agg.documents() == []
    assert agg.hosts() == []


def test_negative_sums_are_shown_as_zero() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(x=-3))
    agg.update("b", _cmd(x=1))
    assert _only(agg)["x"] == 0


def test_types_and_names_are_aggregated_separately() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd("one", rollingCountSuccess=1))
    agg.update("a", _cmd("two", rollingCountSuccess=2))
    agg.update("a", {"type": "HystrixThreadPool", "name": "one", "currentActiveCount": 3})
    docs = {(d["type"], d["name"]): d for d in agg.documents()}
    assert docs[("HystrixCommand", "one")]["rollingCountSuccess"] == 1
    assert docs[("HystrixCommand", "two")]["rollingCountSuccess"] == 2
    assert docs[("HystrixThreadPool", "one")]["currentActiveCount"] == 3


@pytest.mark.parametrize(
    "doc", [[1, 2], "text", None, {"name": "x"}, {"type": "HystrixCommand"}, {"type": 3, "name": "x"}]
)
def test_documents_without_type_or_name_are_refused(doc: Any) -> None:
    agg = ClusterAggregator()
    with pytest.raises(BadDocument):
        agg.update("a", doc)
    assert agg.documents() == []


def test_status_and_meta_documents_are_ignored() -> None:
    agg = ClusterAggregator()
    assert agg.update("a", {"type": "quills_status", "name": "quills", "message": "no commands yet"}) is False
    assert agg.update("a", {"type": "meta", "name": "meta", "reportingHostsLast10Seconds": 3}) is False
    assert agg.documents() == []


def test_documents_since_a_version_lists_only_changes() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd("one", rollingCountSuccess=1))
    agg.update("a", _cmd("two", rollingCountSuccess=1))
    version = agg.version
    agg.update("a", _cmd("one", rollingCountSuccess=1, currentTime=99))  # only the time moved
    assert agg.documents(version) == []
    agg.update("a", _cmd("two", rollingCountSuccess=2))
    assert [d["name"] for d in agg.documents(version)] == ["two"]


def _dense(buckets: dict[int, int]) -> list[int]:
    dense = [0] * histogram.SIZE
    histogram.add_sparse(dense, buckets)
    return dense


def test_cluster_percentiles_are_exact_from_summed_histograms() -> None:
    fast = {histogram.index_of(us): 100 for us in (900, 1_000, 1_100)}  # ~1 ms
    slow = {histogram.index_of(us): 3 for us in (200_000, 250_000)}  # ~200-250 ms, few calls
    agg = ClusterAggregator()
    agg.update("a", _cmd(quills_latencyExecute_hist={str(k): v for k, v in fast.items()}))
    agg.update("b", _cmd(quills_latencyExecute_hist={str(k): v for k, v in slow.items()}))
    doc = _only(agg)
    merged = {**fast}
    for key, value in slow.items():
        merged[key] = merged.get(key, 0) + value
    expected = histogram.percentiles(_dense(merged), [0, 50, 99, 99.5, 100])
    got = doc["quills_latencyExecute"]
    tick_ms = 1024 / 1e6
    assert [got[k] for k in ("0", "50", "99", "99.5", "100")] == [round(v * tick_ms) for v in expected]
    # an average of the two hosts' percentiles (what Turbine shows) would put p50 near 100 ms
    assert got["50"] == 1 and 250 <= got["100"] <= 260
    assert sum(doc["quills_latencyExecute_hist"].values()) == 306
    assert doc["quills_latencyExecute_mean"] == round(histogram.mean_of(_dense(merged)) * tick_ms)


def test_exact_percentiles_of_an_empty_histogram_are_zero() -> None:
    values, mean = exact_percentiles({})
    assert set(values.values()) == {0} and len(values) == 9 and mean == 0


HOSTS = st.sampled_from(["a", "b", "c"])
DOCS = st.fixed_dictionaries(
    {
        "type": st.just("HystrixCommand"),
        "name": st.sampled_from(["x", "y"]),
        "n": st.integers(0, 50),
        "m": st.dictionaries(st.sampled_from(["50", "99"]), st.integers(0, 9), max_size=2),
        "s": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.tuples(HOSTS, DOCS), st.tuples(HOSTS, st.none())), max_size=40))
def test_incremental_state_equals_recomputing_from_each_hosts_last_document(
    steps: list[tuple[str, dict[str, Any] | None]],
) -> None:
    agg = ClusterAggregator()
    last: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
    for host, doc in steps:
        if doc is None:
            agg.remove_host(host)
            last.pop(host, None)
        else:
            agg.update(host, doc)
            last.setdefault(host, {})[(doc["type"], doc["name"])] = doc
    got = {(d["type"], d["name"]): d for d in agg.documents()}
    expected_keys = {key for per_host in last.values() for key in per_host}
    assert set(got) == expected_keys
    for key in expected_keys:
        docs = [per_host[key] for per_host in last.values() if key in per_host]
        assert got[key]["n"] == sum(d["n"] for d in docs)
        assert got[key]["reportingHosts"] == len(docs)
        for sub in ("50", "99"):
            assert got[key]["m"].get(sub, 0) == sum(d["m"].get(sub, 0) for d in docs)
        values = {d["s"] for d in docs}
        if len(values) == 1:
            assert got[key]["s"] is values.pop()
        else:
            counts = json.loads(got[key]["s"])
            assert counts == {"true": sum(d["s"] for d in docs), "false": sum(not d["s"] for d in docs)}


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)
ANY_DOC = st.builds(
    lambda name, fields: {"type": "HystrixCommand", "name": name, **fields},
    st.sampled_from(["x", "y"]),
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "reportingHosts", "currentTime"]), JSON_VALUES, max_size=5
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(HOSTS, st.one_of(ANY_DOC, st.none())), max_size=30))
def test_any_json_values_never_break_the_state_and_leaving_hosts_empty_it(
    steps: list[tuple[str, dict[str, Any] | None]],
) -> None:
    agg = ClusterAggregator()
    for host, doc in steps:
        if doc is None:
            agg.remove_host(host)
        else:
            agg.update(host, doc)
        for out in agg.documents():
            json.dumps(out)  # always serializable
    for host in "abc":
        agg.remove_host(host)
    assert agg.documents() == []


def test_values_equal_in_python_but_not_on_the_wire_are_counted_apart() -> None:
    agg = ClusterAggregator()
    agg.update("a", _cmd(flag=True))
    agg.update("b", _cmd(flag=1.0))
    assert json.loads(_only(agg)["flag"]) == {"true": 1, "1.0": 1}
    agg.remove_host("a")
    assert _only(agg)["flag"] == 1.0 and not isinstance(_only(agg)["flag"], bool)
