"""`kubegate requests list|show|approve|deny|revoke|create`: access requests through the admin API, with
the caller's own OIDC token, so the gateway checks per request who may see and decide it."""

from __future__ import annotations

import enum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from kubegate.approvals.model import STATES
from kubegate.cli.client import (
    AdminClient,
    ApiError,
    CaOpt,
    Format,
    OutputOpt,
    ServerOpt,
    TokenCommandOpt,
    TokenOpt,
    fail,
    make_client,
    print_structured,
)
from kubegate.cli.groups import command_group

requests_app = command_group("Review, approve, deny and revoke access requests; ask for time-boxed access.")
State = enum.StrEnum("State", {name: name for name in (*STATES, "all")})  # type: ignore[misc]
IdArg = Annotated[str, typer.Argument(metavar="ID", help="the access request id")]


def _path(request_id: str, action: str = "") -> str:
    return f"/api/v1/requests/{quote(request_id, safe='')}" + (f"/{action}" if action else "")


def _call(
    client: AdminClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    try:
        return client.post(path, body or {}) if method == "POST" else client.get(path, params)
    except ApiError as exc:
        raise fail(str(exc)) from exc


def _print_request(r: dict[str, Any]) -> None:
    who = r["requester"]
    claims = ", ".join(f"{k}={v}" for k, v in sorted(who["claims"].items()))
    reviewers = ", ".join(
        [*(f"group {g}" for g in r["reviewers"]["groups"]), *(f"user {u}" for u in r["reviewers"]["users"])]
    )
    rows: list[tuple[str, str]] = [
        ("Request", r["id"]),
        ("State", r["state"]),
        ("What", r["description"]),
        ("Requester", who["username"]),
        ("Groups", ", ".join(who["groups"])),
        ("Claims", claims),
        ("Connection", r["connection"]),
        ("Mode", r["mode"]),
        ("Reviewers", reviewers),
        ("Rules", "; ".join(f"{x['rule']} (min {x['min_approvals']})" for x in r["rules"])),
        ("Created", r["created_at"]),
        ("Expires", r["expires_at"]),
    ]
    if r.get("reason"):
        rows.append(("Reason", r["reason"]))
    if r.get("request"):
        req = r["request"]
        query = f"?{req['query']}" if req["query"] else ""
        rows += [
            ("HTTP", f"{req['method']} {req['path']}{query}"),
            ("Command", req["kubectl_command"] or "-"),
            ("Body", f"{req['body_bytes']} bytes, sha256 {req['body_sha256']}"),
        ]
    for vote in r["approvals"]:
        rows.append(
            ("Approved by", f"{vote['reviewer']} at {vote['at']}" + (f": {vote['comment']}" if vote["comment"] else ""))
        )
    for missing in r["missing"]:
        rows.append(("Waiting for", missing))
    if r.get("decided_by"):
        rows.append(
            (
                "Decided",
                f"{r['state']} by {r['decided_by']} at {r['decided_at']}"
                + (f": {r['decision_reason']}" if r["decision_reason"] else ""),
            )
        )
    if r.get("grant"):
        g = r["grant"]
        uses = f"{g['uses']}/{g['max_uses']}" if g["max_uses"] else str(g["uses"])
        rows.append(("Grant", f"{g['kind']}, {g['state']}, until {g['expires_at']}, uses {uses}"))
    for label, value in rows:
        typer.echo(f"{label + ':':<13}{value}")
    if r.get("summary"):
        typer.echo("\n" + r["summary"])


@requests_app.command("list")
def list_command(
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    state: Annotated[State, typer.Option(case_sensitive=False, help="which requests")] = State.pending,  # type: ignore[attr-defined]
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
    output: OutputOpt = Format.table,
) -> None:
    """List the access requests you asked for or may review, newest first."""
    client = make_client(server, token, token_command, ca)
    page = _call(client, "GET", "/api/v1/requests", params={"state": state, "limit": limit})
    if print_structured(page, output):
        return
    table = Table("ID", "STATE", "CREATED", "REQUESTER", "WHAT", "REVIEWERS", box=None)
    for r in page["items"]:
        table.add_row(
            r["id"],
            r["state"],
            r["created_at"][:19],
            r["requester"]["username"],
            r["description"],
            ", ".join([*r["reviewers"]["groups"], *r["reviewers"]["users"]]),
        )
    Console(highlight=False, width=220).print(table)


@requests_app.command("show")
def show_command(
    request_id: IdArg,
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Format.table,
) -> None:
    """Show one request: who asks for what, the exact request and its diff, and who has decided."""
    found = _call(make_client(server, token, token_command, ca), "GET", _path(request_id))
    if not print_structured(found, output):
        _print_request(found)


@requests_app.command("approve")
def approve_command(
    request_id: IdArg,
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    comment: Annotated[str, typer.Option(help="why you approve (recorded)")] = "",
) -> None:
    """Approve a request you review (never your own)."""
    done = _call(
        make_client(server, token, token_command, ca), "POST", _path(request_id, "approve"), {"comment": comment}
    )
    if done["state"] == "approved":
        typer.echo(f"access request {done['id']} approved: {done['description']}")
    else:
        typer.echo(
            f"approval recorded; access request {done['id']} is still {done['state']}: " + "; ".join(done["missing"])
        )


@requests_app.command("deny")
def deny_command(
    request_id: IdArg,
    reason: Annotated[str, typer.Option(help="why (the requester sees it)")],
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
) -> None:
    """Deny a request you review, with a reason the requester sees."""
    done = _call(make_client(server, token, token_command, ca), "POST", _path(request_id, "deny"), {"reason": reason})
    typer.echo(f"access request {done['id']} denied: {done['description']}")


@requests_app.command("revoke")
def revoke_command(
    request_id: IdArg,
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    reason: Annotated[str, typer.Option(help="why (recorded)")] = "",
) -> None:
    """Withdraw a pending request or end a grant before it expires."""
    done = _call(make_client(server, token, token_command, ca), "POST", _path(request_id, "revoke"), {"reason": reason})
    typer.echo(f"access request {done['id']} revoked")


@requests_app.command("create")
def create_command(
    connection: Annotated[str, typer.Option(help="the connection (cluster) to access")],
    verbs: Annotated[str, typer.Option(help="comma-separated, for example get,list")],
    resources: Annotated[str, typer.Option(help="comma-separated RESOURCE[.GROUP][/SUBRESOURCE]: pods,pods/log")],
    reason: Annotated[str, typer.Option(help="why you need it (reviewers judge this)")],
    server: ServerOpt = "",
    namespace: Annotated[str, typer.Option(help="the namespace; empty for cluster-wide")] = "",
    duration: Annotated[str, typer.Option(help="how long the grant lasts once approved, e.g. 1h")] = "1h",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Format.table,
) -> None:
    """Ask ahead of time for time-boxed access; once approved it is allowed until it expires or is revoked."""
    client = make_client(server, token, token_command, ca)
    created = _call(
        client,
        "POST",
        "/api/v1/requests",
        {
            "connection": connection,
            "namespace": namespace,
            "verbs": verbs,
            "resources": resources,
            "duration": duration,
            "reason": reason,
        },
    )
    if print_structured(created, output):
        return
    who = ", ".join([*created["reviewers"]["groups"], *created["reviewers"]["users"]])
    typer.echo(
        f"access request {created['id']} created: {created['description']}\n"
        f"waiting for {who}; a reviewer approves it with:\n  {created['approve_command']}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(requests_app, name="requests")
