"""`kubegate token`: a kubectl exec credential plugin that gives kubectl an OIDC token for kubegate.

kubectl runs it from the kubeconfig's `users[].user.exec` and caches the answer until its
expirationTimestamp, so the plugin itself keeps no cache. The token appears only in the ExecCredential.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import jwt
import typer

from kubegate.config import parse_duration

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
HTTP_TIMEOUT = 30


class TokenSourceError(Exception):
    """A token could not be obtained; str() says what to fix and never contains a token."""


def parse_claims(items: list[str]) -> dict[str, str]:
    claims: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise TokenSourceError(f"--claim {item!r} is not NAME=VALUE")
        claims[name] = value
    return claims


def token_expiry(token: str, source: str) -> dt.datetime | None:
    """The token's exp as a UTC datetime (None without exp); refuses what is not a JWT or has expired."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenSourceError(f"{source} does not hold a JWT") from None
    exp = payload.get("exp")
    if exp is None:
        return None
    if not isinstance(exp, int | float):
        raise TokenSourceError(f"the token from {source} has a non-numeric exp")
    expiry = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expiry <= dt.datetime.now(dt.UTC):
        raise TokenSourceError(f"the token from {source} expired at {expiry:%Y-%m-%dT%H:%M:%SZ}: "
                               "get a fresh one")
    return expiry


def exec_credential(token: str, expiry: dt.datetime | None, api_version: str) -> dict[str, Any]:
    status: dict[str, str] = {"token": token}
    if expiry is not None:
        status["expirationTimestamp"] = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": api_version, "kind": "ExecCredential", "spec": {}, "status": status}


def requested_api_version() -> str:
    """The ExecCredential version kubectl asked for in KUBERNETES_EXEC_INFO (v1 if absent or unknown)."""
    try:
        info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO", "{}"))
    except ValueError:
        return EXEC_API_VERSIONS[0]
    version = info.get("apiVersion") if isinstance(info, dict) else None
    return version if version in EXEC_API_VERSIONS else EXEC_API_VERSIONS[0]


def _fetch_json(request: urllib.request.Request, what: str, ca: Path | None = None) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT, context=context) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = ""
        if exc.headers.get_content_type() == "application/json":
            try:
                detail = f": {json.loads(exc.read()).get('error', '')}"
            except (ValueError, AttributeError):
                detail = ""
        raise TokenSourceError(f"{what} answered HTTP {exc.code} {exc.reason}{detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise TokenSourceError(f"cannot reach {what}: {reason}") from None
    except ValueError:
        raise TokenSourceError(f"{what} did not answer JSON") from None
    if not isinstance(body, dict):
        raise TokenSourceError(f"{what} did not answer a JSON object")
    return body


def github_actions_token(audience: str) -> str:
    """Request the job's OIDC token, as actions/core getIDToken does."""
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise TokenSourceError("ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN are not set: run inside a GitHub Actions "
                               "job with `permissions: id-token: write`")
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"audience": audience})
    request = urllib.request.Request(url, headers={"Authorization": f"bearer {bearer}",
                                                   "Accept": "application/json"})
    value = _fetch_json(request, "the GitHub Actions token service").get("value")
    if not isinstance(value, str) or not value:
        raise TokenSourceError("the GitHub Actions token service answered without a token value")
    return value


def dev_issuer_token(issuer: str, sub: str, groups: list[str], claims: dict[str, str], lifetime: float,
                     audience: str | None, ca: Path | None) -> str:
    """Ask the development issuer's POST /token for a token (see kubegate.sandbox.issuer)."""
    body = json.dumps({"sub": sub, "groups": groups, "claims": claims, "lifetime": lifetime,
                       "audience": audience}).encode()
    request = urllib.request.Request(f"{issuer.rstrip('/')}/token", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    value = _fetch_json(request, f"the development issuer at {issuer}", ca).get("token")
    if not isinstance(value, str) or not value:
        raise TokenSourceError("the development issuer answered without a token")
    return value


def read_token(from_env: str | None, from_file: Path | None, github_actions: bool, dev_issuer: str | None,
               sub: str | None, groups: list[str], claims: list[str], ca: Path | None, audience: str,
               lifetime: str) -> tuple[str, str]:
    """The token from exactly one source, and a description of that source for messages."""
    chosen = [name for name, on in (("--from-env", from_env), ("--from-file", from_file),
                                    ("--github-actions", github_actions), ("--dev-issuer", dev_issuer)) if on]
    if len(chosen) != 1:
        raise TokenSourceError("choose exactly one token source: --from-env VAR, --from-file PATH, "
                               "--github-actions or --dev-issuer URL"
                               + (f" (got {', '.join(chosen)})" if chosen else ""))
    if from_env:
        value = os.environ.get(from_env, "").strip()
        if not value:
            raise TokenSourceError(f"environment variable {from_env} is not set or empty")
        return value, f"environment variable {from_env}"
    if from_file:
        try:
            value = from_file.read_text().strip()
        except OSError as exc:
            raise TokenSourceError(f"cannot read {from_file}: {exc.strerror}") from None
        if not value:
            raise TokenSourceError(f"{from_file} is empty")
        return value, str(from_file)
    if github_actions:
        return github_actions_token(audience), "GitHub Actions"
    assert dev_issuer is not None
    if not sub:
        raise TokenSourceError("--dev-issuer needs --sub")
    try:
        seconds = parse_duration(lifetime)
    except ValueError as exc:
        raise TokenSourceError(f"--lifetime: {exc}") from None
    return (dev_issuer_token(dev_issuer, sub, groups, parse_claims(claims), seconds, audience, ca),
            f"the development issuer at {dev_issuer}")


def token(
    from_env: Annotated[str | None, typer.Option("--from-env", metavar="VAR",
                                                 help="Read the token from this environment variable.")] = None,
    from_file: Annotated[Path | None, typer.Option("--from-file", metavar="PATH",
                                                   help="Read the token from this file.")] = None,
    github_actions: Annotated[bool, typer.Option("--github-actions",
                                                 help="Request the GitHub Actions job's OIDC token.")] = False,
    dev_issuer: Annotated[str | None, typer.Option("--dev-issuer", metavar="URL",
                                                   help="Mint a token at kubegate's development issuer.")] = None,
    sub: Annotated[str | None, typer.Option("--sub", help="Subject (with --dev-issuer).")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="Group (with --dev-issuer); repeat.")] = None,
    claim: Annotated[list[str] | None, typer.Option("--claim", metavar="NAME=VALUE",
                                                    help="Extra claim (with --dev-issuer); repeat.")] = None,
    ca: Annotated[Path | None, typer.Option("--ca", metavar="FILE",
                                            help="CA certificate of the development issuer.")] = None,
    audience: Annotated[str, typer.Option("--audience", help="Token audience.")] = "kubegate",
    lifetime: Annotated[str, typer.Option("--lifetime", help="Lifetime (with --dev-issuer).")] = "1h",
) -> None:
    """Print an ExecCredential for kubectl (use as the kubeconfig user's exec plugin)."""
    api_version = requested_api_version()
    try:
        value, source = read_token(from_env, from_file, github_actions, dev_issuer, sub, group or [],
                                   claim or [], ca, audience, lifetime)
        expiry = token_expiry(value, source)
    except TokenSourceError as exc:
        typer.echo(f"kubegate token: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(exec_credential(value, expiry, api_version)))


def register(app: typer.Typer) -> None:
    app.command("token")(token)
