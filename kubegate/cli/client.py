"""The admin API client every CLI command group shares: --server, --token/--token-command, --ca, and
errors that come back as the API's own Status message."""

from __future__ import annotations

import enum
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
import yaml
from rich.console import Console

from kubegate.cli.context import ContextError, load_context

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="KUBEGATE_SERVER",
        show_default=False,
        help="kubegate URL, https://HOST:PORT (default: from `kubegate login`)",
    ),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="KUBEGATE_TOKEN", show_default=False, help="your OIDC token")
]
TokenCommandOpt = Annotated[
    str | None,
    typer.Option("--token-command", envvar="KUBEGATE_TOKEN_COMMAND", help="a command that prints your OIDC token"),
]
CaOpt = Annotated[
    Path | None, typer.Option("--ca", envvar="KUBEGATE_CA", help="CA bundle that signed kubegate's certificate")
]


class Format(enum.StrEnum):
    """What `-o/--output` means in every command that prints objects (a file is always --file)."""

    table = "table"
    json = "json"
    yaml = "yaml"


OutputOpt = Annotated[Format, typer.Option("--output", "-o", case_sensitive=False, help="table, json or yaml")]


def print_structured(obj: Any, output: Format) -> bool:
    """Print obj as JSON or YAML if asked; False when the caller prints its table instead."""
    if output == Format.json:
        typer.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode())
    elif output == Format.yaml:
        typer.echo(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True), nl=False)
    return output != Format.table


class ApiError(Exception):
    """The admin API could not be reached or refused; the message says which and why."""


class AdminClient:
    """Calls kubegate's admin API with a bearer token; errors come back as Status messages."""

    def __init__(self, server: str, token: str, ca: Path | None = None, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self._context = ssl.create_default_context(cafile=str(ca) if ca else None)
        self._timeout = timeout

    def _open(
        self, path: str, params: dict[str, Any] | None, *, method: str = "GET", body: dict[str, Any] | None = None
    ) -> Any:
        query = urlencode({k: v for k, v in (params or {}).items() if v not in (None, "")})
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = orjson.dumps(body), "application/json"
        request = Request(
            f"{self.server}{path}" + (f"?{query}" if query else ""), data=data, headers=headers, method=method
        )
        try:
            return urlopen(request, context=self._context, timeout=self._timeout)
        except HTTPError as exc:
            try:
                message = orjson.loads(exc.read()).get("message") or exc.reason
            except (ValueError, AttributeError):
                message = exc.reason
            raise ApiError(f"kubegate answered {exc.code}: {message}") from exc
        except (URLError, OSError) as exc:
            raise ApiError(unreachable(self.server, exc)) from exc

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


def unreachable(server: str, exc: OSError) -> str:
    """One line on why kubegate did not answer, with the flag that fixes the usual cause."""
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            f"cannot verify kubegate's certificate at {server} ({reason.verify_message}): pass --ca FILE "
            "(or set KUBEGATE_CA) with the CA that signed it"
        )
    if isinstance(reason, ssl.SSLError):
        return f"TLS with kubegate at {server} failed ({reason.reason or reason}): is it https and the right port?"
    if isinstance(reason, TimeoutError):
        return f"kubegate at {server} did not answer in time: is --server right and kubegate running?"
    return f"cannot reach kubegate at {server}: {getattr(reason, 'strerror', None) or reason}; is --server right?"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: MESSAGE` on stderr, one unwrapped line (CI logs and grep); raise the returned Exit."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {message}", markup=False)
    return typer.Exit(code)


def make_client(server: str, token: str | None, token_command: str | None, ca: Path | None) -> AdminClient:
    """A client from the flags (or KUBEGATE_* variables), falling back on the saved context for each."""
    try:
        saved = load_context()
    except ContextError as exc:
        raise fail(str(exc), 2) from None
    server = server or saved.get("server", "")
    ca = ca or (Path(saved["ca"]) if saved.get("ca") else None)
    token_command = token_command or (saved.get("token_command") if not token else None)
    if not server:
        raise fail("no server: pass --server, set KUBEGATE_SERVER, or run `kubegate login --server URL` once", 2)
    if not token and token_command:
        try:
            done = subprocess.run(shlex.split(token_command), capture_output=True, text=True, check=False)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise fail(f"--token-command {token_command!r} cannot run: {reason}") from None
        if done.returncode != 0:
            raise fail(f"--token-command exited with {done.returncode}: {done.stderr.strip()[:200]}")
        token = done.stdout.strip()
    if not token:
        raise fail("no token: pass --token, set KUBEGATE_TOKEN, or use --token-command", 2)
    return AdminClient(server, token, ca)
