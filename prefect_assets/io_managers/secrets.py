"""Keeping credentials out of every message, and turning storage failures into one clear line.

Credentials reach an IO manager through ``storage_options`` (often from ``${VAR}``), through
fsspec's environment configuration (``FSSPEC_S3_SECRET``) or inside a URL
(``ftp://user:password@host``). Whatever we print, log, record or send to Prefect passes
through a :class:`Redactor` that knows those values and replaces them with ``***``.

Backend errors are the other leak and the other usability problem: s3fs reports a wrong key as
``PermissionError('Forbidden')``, botocore names the endpoint, and fsspec's own ``exists``
reads any failure as "missing". :func:`storage_error` sorts a backend exception into

- *missing* (``FileNotFoundError``): returned unchanged, callers decide what missing means;
- *access denied*, *no credentials*, *endpoint unreachable or connection lost*, *no such
  bucket*: an :class:`~prefect_assets.errors.AssetsError` (one line, exit code 2 from the
  CLI) naming the location and the fix, because these are configuration mistakes;
- anything else: an ``OSError`` with the same text, minus the secrets.

>>> redact = Redactor.for_storage("s3://lake/warehouse", {"key": "AKIAEXAMPLE", "secret": "s3cr3t/value"})
>>> redact("signed with AKIAEXAMPLE and s3cr3t/value (s3cr3t%2Fvalue)")
'signed with *** and *** (***)'
>>> redact_uri("ftp://ann:pa55word@host/data?sig=abc123&x=1")
'ftp://ann:***@host/data?sig=***&x=1'
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from prefect_assets.errors import AssetsError

#: Option names whose values are credentials, at any depth of ``storage_options``:
#: s3fs ``key``/``secret``/``token``, botocore ``aws_secret_access_key``, adlfs
#: ``account_key``/``sas_token``/``connection_string``/``client_secret``, gcsfs ``token``
#: (a path or a whole service-account dict), ``password`` for sftp/ftp/smb.
SECRET_NAME = re.compile(r"key|secret|token|passw|credential|connection_string|sas_", re.IGNORECASE)

#: Query parameters of a URL that carry credentials (Azure SAS ``sig``, signed URLs).
SECRET_QUERY = re.compile(r"sig|key|secret|token|passw|credential|signature", re.IGNORECASE)

#: Shorter values are not scrubbed: replacing every "abc" in a message would destroy it
#: while protecting nothing a guess would not find.
MIN_SECRET_LENGTH = 4

_MASK = "***"


class Redactor:
    """Replaces known secret values in text with ``***``.

    Args:
        secrets: the values to hide; empty and very short values are ignored.

    A Redactor pickles (it is a set of strings), so it travels with its IO manager to
    process-pool, Dask and Ray workers.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values: set[str] = set()
        for secret in secrets:
            if isinstance(secret, str) and len(secret) >= MIN_SECRET_LENGTH:
                # Also the URL-encoded form: botocore and URLs show "a/b+c" as "a%2Fb%2Bc".
                values.update({secret, quote(secret, safe=""), quote(secret)})
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(values, key=len, reverse=True))

    @classmethod
    def for_storage(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Redactor:
        """Everything secret about one storage location.

        Args:
            url: the base URL; a password or signature inside it is a secret too.
            storage_options: the options given to the filesystem.

        Besides ``storage_options``, fsspec's configuration for the URL's protocol (read from
        ``FSSPEC_<PROTOCOL>_<OPTION>`` variables and config files) is included, since fsspec
        hands those to the filesystem as well.
        """
        secrets = list(secret_values(storage_options or {}))
        secrets.extend(_url_secrets(url))
        try:
            import fsspec.config

            for protocol in _protocols(url):
                secrets.extend(secret_values(fsspec.config.conf.get(protocol, {})))
        except ImportError:  # pragma: no cover - fsspec is a dependency
            pass
        return cls(secrets)

    def __call__(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def uri(self, url: str) -> str:
        """A URL safe to show: passwords and signatures masked, known secrets removed."""
        return self(redact_uri(url))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"


def secret_values(options: Any, secret: bool = False) -> Iterable[str]:
    """Yield the string values stored under secret-looking names, at any depth.

    Everything below a secret name counts (a gcsfs ``token`` may be a whole credentials dict).
    """
    if isinstance(options, Mapping):
        for name, value in options.items():
            yield from secret_values(value, secret or bool(SECRET_NAME.search(str(name))))
    elif isinstance(options, (list, tuple)):
        for value in options:
            yield from secret_values(value, secret)
    elif secret and isinstance(options, str):
        yield options


def redact_uri(url: str) -> str:
    """Mask the password in ``user:password@`` and secret-looking query parameters."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{_MASK}@{host}" if has_password else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, _MASK if SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _url_secrets(url: str) -> list[str]:
    if "://" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [parts.password] if parts.password else []
    found.extend(v for k, v in parse_qsl(parts.query) if SECRET_QUERY.search(k))
    return found


def _protocols(url: str) -> list[str]:
    # A chained URL ("simplecache::s3://...") configures each protocol in the chain.
    return [part.split("://", 1)[0] for part in url.split("::") if "://" in part] or ["file"]


# --- sorting backend errors ------------------------------------------------------------------

#: botocore / Azure / GCS error codes and exception names that mean "these credentials are
#: wrong or not allowed", wherever the backend did not already raise PermissionError.
_AUTH_NAMES = frozenset({
    "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "InvalidClientTokenId",
    "AuthorizationFailure", "AuthenticationFailed", "ClientAuthenticationError",
    "RefreshError", "Forbidden", "Unauthorized",
})
_NO_CREDENTIALS_NAMES = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "DefaultCredentialsError",
})
_UNREACHABLE_NAMES = frozenset({
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError",
    "ConnectionClosedError", "ServerDisconnectedError", "ClientOSError", "ClientPayloadError",
    "ProxyConnectionError", "ServiceRequestError",
})


def storage_error(exc: BaseException, action: str, uri: str, redact: Redactor, where: str = "") -> BaseException:
    """Turn a backend exception into the exception to raise: one line, no secrets.

    Args:
        exc: what the filesystem raised.
        action: what we were doing, as a verb phrase: ``"writing"``, ``"reading the record"``.
        uri: the location involved (it is redacted here).
        redact: the location's :class:`Redactor`.
        where: where the user configures this storage, e.g. ``"io_managers.lake"``, named in
            the suggested fix.

    Returns:
        A ``FileNotFoundError`` when the object is missing (callers decide what "missing"
        means) but not the bucket; an :class:`AssetsError` for credential, endpoint and bucket
        problems; otherwise an ``OSError`` of the same kind. Each carries the scrubbed message:
        raise it ``from None``, since the original exception's text may hold a secret.
    """
    detail = _detail(exc, redact)
    place = redact.uri(uri)
    config = f"{where}.storage_options" if where else "the IO manager's storage_options"
    names = _names(exc)
    if names & {"NoSuchBucket"} or (isinstance(exc, FileNotFoundError) and "bucket does not exist" in detail.lower()):
        return AssetsError(f"{action} {place}: the bucket does not exist ({detail}); create it or fix base_uri")
    if isinstance(exc, FileNotFoundError):
        return FileNotFoundError(errno.ENOENT, f"{action} {place}: not found ({detail})")
    if names & _NO_CREDENTIALS_NAMES:
        return AssetsError(
            f"{action} {place}: no credentials found ({detail}); set key/secret in {config} "
            "or the provider's environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE)"
        )
    if isinstance(exc, NotADirectoryError):
        return AssetsError(f"{action} {place}: part of that path is a file, not a folder ({detail}); fix base_uri")
    if isinstance(exc, PermissionError) and place.startswith(("file:", "/")):
        return AssetsError(f"{action} {place}: permission denied ({detail}); check the directory's permissions")
    if isinstance(exc, PermissionError) or names & _AUTH_NAMES:
        return AssetsError(
            f"{action} {place}: access denied ({detail}); check the credentials in {config} "
            "(key, secret, token) or the provider's environment variables, and that they may access this "
            "location (S3 also answers 403 for a missing object when s3:ListBucket is not granted)"
        )
    if names & _UNREACHABLE_NAMES or isinstance(exc, (ConnectionRefusedError, TimeoutError)):
        return AssetsError(f"{action} {place}: cannot reach the storage, or lost the connection ({detail}); "
                           f"check endpoint_url in {config} and the network")
    code = getattr(exc, "errno", None)
    message = f"{action} {place} failed: {detail}"
    # OSError(errno, ...) comes back as the matching subclass (IsADirectoryError, ...).
    return OSError(code, message) if isinstance(code, int) else OSError(message)


def _names(exc: BaseException) -> set[str]:
    """Exception class names and botocore error codes along ``exc``'s cause chain."""
    names: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        response = getattr(current, "response", None)
        if isinstance(response, Mapping):
            code = response.get("Error", {}).get("Code")
            if code:
                names.add(str(code))
        current = current.__cause__ or current.__context__
    return names


def _detail(exc: BaseException, redact: Redactor) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__name__ not in text and not isinstance(exc, OSError):
        text = f"{type(exc).__name__}: {text}"
    return redact(text)
