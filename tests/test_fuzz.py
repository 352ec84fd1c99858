"""Fuzzing the three parsers a user types into: selections, keys and partitions, the project file.

The property is the contract of :mod:`prefect_assets.errors`: whatever the input, a parser
either returns a value or raises :class:`AssetsError` with one line; any other exception (a
``KeyError``, a ``RecursionError``, a PyYAML or pydantic error) is a bug, because the CLI
would show it as a traceback instead of a message with exit code 2. Random text rarely gets
past the first check of a parser, so the strategies also build *near misses*: real asset
names mixed with grammar tokens, YAML documents with the right keys and the wrong values.

Each bug the fuzzing found is pinned by an ``@example`` or a plain test at the end.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prefect_assets import AssetKey, AssetsError, asset
from prefect_assets.assets.graph import AssetGraph
from prefect_assets.assets.keys import check_partition_key
from prefect_assets.assets.selection import select
from prefect_assets.config import PROJECT_FILE, ProjectConfig, expand_env, load_project, parse_config

# No example database: a failure prints its input, which becomes an @example below; the
# working tree stays free of a .hypothesis folder.
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_FILES = settings(FUZZ, max_examples=150)


def assert_one_line_error(error: AssetsError) -> str:
    """The CLI prints a user error as one line: no raw newline may come from the input."""
    message = str(error)
    assert message and "\n" not in message and "\r" not in message, message
    return message


# ---------------------------------------------------------------------------------------------
# A small fixed graph: prefixes, groups, tags, and a last part two assets share.

@asset(group="raw", tags={"source": "shop"})
def orders():
    return []


@asset(group="raw", tags={"source": "crm"})
def customers():
    return []


@asset(group="clean")
def paid(orders):
    return orders


@asset(key_prefix="reports", group="reports", tags={"team": "bi"})
def daily(paid, customers):
    return paid


@asset(key_prefix="archive", name="daily", group="reports")
def archive_daily(reports__daily):
    return reports__daily


GRAPH = AssetGraph([orders, customers, paid, daily, archive_daily])

# ---------------------------------------------------------------------------------------------
# Selections

NAMES = ["orders", "customers", "paid", "reports/daily", "reports__daily", "archive/daily", "daily"]
NEAR_MISSES = ["ordrs", "ORDERS", "reports/", "/reports", "a//b", "/", "//", "1abc", "a b", "é", "reports/dialy"]
TOKENS = [
    "*", "+", "++", ",", " ", "  ", "\t", "\n", "\x00", "\u2028", "\u00a0", "=", ":", '"', "'",
    "group:", "group:raw", "group:reports", "tag:", "tag:team", "tag:team=bi", "tag:source=", "tag:=",
    'key:"', 'key:"reports/daily"', "key:raw_*", "key:", "and", "or", "not", "(", ")", "sinks(", "roots(",
    "0", "1", "2", "\u0663", "\u00b2", "9" * 30,
]

tokens = st.one_of(
    st.sampled_from(NAMES + NEAR_MISSES + TOKENS),
    st.text(min_size=1, max_size=3),
    st.integers(min_value=0, max_value=10**40).map(str),
)
token_expressions = st.builds(
    lambda parts, sep: sep.join(parts), st.lists(tokens, min_size=1, max_size=10), st.sampled_from(["", " ", ","])
)


def _wrap(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: f"{a}, {b}", inner, inner),
        st.builds(lambda a, op, b: f"({a}) {op} ({b})", inner, st.sampled_from(["and", "or", "and not"]), inner),
        st.builds(lambda fn, a: f"{fn}({a})", st.sampled_from(["sinks", "roots", "not "]), inner),
        st.builds(lambda d, a: f"{d}+{a}", st.sampled_from(["", "1", "2", "007", "1" * 5000]), inner),
        st.builds(lambda a, d: f"{a}+{d}", inner, st.sampled_from(["", "1", "3"])),
    )


grammar_expressions = st.recursive(st.sampled_from(NAMES + NEAR_MISSES + ["*", "group:raw", "tag:team"]), _wrap,
                                   max_leaves=8)
selections = st.one_of(st.text(max_size=40), token_expressions, grammar_expressions)


@FUZZ
@given(selections)
@example("1" * 5000 + "+orders")  # bug: int() refuses more than 4300 digits (ValueError)
@example("paid+" + "9" * 5000)
@example("ord\nrs")  # bug: the unknown name was quoted raw, so the message broke over two lines
@example("group:r\naw, tag:t\neam")
def test_selection_parses_or_raises_assets_error(expression):
    try:
        selected = select(GRAPH, expression)
    except AssetsError as error:
        assert_one_line_error(error)
        return
    assert selected, "a selection that parses selects something (an empty one is an error)"
    assert len(set(selected)) == len(selected)
    assert set(selected) <= set(GRAPH.nodes)
    assert selected == GRAPH.toposort(selected)


@FUZZ
@given(st.sampled_from([n for n in NAMES if n != "daily"] + ["*", "group:raw", "tag:team=bi"]),
       st.integers(0, 3), st.integers(0, 3))
def test_depth_limits_only_narrow(core, up, down):
    """``N+key`` stays within ``+key``: a depth bounds the walk, it never adds assets."""
    assert set(select(GRAPH, f"{up}+{core}")) <= set(select(GRAPH, f"+{core}"))
    assert set(select(GRAPH, f"{core}+{down}")) <= set(select(GRAPH, f"{core}+"))


# ---------------------------------------------------------------------------------------------
# Keys and partition keys

VALID_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
key_texts = st.one_of(
    st.text(max_size=20),
    st.lists(st.sampled_from(["a", "b_1", "x-y", "", " ", "1", "é", "\n", "/", "a\n", "_"]), max_size=4).map("/".join),
    st.from_regex(r"/?([A-Za-z_][A-Za-z0-9_-]{0,4}/){0,3}[A-Za-z_][A-Za-z0-9_-]{0,4}/?\n?", fullmatch=True),
)
key_objects = st.one_of(
    key_texts,
    st.lists(key_texts, max_size=3),
    st.lists(key_texts, max_size=3).map(tuple),
    st.lists(st.one_of(st.integers(), st.none(), st.binary(max_size=3), key_texts), max_size=3),
    st.integers(), st.floats(), st.none(), st.booleans(), st.binary(max_size=5),
    st.dictionaries(key_texts, st.integers(), max_size=2),
)


@FUZZ
@given(key_objects)
@example("orders\n")  # bug: `$` matched before a trailing newline, so a key part could end with one
@example(("a", "b\n"))
@example(3)  # bug: deps=[3] raised TypeError ('int' object is not iterable)
@example(None)
@example([None])
def test_key_parses_or_raises_assets_error(value):
    try:
        key = AssetKey.parse(value)
    except AssetsError as error:
        assert_one_line_error(error)
        return
    assert key.parts and all(isinstance(p, str) and VALID_PART.fullmatch(p) for p in key.parts)
    assert AssetKey.parse(str(key)) == key  # the written form round-trips
    if isinstance(value, str):
        assert str(key) == value.strip("/")


partition_texts = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=string.ascii_letters + string.digits + "-_:.| /\\*?[]\x00\x7f\x85\ud800", max_size=10),
    st.sampled_from(["2026-01-05", ".", "..", "a..b", " x", "x ", "a|b", "2026-01-05|eu"]),
)


@FUZZ
@given(st.one_of(partition_texts, st.integers(), st.none(), st.binary(max_size=4), st.lists(st.text(max_size=2))))
@example("\x85")  # bug: C1 control characters (here NEL, a line break) passed the control-character check
@example("\ud800")  # bug: a lone surrogate passed, then writing its file raised UnicodeEncodeError
@example("x\udcff")
def test_partition_key_is_one_storable_path_segment_or_raises(value):
    try:
        accepted = check_partition_key(value)
    except AssetsError as error:
        assert_one_line_error(error)
        return
    assert accepted is value
    assert accepted and accepted not in (".", "..") and ".." not in accepted
    assert not set(accepted) & set("/\\*?[]")
    assert accepted == accepted.strip()
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in accepted)
    accepted.encode("utf-8")  # file systems and S3 take UTF-8 names


# ---------------------------------------------------------------------------------------------
# The project file

ENV = {"PA_FUZZ_SET": "value", "PA_FUZZ_EMPTY": ""}


@contextmanager
def fuzz_env() -> Iterator[None]:
    """``PA_FUZZ_SET`` and ``PA_FUZZ_EMPTY`` set, ``PA_FUZZ_UNSET`` not (a function-scoped
    ``monkeypatch`` would be shared by all examples of a test)."""
    with mock.patch.dict(os.environ, ENV):
        os.environ.pop("PA_FUZZ_UNSET", None)
        yield


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


env_strings = st.one_of(
    st.text(max_size=10),
    st.sampled_from([
        "${PA_FUZZ_SET}", "${PA_FUZZ_UNSET}", "${PA_FUZZ_EMPTY}", "${PA_FUZZ_UNSET:-x}", "${PA_FUZZ_EMPTY:-d}",
        "${PA_FUZZ_SET:-}", "${", "${}", "${1X}", "${PA_FUZZ_SET", "$PA_FUZZ_SET", "${A:-${B}}", "${:-x}", "}",
        "s3://lake/${PA_FUZZ_SET}/x", "./data", "thread", "process", "dask", "ray", "assets", "",
    ]),
)
scalars = st.one_of(env_strings, st.integers(-3, 10**20), st.floats(), st.booleans(), st.none())
FIELDS = {
    None: ["name", "modules", "io_managers", "runner", "defaults", "concurrency_limits", "deployments", "modle"],
    "io_manager": ["type", "base_uri", "storage_options", "allow_pickle", "options", "base_url"],
    "runner": ["type", "max_workers", "address", "max_wrkers"],
    "defaults": ["retries", "retry_delay_seconds", "timeout_seconds", "retry"],
}


def mappings(fields: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.one_of(st.sampled_from(fields), st.text(max_size=5)), values, max_size=4)


yaml_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(env_strings, inner, max_size=3)),
    max_leaves=10,
)
io_manager = mappings(FIELDS["io_manager"], st.one_of(yaml_values, st.dictionaries(st.text(max_size=5), env_strings)))
config_dicts = st.fixed_dictionaries(
    {},
    optional={
        "name": yaml_values,
        "modules": st.one_of(st.lists(env_strings, max_size=3), yaml_values),
        "io_managers": st.one_of(st.dictionaries(st.sampled_from(["default", "warehouse", ""]), io_manager,
                                                 max_size=2), yaml_values),
        "runner": st.one_of(mappings(FIELDS["runner"], scalars), yaml_values),
        "defaults": st.one_of(mappings(FIELDS["defaults"], st.one_of(scalars, st.lists(scalars, max_size=2))),
                              yaml_values),
        "concurrency_limits": st.one_of(st.dictionaries(st.text(max_size=4), scalars, max_size=2), yaml_values),
        "deployments": st.one_of(st.lists(st.dictionaries(st.text(max_size=4), yaml_values, max_size=2)), yaml_values),
        "modle": scalars,
    },
)
config_objects = st.one_of(config_dicts, mappings(FIELDS[None], yaml_values), yaml_values)


@FUZZ
@given(config_objects)
@example({"io_managers": {"a\nb": {"base_uri": 1}}, "m\x00dle": 1})  # bug: a key's newline broke the message
@example({"name": "${PA_FUZZ_UNSET}", "x\ny": {"z": "${PA_FUZZ_UNSET}"}})
@example({"io_managers": {"default": {"storage_options": {"secret": "SECRET-123"}}, "bad": 1}})
@example({"io_managers": [{"base_uri": "s3://x", "storage_options": {"secret": "SECRET-123"}}]})
def test_config_mapping_validates_or_raises_assets_error(raw):
    with fuzz_env():
        try:
            config = parse_config(raw, source="fuzz.yaml")
        except AssetsError as error:
            message = assert_one_line_error(error)
            assert message.startswith("fuzz.yaml: ")
            assert "SECRET-" not in message, "storage_options may hold credentials; errors never echo them"
            return
    assert isinstance(config, ProjectConfig)
    assert "default" in config.io_managers


@FUZZ
@given(st.text(max_size=30))
def test_text_without_placeholders_is_not_expanded(text):
    if "${" not in text:
        assert expand_env(text, "fuzz.yaml") == text


@FUZZ
@given(st.lists(st.sampled_from(["PA_FUZZ_SET", "PA_FUZZ_UNSET", "PA_FUZZ_EMPTY"]), max_size=3),
       st.text(alphabet=string.ascii_letters + "/.:", max_size=6))
def test_placeholders_expand_like_the_shell(names, default):
    with fuzz_env():
        text = "".join(f"${{{n}:-{default}}}" for n in names)
        assert expand_env(text, "fuzz.yaml") == "".join(os.environ.get(n) or default for n in names)


YAML_FRAGMENTS = [
    "name: shop\n", "modules: [assets]\n", "modules: &m [*m]\n", "a: &a {b: *a}\n", "runner: {type: thread}\n",
    "io_managers:\n  default: {base_uri: ./data}\n", "defaults: {retries: -1}\n", "---\n", "...\n", "%YAML 1.1\n",
    "name: !!python/object:os.system x\n", "name: !!binary aGk=\n", "name: !!set {a, b}\n", "name: 2026-01-05\n",
    "? [a, b]\n: c\n", "\t- x\n", "name: 'unterminated\n", "\x00", "\x07", "\ufeff", "\x85", "- a\n", "42\n", "null\n",
    "modules: [${PA_FUZZ_UNSET}]\n", "name: ${\n", "name: '${PA_FUZZ_SET:-x}'\n", "{", "[", "]", ": :", "&", "*x\n",
]
yaml_documents = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(YAML_FRAGMENTS), min_size=1, max_size=5).map("".join),
    config_objects.map(lambda raw: yaml.safe_dump(raw, allow_unicode=True)),
    st.integers(1, 800).map(lambda depth: "modules: " + "[" * depth + "]" * depth + "\n"),
    st.integers(1, 1500).map(lambda depth: "deployments:\n" + "- " * depth + "x\n"),
)


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_project")


def _assert_load_project(folder: Path) -> None:
    with fuzz_env():
        try:
            load_project(folder)
        except AssetsError as error:
            assert str(folder / PROJECT_FILE) in assert_one_line_error(error)


@FUZZ_FILES
@given(yaml_documents)
@example("modules: &m [*m]\n")  # bug: the alias makes a list that holds itself; expanding it hit RecursionError
@example("modules: " + "[" * 800 + "]" * 800 + "\n")  # bug: PyYAML's constructor hit RecursionError
@example("name: a\x07b\n")  # bug: PyYAML's ReaderError printed over two lines
@example("\x00")
def test_project_file_loads_or_raises_assets_error(project_dir, document):
    (project_dir / PROJECT_FILE).write_text(document, encoding="utf-8")
    _assert_load_project(project_dir)


@FUZZ_FILES
@given(st.one_of(st.binary(max_size=40), st.text(max_size=20).map(lambda t: t.encode("utf-16"))))
@example(b"name: caf\xe9\n")  # bug: a Latin-1 file raised UnicodeDecodeError
def test_project_file_bytes_load_or_raise_assets_error(project_dir, data):
    (project_dir / PROJECT_FILE).write_bytes(data)
    _assert_load_project(project_dir)


# ---------------------------------------------------------------------------------------------
# The bugs the fuzzing found, as plain examples with the messages they now give.


def test_a_huge_depth_means_every_level():
    assert select(GRAPH, "1" * 5000 + "+paid") == select(GRAPH, "+paid")
    assert select(GRAPH, "0001+paid") == select(GRAPH, "1+paid")


def test_selection_errors_escape_line_breaks_in_names():
    with pytest.raises(AssetsError) as raised:
        select(GRAPH, "ord\nrs, group:r\naw")
    assert "no asset 'ord\\nrs' (did you mean 'orders'?)" in assert_one_line_error(raised.value)
    assert "no group 'r\\naw'" in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("orders\n", "asset key part 'orders\\n' is not valid"),
    (3, "asset key 3 is not valid: write it as 'a/b' or a sequence of parts"),
    (None, "asset key None is not valid"),
])
def test_key_mistakes_are_user_errors(value, expected):
    with pytest.raises(AssetsError, match=re.escape(expected)):
        AssetKey.parse(value)


@pytest.mark.parametrize(("value", "expected"), [
    ("a\x85b", "it contains a control character"),
    ("x\udcff", "it contains a lone surrogate (bytes that were not UTF-8)"),
])
def test_partition_keys_no_file_name_can_hold(value, expected):
    with pytest.raises(AssetsError, match=re.escape(expected)):
        check_partition_key(value)


def test_config_too_deep_or_holding_itself(project_dir):
    with pytest.raises(AssetsError, match="nested too deeply or holds itself"):
        parse_config({"deployments": nested_list(3000)}, source="fuzz.yaml")
    for document in ["modules: &m [*m]\n", "modules: " + "[" * 800 + "]" * 800 + "\n"]:
        (project_dir / PROJECT_FILE).write_text(document, encoding="utf-8")
        with pytest.raises(AssetsError, match="nested too deeply or holds itself"):
            load_project(project_dir)


def test_config_errors_never_echo_storage_options_nested_in_a_wrong_type():
    with pytest.raises(AssetsError) as raised:
        parse_config({"io_managers": [{"storage_options": {"secret": "SECRET-1"}}]}, source="fuzz.yaml")
    assert str(raised.value) == "fuzz.yaml: io_managers: Input should be a valid dictionary; fix this value"


def test_config_key_paths_escape_line_breaks():
    with pytest.raises(AssetsError) as raised:
        parse_config({"io_managers": {"a\nb": {"base_uri": 1}}}, source="fuzz.yaml")
    assert "io_managers.a\\nb.base_uri: Input should be a valid string" in assert_one_line_error(raised.value)


@pytest.mark.parametrize(("data", "expected"), [
    (b"name: caf\xe9\n", "byte 9 is not UTF-8 (invalid continuation byte); save the file as UTF-8"),
    (b"name: ok\nx: a\x07b\n", "line 2 is not valid YAML (special characters are not allowed: U+0007)"),
])
def test_project_file_encoding_and_character_errors(project_dir, data, expected):
    (project_dir / PROJECT_FILE).write_bytes(data)
    with pytest.raises(AssetsError) as raised:
        load_project(project_dir)
    assert expected in assert_one_line_error(raised.value)
