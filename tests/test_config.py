"""prefect_assets.yaml: finding it, expanding ${VAR}, and one-line errors naming file, key and fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prefect_assets import AssetKey, AssetsError, Definitions
from prefect_assets.config import PROJECT_FILE, load_project
from prefect_assets.io_managers import OutputContext


def write_project(folder: Path, config: str, modules: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROJECT_FILE).write_text(textwrap.dedent(config))
    for name, source in (modules or {}).items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder


def config_error(folder: Path, config: str) -> str:
    write_project(folder, config)
    with pytest.raises(AssetsError) as raised:
        load_project(folder)
    message = str(raised.value)
    assert "\n" not in message
    assert str(folder / PROJECT_FILE) in message  # every config error names the file
    return message


def test_found_by_walking_up_from_the_working_directory(tmp_path, monkeypatch):
    root = write_project(tmp_path / "proj", "name: walked\n")
    deep = root / "src" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    project = load_project()
    assert project.config.name == "walked"
    assert project.root == root.resolve()
    assert project.file == (root / PROJECT_FILE).resolve()


def test_project_option_takes_a_folder_or_the_file(tmp_path, monkeypatch):
    root = write_project(tmp_path / "proj", "name: given\n")
    monkeypatch.chdir(tmp_path)
    assert load_project(root).config.name == "given"
    assert load_project(root / PROJECT_FILE).config.name == "given"


def test_no_project_file_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    with pytest.raises(AssetsError, match="no prefect_assets.yaml in .* --project DIR"):
        load_project()


def test_missing_project_folder(tmp_path):
    with pytest.raises(AssetsError, match="--project .*nowhere: no such file or directory"):
        load_project(tmp_path / "nowhere")


def test_defaults(tmp_path):
    project = load_project(write_project(tmp_path, "name: minimal\n"))
    config = project.config
    assert config.modules == ["assets"]
    assert config.io_managers["default"].base_uri == "./data"
    assert (config.runner.type, config.defaults.retries) == ("thread", 0)


def test_environment_variables_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("PA_TEST_BUCKET", "lake")
    monkeypatch.delenv("PA_TEST_UNSET", raising=False)
    monkeypatch.setenv("PA_TEST_EMPTY", "")
    write_project(tmp_path, """
        name: ${PA_TEST_UNSET:-shop}
        io_managers:
          default: {base_uri: "s3://${PA_TEST_BUCKET}/data"}
          other: {base_uri: "${PA_TEST_EMPTY:-./other}"}
        runner: {max_workers: "${PA_TEST_UNSET:-3}"}
    """)
    config = load_project(tmp_path).config
    assert config.name == "shop"
    assert config.io_managers["default"].base_uri == "s3://lake/data"
    # as in the shell, :- also covers a variable that is set but empty
    assert config.io_managers["other"].base_uri == "./other"
    assert config.runner.max_workers == 3  # expanded before validation, so types still apply


def test_unset_variable_names_file_key_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("PA_TEST_SECRET", raising=False)
    message = config_error(tmp_path, """
        io_managers:
          default: {base_uri: ./data, storage_options: {secret: "${PA_TEST_SECRET}"}}
    """)
    assert "io_managers.default.storage_options.secret" in message
    assert "PA_TEST_SECRET is not set" in message
    assert "${PA_TEST_SECRET:-default}" in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("modle: [assets]\n", "unknown key 'modle' (did you mean 'modules'?)"),
        ("runner: {type: thread, max_wrkers: 2}\n", "unknown key 'runner.max_wrkers' (did you mean 'max_workers'?)"),
        ("io_managers:\n  default: {base_uri: ./d, storage_option: {}}\n",
         "unknown key 'io_managers.default.storage_option' (did you mean 'storage_options'?)"),
    ],
)
def test_unknown_key_with_suggestion(tmp_path, config, expected):
    message = config_error(tmp_path, config)
    assert expected in message
    assert "remove it or fix its spelling" in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("runner: {max_workers: many}\n", "runner.max_workers"),
        ("runner: {type: thred}\n", "runner.type"),
        ("defaults: {retries: -1}\n", "defaults.retries"),
        ("modules: shop_assets\n", "modules"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, config, expected):
    message = config_error(tmp_path, config)
    assert f"{expected}: " in message
    assert "fix this value" in message


def test_invalid_yaml_names_file_and_line(tmp_path):
    message = config_error(tmp_path, "name: shop\nmodules: [assets\n")
    assert "line 3" in message and "not valid YAML" in message


def test_top_level_must_be_a_mapping(tmp_path):
    assert "top level is a list, not a mapping" in config_error(tmp_path, "- name\n- modules\n")


ASSETS = """
from prefect_assets import asset

@asset
def numbers():
    return [1, 2, 3]
"""


def test_relative_paths_resolve_against_the_project_not_the_cwd(tmp_path, monkeypatch):
    root = write_project(tmp_path / "proj", "name: p\nmodules: [pa_cfg_relative]\n"
                         "io_managers:\n  default: {base_uri: ./store}\n", {"pa_cfg_relative": ASSETS})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    defs = Definitions.load(root)  # modules import although the cwd is not the project
    assert [str(k) for k in defs.graph.keys] == ["numbers"]
    defs.io_managers["default"].handle_output(OutputContext(AssetKey.parse("numbers")), [1, 2, 3])
    assert (root / "store" / "numbers.json").is_file()
    assert not (elsewhere / "store").exists()
