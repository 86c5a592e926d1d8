"""The admin API client every CLI command group shares: --server, --token/--token-command, --ca, and
errors that come back as the API's own Status message."""

from __future__ import annotations

import shlex
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import orjson
import typer
from rich.console import Console

ServerOpt = Annotated[str, typer.Option("--server", envvar="KUBEGATE_SERVER", help="kubegate URL, https://HOST:PORT")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="KUBEGATE_TOKEN", show_default=False,
                                              help="your OIDC token")]
TokenCommandOpt = Annotated[str | None, typer.Option("--token-command", envvar="KUBEGATE_TOKEN_COMMAND",
                                                     help="a command that prints your OIDC token")]
CaOpt = Annotated[Path | None, typer.Option("--ca", envvar="KUBEGATE_CA",
                                            help="CA bundle that signed kubegate's certificate")]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table or json")]


class ApiError(Exception):
    """The admin API could not be reached or refused; the message says which and why."""


class AdminClient:
    """Calls kubegate's admin API with a bearer token; errors come back as Status messages."""

    def __init__(self, server: str, token: str, ca: Path | None = None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._context = ssl.create_default_context(cafile=str(ca) if ca else None)
        self._timeout = timeout

    def _open(self, path: str, params: dict[str, Any] | None, *, method: str = "GET",
              body: dict[str, Any] | None = None) -> Any:
        query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = orjson.dumps(body), "application/json"
        request = Request(f"{self.server}{path}" + (f"?{query}" if query else ""), data=data, headers=headers,
                          method=method)
        try:
            return urlopen(request, context=self._context, timeout=self._timeout)
        except HTTPError as exc:
            try:
                message = orjson.loads(exc.read()).get("message") or exc.reason
            except (ValueError, AttributeError):
                message = exc.reason
            raise ApiError(f"kubegate answered {exc.code}: {message}") from exc
        except URLError as exc:
            raise ApiError(f"cannot reach kubegate at {self.server}: {exc.reason}") from exc

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        with self._open(path, params) as response:
            return orjson.loads(response.read())

    def post(self, path: str, body: dict[str, Any]) -> Any:
        with self._open(path, None, method="POST", body=body) as response:
            return orjson.loads(response.read())

    def lines(self, path: str, params: dict[str, Any] | None = None) -> Iterator[bytes]:
        with self._open(path, params) as response:
            yield from (line.rstrip(b"\n") for line in response if line.strip())

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following `metadata.continue`."""
        token = ""
        while True:
            page = self.get(path, {**params, "continue": token})
            yield from page["items"]
            token = page["metadata"]["continue"]
            if not token:
                return


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: MESSAGE` on stderr, one unwrapped line (CI logs and grep); raise the returned Exit."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)


def make_client(server: str, token: str | None, token_command: str | None, ca: Path | None) -> AdminClient:
    if not server:
        raise fail("--server (or KUBEGATE_SERVER) is required", 2)
    if not token and token_command:
        done = subprocess.run(shlex.split(token_command), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise fail(f"--token-command exited with {done.returncode}: {done.stderr.strip()[:200]}")
        token = done.stdout.strip()
    if not token:
        raise fail("no token: pass --token, set KUBEGATE_TOKEN, or use --token-command", 2)
    return AdminClient(server, token, ca)
