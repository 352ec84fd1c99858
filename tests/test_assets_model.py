"""The asset model without Prefect: @asset, keys, input inference, graph errors, selection, staleness."""

from __future__ import annotations

import re

import importlib.util
import textwrap
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

from prefect_assets import AssetContext, AssetKey, AssetsError, asset
from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.selection import select
from prefect_assets.assets.versions import graph_status
from prefect_assets.io_managers import MaterializationRecord


def keys(*names: str) -> set[AssetKey]:
    return {AssetKey.parse(n) for n in names}


def load_source(folder: Path, source: str) -> ModuleType:
    """Import ``source`` as a fresh module from a real file (code versions read the source)."""
    name = f"m_{uuid.uuid4().hex}"
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# A small shop, used by the inference, selection and staleness tests.

@asset(group="raw", tags={"source": "shop"})
def orders():
    return [1, 2, 3]


@asset(group="raw", tags={"source": "crm"})
def customers():
    return ["ann", "bob"]


@asset(group="raw")
def prices():
    return {"tea": 2.0}


@asset(group="clean")
def paid(orders, prices):
    return orders


@asset(group="clean")
def joined(paid, customers):
    return paid


@asset(key_prefix="reports", group="reports", tags={"team": "bi"})
def daily(paid):
    return paid


@asset(key_prefix="reports", group="reports", tags={"team": "bi"})
def by_country(joined):
    return joined


@asset(key_prefix="reports", group="reports", tags={"team": "finance"})
def kpis(context: AssetContext, reports__daily, prices):
    return {}


SHOP = [orders, customers, prices, paid, joined, daily, by_country, kpis]


@pytest.fixture(scope="module")
def shop() -> AssetGraph:
    return AssetGraph(SHOP)


# ---------------------------------------------------------------------------------------------
# @asset


def test_asset_options_are_kept_on_the_definition():
    class Limits(BaseModel):
        top: int = 3

    @asset(
        name="summary", key_prefix="a/b", group="g", io_manager="warehouse", format="json", retries=2,
        retry_delay_seconds=(1, 5), timeout_seconds=30, tags={"team": "bi"}, metadata={"owner": "me"},
        code_version="7", concurrency="db", config=Limits,
    )
    def fn(context, config, orders):
        """The docstring is not the description when one is given."""

    assert fn.key == AssetKey(("a", "b", "summary"))
    assert (fn.group, fn.io_manager, fn.format) == ("g", "warehouse", "json")
    assert (fn.retries, fn.retry_delay_seconds, fn.timeout_seconds) == (2, [1, 5], 30)
    assert fn.tags == {"team": "bi"} and fn.metadata == {"owner": "me"}
    assert (fn.code_version, fn.concurrency, fn.config_schema) == ("7", "db", Limits)
    # context and config are injected, not loaded from upstream assets
    assert fn.input_params == ("orders",)
    assert fn.wants_context


def test_asset_defaults_and_plain_call():
    @asset
    def total(numbers):
        """Sum of the numbers."""
        return sum(numbers)

    assert total.key == AssetKey(("total",))
    assert total.group == "default" and total.io_manager == "default"
    assert total.retries is None and total.timeout_seconds is None
    assert total.description == "Sum of the numbers."
    assert len(total.code_version) == 16
    assert total([1, 2]) == 3  # still a plain, unit-testable function


def test_key_prefix_as_list():
    @asset(key_prefix=["lake", "raw"])
    def events():
        return []

    assert str(events.key) == "lake/raw/events"


@pytest.mark.parametrize(
    ("options", "signature", "expected"),
    [
        ({"ins": {"source": "orders"}}, "def fn(orders): ...", "ins= names ['source']"),
        ({}, "def fn(*args): ...", "'args' is *args/**kwargs"),
        ({}, "def fn(orders, **rest): ...", "'rest' is *args/**kwargs"),
        ({}, "def fn(config): ...", "no config= model"),
        ({"config": dict}, "def fn(config): ...", "config= must be a pydantic model class"),
        ({"retries": -1}, "def fn(): ...", "retries must be a whole number >= 0, got -1"),
        ({"retries": 1.5}, "def fn(): ...", "retries must be a whole number >= 0, got 1.5"),
        ({"retries": True}, "def fn(): ...", "retries must be a whole number >= 0, got True"),
        ({"timeout_seconds": 0}, "def fn(): ...", "timeout_seconds must be a positive number, got 0"),
        ({"timeout_seconds": "5"}, "def fn(): ...", "timeout_seconds must be a positive number, got '5'"),
        ({"retry_delay_seconds": [1, -1]}, "def fn(): ...", "retry_delay_seconds must be a number >= 0"),
        ({"tags": {"team": 1}}, "def fn(): ...", "tags must map strings to strings"),
    ],
)
def test_decoration_time_errors_name_the_function(options, signature, expected):
    namespace: dict = {}
    exec(signature, namespace)  # noqa: S102 - a function with exactly this signature
    with pytest.raises(AssetsError) as raised:
        asset(**options)(namespace["fn"])
    assert expected in str(raised.value)
    assert "fn" in str(raised.value)


# ---------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize("written", ["reports/daily", "/reports/daily/", ("reports", "daily")])
def test_key_parsing(written):
    key = AssetKey.parse(written)
    assert key.parts == ("reports", "daily")
    assert str(key) == "reports/daily"
    assert key.name == "daily" and key.python_name == "reports__daily"
    assert AssetKey.parse(key) is key


def test_keys_are_values():
    assert AssetKey.parse("a/b") == AssetKey(("a", "b"))
    assert len({AssetKey.parse("a/b"), AssetKey(("a", "b"))}) == 1
    assert sorted([AssetKey.parse("b"), AssetKey.parse("a/z")]) == [AssetKey.parse("a/z"), AssetKey.parse("b")]


@pytest.mark.parametrize("bad", ["", "a//b", "a b", "1abc", ()])
def test_invalid_keys_are_user_errors(bad):
    with pytest.raises(AssetsError, match="at least one part|is not valid"):
        AssetKey.parse(bad)


# ---------------------------------------------------------------------------------------------
# Inputs


def test_inputs_by_last_part_and_by_full_key(shop):
    assert shop.nodes[AssetKey.parse("paid")].inputs == {"orders": AssetKey.parse("orders"), "prices": AssetKey.parse("prices")}
    kpis_node = shop.nodes[AssetKey.parse("reports/kpis")]
    assert kpis_node.inputs == {"reports__daily": AssetKey.parse("reports/daily"), "prices": AssetKey.parse("prices")}
    assert "context" not in kpis_node.inputs


def test_explicit_ins_map_any_parameter_name():
    @asset(ins={"src": "orders", "cust": customers})
    def report(src, cust):
        return src

    graph = AssetGraph([orders, customers, report])
    assert graph.nodes[report.key].inputs == {"src": orders.key, "cust": customers.key}


def test_deps_order_without_loading():
    @asset(deps=["orders", prices])
    def export():
        return None

    graph = AssetGraph([export, orders, prices])
    node = graph.nodes[export.key]
    assert node.inputs == {}
    assert node.upstream == {orders.key, prices.key}
    assert graph.toposort()[-1] == export.key


# ---------------------------------------------------------------------------------------------
# Code versions

ORIGINAL = '''
from prefect_assets import asset

@asset
def total(numbers):
    return sum(numbers) + 1
'''

SAME_LOGIC = '''
from prefect_assets import asset

# a comment above
@asset(group="moved", tags={"a": "b"})     # options are not code
def total(numbers):
    """A docstring, added later."""

    return  sum( numbers )+1   # reformatted, with a comment
'''

NEW_LOGIC = '''
from prefect_assets import asset

@asset
def total(numbers):
    return sum(numbers) + 2
'''


def test_code_version_ignores_comments_docstrings_and_whitespace(tmp_path):
    original = load_source(tmp_path, ORIGINAL).total.code_version
    assert load_source(tmp_path, SAME_LOGIC).total.code_version == original
    assert load_source(tmp_path, ORIGINAL).total.code_version == original  # stable across imports


def test_code_version_changes_with_the_logic(tmp_path):
    assert load_source(tmp_path, NEW_LOGIC).total.code_version != load_source(tmp_path, ORIGINAL).total.code_version


def test_explicit_code_version_wins(tmp_path):
    module = load_source(tmp_path, ORIGINAL.replace("@asset\n", "@asset(code_version='v3')\n"))
    assert module.total.code_version == "v3"


# ---------------------------------------------------------------------------------------------
# Graph errors


def test_cycle_error_shows_the_path():
    @asset
    def a(c):
        return c

    @asset
    def b(a):
        return a

    @asset
    def c(b):
        return b

    with pytest.raises(AssetsError) as raised:
        AssetGraph([a, b, c])
    message = str(raised.value)
    # data flows a -> b -> c -> a; any starting point, never the reverse direction
    assert any(path in message for path in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c")), message


def test_self_dependency_is_a_cycle():
    @asset
    def loop(loop):
        return loop

    with pytest.raises(AssetsError, match="loop -> loop"):
        AssetGraph([loop])


def test_unknown_input_names_asset_parameter_and_close_match():
    @asset
    def report(ordrs):
        return ordrs

    with pytest.raises(AssetsError) as raised:
        AssetGraph([orders, customers, report])
    message = str(raised.value)
    assert "asset 'report'" in message
    assert "parameter 'ordrs'" in message
    assert "did you mean 'orders'?" in message  # suggested once, not once per spelling
    assert "ins=" in message  # and the fix


def test_every_unknown_input_is_reported_at_once():
    @asset
    def one(ordrs):
        return ordrs

    @asset(deps=["custmers"])
    def two():
        return 2

    with pytest.raises(AssetsError) as raised:
        AssetGraph([orders, customers, one, two])
    assert "'ordrs'" in str(raised.value) and "'custmers'" in str(raised.value)


def test_ambiguous_last_part_asks_for_the_full_key():
    @asset(key_prefix="eu")
    def sales():
        return 1

    @asset(key_prefix="us", name="sales")
    def us_sales():
        return 2

    @asset
    def total(sales):
        return sales

    with pytest.raises(AssetsError) as raised:
        AssetGraph([sales, us_sales, total])
    assert "parameter 'sales' matches several assets" in str(raised.value)
    assert "'eu__sales'" in str(raised.value) and "'us__sales'" in str(raised.value)

    @asset
    def fixed(eu__sales, us__sales):
        return eu__sales + us__sales

    assert AssetGraph([sales, us_sales, fixed]).nodes[fixed.key].inputs == {
        "eu__sales": AssetKey.parse("eu/sales"), "us__sales": AssetKey.parse("us/sales"),
    }


def test_duplicate_key_names_both_definitions():
    @asset
    def orders():  # noqa: F811 - the duplicate is the point
        return []

    with pytest.raises(AssetsError) as raised:
        AssetGraph([globals()["orders"], orders])
    message = str(raised.value)
    assert "duplicate asset key 'orders'" in message
    first = f"{Path(__file__)}:{globals()['orders'].fn.__code__.co_firstlineno}"
    second = f"{Path(__file__)}:{orders.fn.__code__.co_firstlineno}"
    assert first in message and second in message and first != second


def test_toposort_puts_every_asset_after_its_upstream(shop):
    order = shop.toposort()
    assert len(order) == len(SHOP)
    for key in order:
        assert all(order.index(up) < order.index(key) for up in shop.upstream_of(key))


# ---------------------------------------------------------------------------------------------
# Selection


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*", [str(a.key) for a in SHOP]),
        ("orders", ["orders"]),
        ("reports/daily", ["reports/daily"]),
        ("daily", ["reports/daily"]),
        ("reports__daily", ["reports/daily"]),
        ("+paid", ["orders", "prices", "paid"]),
        ("paid+", ["paid", "joined", "reports/daily", "reports/by_country", "reports/kpis"]),
        ("1+reports/kpis", ["reports/kpis", "reports/daily", "prices"]),
        ("2+reports/kpis", ["reports/kpis", "reports/daily", "prices", "paid"]),
        ("orders+1", ["orders", "paid"]),
        ("orders+2", ["orders", "paid", "joined", "reports/daily"]),
        ("group:clean", ["paid", "joined"]),
        ("tag:team=bi", ["reports/daily", "reports/by_country"]),
        ("tag:team", ["reports/daily", "reports/by_country", "reports/kpis"]),
        ("orders, customers", ["orders", "customers"]),
        ("group:clean+", ["paid", "joined", "reports/daily", "reports/by_country", "reports/kpis"]),
        ("tag:source=crm, +reports/daily", ["customers", "orders", "prices", "paid", "reports/daily"]),
    ],
)
def test_selection(shop, expression, expected):
    selected = select(shop, expression)
    assert set(selected) == keys(*expected)
    assert selected == shop.toposort(selected)  # always in dependency order


def test_no_selection_is_everything(shop):
    assert select(shop, None) == shop.toposort()


@pytest.mark.parametrize("expression,problem", [
    ("", "is empty"), ("  ", "is empty"), (",", "has an empty term"), ("orders,,prices", "has an empty term"),
    ("orders,", "has an empty term"), (", orders", "has an empty term"), ("orders, ,prices", "has an empty term"),
])
def test_a_given_selection_that_is_empty_or_has_an_empty_term_is_an_error_never_everything(shop, expression, problem):
    with pytest.raises(AssetsError, match=f"selection {re.escape(repr(expression))} {problem}"):
        select(shop, expression)


def test_unknown_names_are_collected_into_one_error_with_suggestions(shop):
    with pytest.raises(AssetsError) as raised:
        select(shop, "ordrs, group:clen, tag:tem=bi, paid")
    message = str(raised.value)
    assert "no asset 'ordrs' (did you mean 'orders'?)" in message
    assert "no group 'clen' (did you mean 'clean'?)" in message
    assert "no asset tagged 'tem=bi' (did you mean 'team=bi'?)" in message


def test_ambiguous_name_in_a_selection_lists_the_full_keys():
    @asset(key_prefix="eu")
    def sales():
        return 1

    @asset(key_prefix="us", name="sales")
    def us_sales():
        return 2

    graph = AssetGraph([sales, us_sales])
    with pytest.raises(AssetsError) as raised:
        select(graph, "sales")
    assert "eu/sales" in str(raised.value) and "us/sales" in str(raised.value)
    assert select(graph, "us/sales") == [AssetKey.parse("us/sales")]


@pytest.mark.parametrize("expression", ["a+b", "++orders"])
def test_malformed_selection_terms(shop, expression):
    with pytest.raises(AssetsError, match="is not valid"):
        select(shop, expression)


# ---------------------------------------------------------------------------------------------
# Staleness


def record(key: str, code_version: str, data_version: str, **inputs: str) -> MaterializationRecord:
    return MaterializationRecord(
        key=key, partition=None, run_id=None, timestamp="2026-01-01T00:00:00+00:00", code_version=code_version,
        input_versions={k.replace("__", "/"): v for k, v in inputs.items()}, data_version=data_version,
        format="json", path=None, bytes=1, rows=None,
    )


def fresh_records(graph: AssetGraph) -> dict[AssetKey, MaterializationRecord]:
    """Records as if the whole graph had just been materialized: data version = key name."""
    records = {}
    for key in graph.toposort():
        node = graph.nodes[key]
        records[key] = record(
            str(key), node.definition.code_version, f"data-{key.python_name}",
            **{up.python_name: f"data-{up.python_name}" for up in node.upstream},
        )
    return records


def states(statuses) -> dict[str, str]:
    return {str(k): s.state for k, s in statuses.items()}


def test_never_materialized_is_missing(shop):
    statuses = graph_status(shop, {})
    assert set(states(statuses).values()) == {"missing"}
    assert str(statuses[orders.key]) == "missing (never materialized)"


def test_just_materialized_is_fresh(shop):
    assert set(states(graph_status(shop, fresh_records(shop))).values()) == {"fresh"}


def test_code_change_makes_an_asset_and_its_downstream_stale(shop):
    records = fresh_records(shop)
    records[paid.key] = record("paid", "old-code", "data-paid", orders="data-orders", prices="data-prices")
    statuses = graph_status(shop, records)
    assert statuses[paid.key].state == "stale"
    assert f"code version changed old-code -> {paid.code_version}" in statuses[paid.key].cause
    assert statuses[joined.key].cause == "upstream 'paid' is stale"
    assert statuses[kpis.key].cause == "upstream 'reports/daily' is stale"
    assert {k for k, v in states(statuses).items() if v == "fresh"} == {"orders", "customers", "prices"}


def test_new_upstream_data_makes_downstream_stale(shop):
    records = fresh_records(shop)
    records[customers.key] = record("customers", customers.code_version, "data-customers-v2")
    statuses = graph_status(shop, records)
    assert statuses[customers.key].state == "fresh"
    assert str(statuses[joined.key]) == "stale (upstream 'customers' has new data)"
    assert statuses[by_country.key].cause == "upstream 'joined' is stale"
    assert statuses[daily.key].state == "fresh"  # not downstream of customers


def test_missing_upstream_makes_downstream_stale(shop):
    records = fresh_records(shop)
    del records[prices.key]
    statuses = graph_status(shop, records, [paid.key])
    assert list(statuses) == [paid.key]  # only what was asked for
    assert statuses[paid.key].cause == "upstream 'prices' is missing"


def test_changed_dependencies_make_an_asset_stale(shop):
    records = fresh_records(shop)
    records[paid.key] = record("paid", paid.code_version, "data-paid", orders="data-orders")
    status = graph_status(shop, records)[paid.key]
    assert status.state == "stale" and status.cause.startswith("dependencies changed")
