"""A moto server standing in for AWS STS and IAM, reached over real HTTP as kubegate reaches AWS."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Thread

import pytest
from botocore.credentials import ReadOnlyCredentials
from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

FAKE_ACCESS_KEY = "AKIAKUBEGATETEST0001"
FAKE_SECRET_KEY = "kubegate-test-secret-key-do-not-leak-0001"
_AMBIENT_AWS = (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
)


def _moto_post(base: str, path: str, body: bytes = b"") -> None:
    request = urllib.request.Request(f"{base}{path}", data=body, method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request) as response:
        response.read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def moto_sts_only() -> Iterator[str]:
    """moto's STS app on its own port: the full server routes on the Authorization header, and the
    presigned GET that EKS sends has none (all its signing is in the query string)."""
    server = make_server("127.0.0.1", 0, create_backend_app("sts"), threaded=True, request_handler=MotoRequestHandler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ReadOnlyCredentials:
    """Only fake static keys in the environment: no profile, IRSA, Pod Identity or IMDS lookups."""
    for name in _AMBIENT_AWS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return ReadOnlyCredentials(FAKE_ACCESS_KEY, FAKE_SECRET_KEY, None)


@pytest.fixture
def sts_url(moto_server: str, aws_env: ReadOnlyCredentials) -> Iterator[str]:
    """The moto server, emptied, with IAM authorization off again after a test turned it on."""
    _moto_post(moto_server, "/moto-api/reset")
    yield moto_server
    _moto_post(moto_server, "/moto-api/reset-auth", b"inf")


@pytest.fixture
def enforce_iam(sts_url: str) -> Callable[[], None]:
    """Call to make moto check every following request against IAM (unknown keys, missing policies)."""
    return lambda: _moto_post(sts_url, "/moto-api/reset-auth", b"0")
