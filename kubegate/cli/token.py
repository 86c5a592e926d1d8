"""`kubegate token`: a kubectl exec credential plugin that gives kubectl an OIDC token for kubegate.

kubectl runs it once per invocation, so it must be fast: it parses its flags with argparse and imports
only the standard library (`kubegate token` never loads typer, the store or the policy). Tokens fetched
over the network (GitHub Actions, the development issuer) are cached per source and audience until
shortly before they expire (kubegate.cli.tokencache). The token appears only in the ExecCredential,
or, with --write-file, in a private file that kubectl reads as the kubeconfig's `tokenFile`: a CI job then
starts no process per kubectl call (client-go re-reads the file every minute and after a 401), and
--keep-fresh rewrites the file before the token expires.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubegate.cli import tokencache
from kubegate.cli.execcredential import exec_credential, requested_api_version
from kubegate.durations import parse_duration

if TYPE_CHECKING:
    import urllib.request

    import typer

HTTP_TIMEOUT = 30
HELP = "Print an ExecCredential for kubectl (use as the kubeconfig user's exec plugin)."
# client-go keeps a tokenFile's token for up to a minute before reading the file again, so a token in the
# file is replaced while it still has this long to live (or half its lifetime, for shorter tokens).
REWRITE_BEFORE = 120.0
# How often --keep-fresh wakes: to notice that its file was removed (its signal to stop) and to retry.
WAKE_EVERY = 5.0


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
    payload = tokencache.jwt_claims(token)
    if payload is None:
        raise TokenSourceError(f"{source} does not hold a JWT")
    exp = payload.get("exp")
    if exp is None:
        return None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenSourceError(f"the token from {source} has a non-numeric exp")
    expiry = dt.datetime.fromtimestamp(exp, dt.UTC)
    if expiry <= dt.datetime.now(dt.UTC):
        raise TokenSourceError(f"the token from {source} expired at {expiry:%Y-%m-%dT%H:%M:%SZ}: get a fresh one")
    return expiry


def _fetch_json(request: urllib.request.Request, what: str, ca: Path | None = None) -> dict[str, Any]:
    import ssl  # here, not at the top: a cached token needs no network (about 25 ms of imports)
    import urllib.error
    import urllib.request

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
    import urllib.parse
    import urllib.request

    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if not url or not bearer:
        raise TokenSourceError(
            "ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN are not set: run inside a GitHub Actions "
            "job with `permissions: id-token: write`"
        )
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"audience": audience})
    request = urllib.request.Request(url, headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"})
    value = _fetch_json(request, "the GitHub Actions token service").get("value")
    if not isinstance(value, str) or not value:
        raise TokenSourceError("the GitHub Actions token service answered without a token value")
    return value


def dev_issuer_token(
    issuer: str,
    sub: str,
    groups: list[str],
    claims: dict[str, str],
    lifetime: float,
    audience: str | None,
    ca: Path | None,
) -> str:
    """Ask the development issuer's POST /token for a token (see kubegate.sandbox.issuer)."""
    import urllib.request

    body = json.dumps(
        {"sub": sub, "groups": groups, "claims": claims, "lifetime": lifetime, "audience": audience}
    ).encode()
    request = urllib.request.Request(
        f"{issuer.rstrip('/')}/token", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    value = _fetch_json(request, f"the development issuer at {issuer}", ca).get("token")
    if not isinstance(value, str) or not value:
        raise TokenSourceError("the development issuer answered without a token")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubegate token", description=HELP, allow_abbrev=False)  # see plugin.py
    p.add_argument("--from-env", metavar="VAR", help="Read the token from this environment variable.")
    p.add_argument("--from-file", metavar="PATH", type=Path, help="Read the token from this file.")
    p.add_argument("--github-actions", action="store_true", help="Request the GitHub Actions job's OIDC token.")
    p.add_argument("--dev-issuer", metavar="URL", help="Mint a token at kubegate's development issuer.")
    p.add_argument("--sub", help="Subject (with --dev-issuer).")
    p.add_argument("--group", action="append", default=[], help="Group (with --dev-issuer); repeat.")
    p.add_argument(
        "--claim", action="append", default=[], metavar="NAME=VALUE", help="Extra claim (with --dev-issuer); repeat."
    )
    p.add_argument("--ca", metavar="FILE", type=Path, help="CA certificate of the development issuer.")
    p.add_argument("--audience", default="kubegate", help="Token audience (default: kubegate).")
    p.add_argument("--lifetime", default="1h", help="Lifetime (with --dev-issuer; default: 1h).")
    p.add_argument(
        "--write-file",
        metavar="PATH",
        type=Path,
        help="Write the bare token to this private file (a kubeconfig's tokenFile) instead of printing it.",
    )
    p.add_argument(
        "--keep-fresh",
        action="store_true",
        help="With --write-file: keep running and rewrite the file before the token expires; "
        "stops when the file is removed.",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help=f"Always fetch a fresh token (default: reuse one cached in {tokencache.cache_dir()}).",
    )
    return p


def _fetch(args: argparse.Namespace) -> tuple[str, str]:
    """A network source's token, and a description of the source for messages."""
    if args.github_actions:
        return github_actions_token(args.audience), "GitHub Actions"
    if not args.sub:
        raise TokenSourceError("--dev-issuer needs --sub")
    try:
        seconds = parse_duration(args.lifetime)
    except ValueError as exc:
        raise TokenSourceError(f"--lifetime: {exc}") from None
    return (
        dev_issuer_token(
            args.dev_issuer, args.sub, args.group, parse_claims(args.claim), seconds, args.audience, args.ca
        ),
        f"the development issuer at {args.dev_issuer}",
    )


def read_token(args: argparse.Namespace, key: str) -> tuple[str, dt.datetime | None]:
    """The token from exactly one source, with its expiry; network tokens come from the cache (file `key`,
    tokencache.argv_key) if fresh."""
    chosen = [
        name
        for name, on in (
            ("--from-env", args.from_env),
            ("--from-file", args.from_file),
            ("--github-actions", args.github_actions),
            ("--dev-issuer", args.dev_issuer),
        )
        if on
    ]
    if len(chosen) != 1:
        raise TokenSourceError(
            "choose exactly one token source: --from-env VAR, --from-file PATH, "
            "--github-actions or --dev-issuer URL" + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    if args.from_env:
        value = os.environ.get(args.from_env, "").strip()
        if not value:
            raise TokenSourceError(f"environment variable {args.from_env} is not set or empty")
        return value, token_expiry(value, f"environment variable {args.from_env}")
    if args.from_file:
        try:
            value = args.from_file.read_text().strip()
        except OSError as exc:
            raise TokenSourceError(f"cannot read {args.from_file}: {exc.strerror}") from None
        if not value:
            raise TokenSourceError(f"{args.from_file} is empty")
        return value, token_expiry(value, str(args.from_file))
    cached = None if args.no_cache else tokencache.load(key)
    if cached is not None:
        return cached[0], dt.datetime.fromtimestamp(cached[1], dt.UTC)
    value, source = _fetch(args)
    expiry = token_expiry(value, source)
    if expiry is not None:
        tokencache.store(key, value, expiry.timestamp())
    return value, expiry


def write_token_file(path: Path, token: str) -> None:
    """Replace the file atomically, private to the user: kubectl never reads half a token."""
    import tempfile

    path = path.resolve()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    except OSError as exc:
        raise TokenSourceError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w") as out:
            out.write(token)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TokenSourceError(f"cannot write {path}: {exc.strerror}") from None


def rewrite_at(expiry: dt.datetime, now: float) -> float:
    """When a token with this expiry, just written, is to be replaced (epoch seconds)."""
    left = expiry.timestamp() - now
    return expiry.timestamp() - min(REWRITE_BEFORE, left / 2)


def keep_fresh(args: argparse.Namespace, expiry: dt.datetime | None) -> int:
    """Rewrite --write-file with a freshly fetched token before each one expires, until the file is gone.
    A failed fetch is retried until the token in the file expires; then it fails, saying why."""
    path: Path = args.write_file
    if expiry is None:
        print("kubegate token: the token has no exp; nothing to keep fresh", file=sys.stderr)
        return 0
    due = rewrite_at(expiry, time.time())
    while True:
        time.sleep(max(0.0, min(WAKE_EVERY, due - time.time())))
        if not path.exists():
            return 0
        if time.time() < due:
            continue
        try:
            value, source = _fetch(args)
            fresh = token_expiry(value, source)
            if not path.exists():  # removed while the token was fetched: stop, do not bring it back
                return 0
            write_token_file(path, value)
        except TokenSourceError as exc:
            if time.time() >= expiry.timestamp():
                print(f"kubegate token: {exc}; the token in {path} has expired", file=sys.stderr)
                return 1
            print(f"kubegate token: {exc}; retrying", file=sys.stderr)
            due = time.time() + WAKE_EVERY
            continue
        if fresh is None:
            print("kubegate token: the new token has no exp; nothing to keep fresh", file=sys.stderr)
            return 0
        expiry, due = fresh, rewrite_at(fresh, time.time())


def main(argv: list[str]) -> int:
    """Run the plugin; the exit code for the process."""
    args = parser().parse_args(argv)
    api_version = requested_api_version()
    if args.keep_fresh and not (args.write_file and (args.github_actions or args.dev_issuer)):
        print(
            "kubegate token: --keep-fresh needs --write-file and a source that can fetch a new token "
            "(--github-actions or --dev-issuer)",
            file=sys.stderr,
        )
        return 2
    try:
        value, expiry = read_token(args, tokencache.argv_key(argv))
        if args.write_file is not None:
            write_token_file(args.write_file, value)
    except TokenSourceError as exc:
        print(f"kubegate token: {exc}", file=sys.stderr)
        return 1
    if args.write_file is None:
        print(exec_credential(value, expiry.timestamp() if expiry is not None else None, api_version))
        return 0
    return keep_fresh(args, expiry) if args.keep_fresh else 0


def register(app: typer.Typer) -> None:
    """List `token` among the commands; kubegate.cli.main runs it before typer is even imported."""
    import typer

    def token(ctx: typer.Context) -> None:
        code = main(ctx.args)
        if code:
            raise typer.Exit(code)

    token.__doc__ = HELP
    token.__annotations__ = {"ctx": typer.Context, "return": None}  # typer is not a module global here
    app.command(
        "token",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
        add_help_option=False,
    )(token)
