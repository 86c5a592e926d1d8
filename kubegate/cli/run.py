"""`kubegate run -- kubectl ...`: run a command that talks to kubegate and, while it runs, print every
access request it is held on (id, what, who can approve, the approve command) on stderr.

A request held for approval (`mode: wait`) gives kubectl nothing to print until a reviewer decides; in a
CI log that looks like a hang. The wrapper asks kubegate's admin API, as the same identity (the
kubeconfig's own token, token file or exec plugin), for the caller's pending requests once a second.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from kubegate.cli.client import AdminClient, ApiError, fail
from kubegate.cli.tokencache import jwt_claims


class KubeconfigError(Exception):
    """The kubeconfig does not say how to reach kubegate; str() names what is missing."""


def _named(doc: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for item in doc.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(section[:-1]) or {}
    raise KubeconfigError(f"it has no {section[:-1]} named {name!r}")


def _exec_token(spec: dict[str, Any]) -> str:
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in spec.get("env") or []},
        "KUBERNETES_EXEC_INFO": json.dumps(
            {"apiVersion": spec.get("apiVersion", ""), "kind": "ExecCredential", "spec": {"interactive": False}}
        ),
    }
    done = subprocess.run(
        [spec["command"], *(spec.get("args") or [])], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise KubeconfigError(f"its exec plugin {spec['command']} exited {done.returncode}: {done.stderr.strip()}")
    try:
        return str(json.loads(done.stdout)["status"]["token"])
    except (ValueError, KeyError, TypeError):
        raise KubeconfigError(f"its exec plugin {spec['command']} printed no ExecCredential token") from None


def gateway_client(path: Path) -> tuple[AdminClient, dict[str, object]]:
    """A client for the admin API of the kubegate the kubeconfig's current context points at, and the
    claims of the token it uses."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        context = _named(doc, "contexts", str(doc.get("current-context", "")))
        cluster = _named(doc, "clusters", str(context.get("cluster", "")))
        user = _named(doc, "users", str(context.get("user", "")))
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"cannot read it: {exc}") from None
    server = str(cluster.get("server", ""))
    if "/k8s/" not in server:
        raise KubeconfigError(f"its server {server!r} is not a kubegate connection URL (https://HOST/k8s/NAME)")
    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        token_file = path.parent / str(user["tokenFile"])  # relative to the kubeconfig, as kubectl reads it
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise KubeconfigError(f"cannot read its token file {token_file}: {exc.strerror}") from None
    if not token and user.get("exec"):
        token = _exec_token(user["exec"])
    if not token:
        raise KubeconfigError("its user has neither a token, a token file nor an exec plugin")
    ca = cluster.get("certificate-authority")
    return AdminClient(server.split("/k8s/")[0], token, Path(ca) if ca else None), jwt_claims(token) or {}


def held_lines(request: dict[str, Any]) -> list[str]:
    reviewers = ", ".join(
        [*(f"group {g}" for g in request["reviewers"]["groups"]), *(f"user {u}" for u in request["reviewers"]["users"])]
    )
    return [
        f"kubegate: held for approval: access request {request['id']}: {request['description']}",
        f"kubegate:   who can approve: {reviewers or 'nobody the policy names'} (until {request['expires_at']})",
        f"kubegate:   approve with: {request['approve_command']}",
    ]


def watch(proc: subprocess.Popen[bytes], client: AdminClient, subject: object, since: float, interval: float) -> None:
    """Until the command ends: print the caller's access requests made since `since`, once each."""
    seen: set[str] = set()
    warned = False
    while True:
        try:
            items = client.get("/api/v1/requests", {"state": "pending"})["items"]
        except ApiError as exc:
            items = []
            if not warned:
                typer.echo(
                    f"kubegate run: cannot list access requests ({exc}); held requests will not be shown", err=True
                )
                warned = True
        for request in items:
            created = dt.datetime.fromisoformat(request["created_at"]).timestamp()
            if request["id"] in seen or request["requester"]["subject"] != subject or created < since - 2:
                continue
            seen.add(request["id"])
            for line in held_lines(request):
                typer.echo(line, err=True)
        try:
            proc.wait(timeout=interval)
            return
        except subprocess.TimeoutExpired:
            continue


def run(
    command: Annotated[list[str], typer.Argument(help="The command to run, after --: kubectl ...")],
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="The kubeconfig pointing at kubegate (default: the first of $KUBECONFIG, else ~/.kube/config)"
        ),
    ] = None,
    interval: Annotated[float, typer.Option(min=0.2, help="Seconds between looks for held requests")] = 1.0,
) -> None:
    """Run COMMAND; while it runs, print each access request it is held on and how to approve it."""
    path = kubeconfig or Path((os.environ.get("KUBECONFIG") or str(Path.home() / ".kube/config")).split(os.pathsep)[0])
    try:
        client, claims = gateway_client(path)
    except KubeconfigError as exc:
        raise fail(f"kubeconfig {path}: {exc}") from None
    since = time.time()
    try:
        proc = subprocess.Popen(command)
    except OSError as exc:
        raise fail(f"cannot run {command[0]}: {exc.strerror}") from None
    try:
        watch(proc, client, claims.get("sub"), since, interval)
    finally:
        if proc.poll() is None:
            proc.terminate()
    raise typer.Exit(proc.returncode)


def register(app: typer.Typer) -> None:
    app.command()(run)
