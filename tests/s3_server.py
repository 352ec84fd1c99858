"""A real S3 endpoint for the tests: moto's server on 127.0.0.1, reached through s3fs.

Started once per session by the tests themselves (as s3fs's own suite does); each test gets
a fresh, empty bucket and s3fs's instance cache is cleared so no test sees another's client.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class S3Endpoint:
    """Where the moto server listens and how to reach it."""

    endpoint_url: str
    bucket: str

    @property
    def storage_options(self) -> dict:
        return {"endpoint_url": self.endpoint_url, "key": "testing", "secret": "testing"}

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(client_kwargs={"endpoint_url": self.endpoint_url}, key="testing", secret="testing")


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint_url: str) -> Iterator[S3Endpoint]:
    """A fresh bucket on the moto server; yields an :class:`S3Endpoint`."""
    import boto3
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint_url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    yield S3Endpoint(s3_endpoint_url, bucket)
    s3fs.S3FileSystem.clear_instance_cache()
