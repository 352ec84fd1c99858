"""Credentials never leak: not in CLI output, errors, records, logs or the Prefect artifact.

The backend here is the worst case: an fsspec filesystem (registered by the project itself)
whose error messages quote its own key and secret, in plain text and inside a signed URL, as
careless backends do. Whatever prefect-assets shows, stores or sends to Prefect must hold
neither. (tests/test_s3.py does the same with real S3 and a server that checks signatures.)
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from prefect_assets import Definitions, materialize
from prefect_assets.errors import AssetsError
from prefect_assets.io_managers import FsspecIOManager
from prefect_assets.io_managers.secrets import Redactor, redact_uri, storage_error
from tests.conftest import run_cli
from tests.prefect_output import prefect_texts

KEY = "AKIALEAKYKEY0001"
SECRET = "leaky/Secret+Value=42"
MARKERS = (KEY, SECRET, quote(SECRET, safe=""), "Secret+Value")

LEAKY_BACKEND = '''
"""A storage backend whose errors quote its credentials, as careless ones do."""
import fsspec
from fsspec.implementations.memory import MemoryFileSystem


class LeakyFileSystem(MemoryFileSystem):
    protocol = "leaky"
    store = {}          # not shared with memory://
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(str(path).removeprefix("leaky://"))

    def _complain(self, what):
        opts = self.storage_options
        message = (f"{what} refused for key={opts['key']} secret={opts['secret']}; "
                   f"see https://account.example/x?sig={opts['secret']}")
        raise PermissionError(message) if opts.get("failing") == "deny" else OSError(message)

    def cat_file(self, path, start=None, end=None, **kwargs):
        if self.storage_options.get("failing") == "deny":
            self._complain(f"read {path}")
        return super().cat_file(path, start, end, **kwargs)

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode or self.storage_options.get("failing") == "deny":
            self._complain(f"open {path} ({mode})")
        return super()._open(path, mode, **kwargs)

    def pipe_file(self, path, value, **kwargs):
        self._complain(f"upload {path}")

    def rm_file(self, path):
        if self.storage_options.get("failing") == "deny":
            self._complain(f"delete {path}")
        return super().rm_file(path)


fsspec.register_implementation("leaky", LeakyFileSystem, clobber=True)
'''


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for marker in MARKERS:
            assert marker not in text, f"secret {marker!r} leaked in:\n{text}"


def leaky_project(project: Path, mode: str) -> Path:
    """The example, with ``prices`` stored on the leaky backend in ``mode`` (deny | write)."""
    (project / "leaky_storage.py").write_text(LEAKY_BACKEND)
    config_file = project / "prefect_assets.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["modules"] = ["leaky_storage", *config["modules"]]  # registers the protocol first
    config["io_managers"]["vault"] = {"base_uri": "leaky://bucket/shop",
                                      "storage_options": {"key": "${VAULT_KEY}", "secret": "${VAULT_SECRET}",
                                                          "failing": mode}}
    config_file.write_text(yaml.safe_dump(config))
    raw = project / "shop_assets" / "raw.py"
    raw.write_text(raw.read_text().replace('@asset(group="raw")\ndef prices(', '@asset(group="raw", io_manager="vault")\ndef prices('))
    return project


ENV = {"VAULT_KEY": KEY, "VAULT_SECRET": SECRET}


def test_denied_storage_is_one_line_exit_2_in_every_command(project, prefect_server):
    leaky_project(project, "deny")
    for command in (["status"], ["list"], ["materialize"], ["wipe", "--select", "prices", "--yes"]):
        result = run_cli(*command, cwd=project, env=ENV, api_url=prefect_server)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert "access denied" in lines[0] and "io_managers.vault.storage_options" in lines[0], lines[0]
        assert "refused for key=*** secret=***" in lines[0] and "sig=***" in lines[0], lines[0]
        assert_no_secret(result.stdout, result.stderr)
    assert not (project / "data").exists()  # materialize stopped before any asset ran


def test_failed_writes_leak_nothing_into_cli_output(project, prefect_server):
    leaky_project(project, "write")
    for verbose in ([], ["--verbose"]):  # --verbose shows Prefect's task run logs too
        result = run_cli("materialize", *verbose, cwd=project, env=ENV, api_url=prefect_server)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "prices" in result.stdout and "***" in result.stdout + result.stderr
        assert_no_secret(result.stdout, result.stderr)
    status = run_cli("status", cwd=project, env=ENV)
    assert status.returncode == 0, status.stderr
    assert_no_secret(status.stdout, status.stderr)


def test_failed_writes_leak_nothing_into_prefect_or_records(project, prefect_server, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    leaky_project(project, "write")
    defs = Definitions.load(project)
    result = materialize(defs)
    prices = result["prices"]
    assert prices.status == "failed" and "refused for key=*** secret=***" in prices.reason, prices.reason
    assert result["paid_orders"].status == "skipped" and result["customers"].status == "materialized"
    assert_no_secret(repr(result), str(result.summary_rows()), repr(defs.io_managers["vault"]))
    # The flow run, task runs (state messages), logs (tracebacks) and summary artifact.
    assert_no_secret(*prefect_texts(result.flow_run_id, wait_for="refused for key=***"))
    for record_file in (project / "data" / "_prefect_assets").rglob("*.json"):
        assert_no_secret(record_file.read_text())


# ---------------------------------------------------------------------------------------------
# The redactor and the error sorter on their own


def test_redactor_masks_every_secret_option_at_any_depth_and_in_urls():
    options = {
        "key": "AKIAEXAMPLEKEY", "secret": "s3cr3t/with+chars", "endpoint_url": "http://minio:9000",
        "client_kwargs": {"aws_session_token": "session-token-value", "region_name": "eu-west-1"},
        "token": {"private_key": "-----BEGIN KEY-----abc", "client_email": "robot@example.iam"},
        "account_key": "azure-account-key", "password": "pw-1234",
    }
    redact = Redactor.for_storage("sftp://ann:url-password@host/data", options)
    text = ("AKIAEXAMPLEKEY s3cr3t/with+chars s3cr3t%2Fwith%2Bchars session-token-value -----BEGIN KEY-----abc "
            "robot@example.iam azure-account-key pw-1234 url-password eu-west-1 http://minio:9000")
    assert redact(text) == "*** *** *** *** *** *** *** *** *** eu-west-1 http://minio:9000"
    assert redact.uri("sftp://ann:url-password@host/data") == "sftp://ann:***@host/data"
    assert redact_uri("https://acct.blob.core.windows.net/c?sv=2024&sig=abc%2Bdef") == \
        "https://acct.blob.core.windows.net/c?sv=2024&sig=***"
    assert not Redactor.for_storage("/local/path", {"key": "abc"})  # too short to mask usefully


def test_io_manager_hides_a_password_in_its_url(tmp_path):
    io = FsspecIOManager("memory://user:hunter2secret@bucket/x", storage_options={"secret": "another-secret"})
    assert "hunter2secret" not in repr(io) + io.base_uri and "another-secret" not in repr(io)


class _ClientError(Exception):
    """Shaped like botocore's ClientError: a response with an error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"An error occurred ({code}): {message}")
        self.response = {"Error": {"Code": code, "Message": message}}


@pytest.mark.parametrize("exc,expected", [
    (PermissionError("Forbidden"), "access denied (Forbidden); check the credentials in io_managers.lake"),
    (_ClientError("SignatureDoesNotMatch", "bad signature"), "access denied"),
    (type("NoCredentialsError", (Exception,), {})("Unable to locate credentials"), "no credentials found"),
    (type("EndpointConnectionError", (Exception,), {})('Could not connect to "http://x"'), "cannot reach the storage"),
    (ConnectionRefusedError(111, "Connection refused"), "cannot reach the storage"),
])
def test_storage_errors_become_one_line_user_errors(exc, expected):
    error = storage_error(exc, "reading", "s3://lake/x.json", Redactor(["TOPSECRETVALUE"]), "io_managers.lake")
    assert isinstance(error, AssetsError) and expected in str(error), str(error)
    assert str(error).startswith("reading s3://lake/x.json: ")


def test_missing_is_passed_through_but_a_missing_bucket_is_not():
    missing = storage_error(FileNotFoundError("lake/x.json TOPSECRETVALUE"), "reading", "s3://lake/x.json",
                            Redactor(["TOPSECRETVALUE"]))
    assert type(missing) is FileNotFoundError and "TOPSECRETVALUE" not in str(missing)
    no_bucket = FileNotFoundError("The specified bucket does not exist")
    no_bucket.__cause__ = _ClientError("NoSuchBucket", "The specified bucket does not exist")
    assert "the bucket does not exist" in str(storage_error(no_bucket, "reading", "s3://lake/x", Redactor()))


def test_other_errors_keep_their_kind_and_lose_the_secret():
    error = storage_error(IsADirectoryError(21, "is a directory: TOPSECRETVALUE"), "writing", "file:///x",
                          Redactor(["TOPSECRETVALUE"]))
    assert type(error) is IsADirectoryError and "TOPSECRETVALUE" not in str(error) and "***" in str(error)
    odd = storage_error(RuntimeError("boom TOPSECRETVALUE"), "writing", "s3://b/x", Redactor(["TOPSECRETVALUE"]))
    assert type(odd) is OSError and str(odd) == "writing s3://b/x failed: RuntimeError: boom ***"


def test_config_errors_never_echo_storage_options(tmp_path):
    (tmp_path / "prefect_assets.yaml").write_text(json.dumps(
        {"io_managers": {"lake": {"base_uri": "s3://b/x", "storage_options": f"key={SECRET}"}}}))
    with pytest.raises(AssetsError) as error:
        Definitions.load(tmp_path)
    assert "io_managers.lake.storage_options" in str(error.value)
    assert_no_secret(str(error.value))
