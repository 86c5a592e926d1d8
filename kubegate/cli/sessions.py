"""`kubegate sessions list|show|replay|export`: read recorded sessions through the admin API, with the
caller's own OIDC token, so only auditors and admins see them and every read is the API's to log."""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from kubegate.cli.client import (
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
from kubegate.recording.asciicast import cast_from_events, play
from kubegate.recording.query import describe_target
from kubegate.recording.recorder import OUTCOMES, VIA
from kubegate.recording.replay import parse_time, replay_steps, summarize

sessions_app = command_group("Find, show, replay and export recorded kubectl and MCP sessions.")


Outcome = enum.StrEnum("Outcome", {name: name for name in OUTCOMES})  # type: ignore[misc]
ExportFormat = enum.StrEnum("ExportFormat", {"jsonl": "jsonl", "asciicast": "asciicast"})
OutcomeOpt = Annotated[Outcome | None, typer.Option(case_sensitive=False, help="sessions whose outcome is this")]
Via = enum.StrEnum("Via", {name: name for name in VIA})  # type: ignore[misc]
ViaOpt = Annotated[Via | None, typer.Option(case_sensitive=False, help="sessions opened this way (mcp: an MCP client)")]


def _session_path(session_id: str, suffix: str = "") -> str:
    return f"/api/v1/sessions/{quote(session_id, safe='')}{suffix}"


def _filters(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v}


@sessions_app.command("list")
def list_command(
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    user: Annotated[str | None, typer.Option(help="user name or subject")] = None,
    group: str | None = None,
    connection: str | None = None,
    verb: Annotated[str | None, typer.Option(help="sessions with a request of this verb")] = None,
    resource: str | None = None,
    namespace: str | None = None,
    command: Annotated[str | None, typer.Option(help="text in the kubectl command")] = None,
    outcome: OutcomeOpt = None,
    via: ViaOpt = None,
    since: Annotated[str | None, typer.Option(help="RFC 3339 time or a duration ago (2h)")] = None,
    until: str | None = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    continue_token: Annotated[str | None, typer.Option("--continue", help="token from the previous page")] = None,
    output: OutputOpt = Format.table,
) -> None:
    """List sessions, newest first."""
    client = make_client(server, token, token_command, ca)
    params = _filters(
        user=user,
        group=group,
        connection=connection,
        verb=verb,
        resource=resource,
        namespace=namespace,
        command=command,
        outcome=outcome,
        via=via,
        since=since,
        until=until,
        limit=limit,
        **{"continue": continue_token},
    )
    try:
        page = client.get("/api/v1/sessions", params)
    except ApiError as exc:
        raise fail(str(exc)) from exc
    more = page["metadata"]["continue"]
    if print_structured(page, output):
        return
    table = Table("ID", "STARTED", "VIA", "USER", "CONNECTION", "COMMAND", "TARGET", "REQUESTS", "OUTCOME", box=None)
    for s in page["items"]:
        table.add_row(
            s["id"],
            s["started_at"][:19],
            s.get("via") or "-",
            s["username"] or "(no identity)",
            s["connection"],
            s["command"] or "-",
            describe_target(s.get("target")),
            str(s["requests"]),
            s["outcome"] or "-",
        )
    Console(highlight=False, width=200).print(table)
    if more:
        typer.echo(f"more sessions: add --continue {more}", err=True)


@sessions_app.command("show")
def show_command(
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    output: OutputOpt = Format.table,
) -> None:
    """Show a session: who, where, and the timeline of its events."""
    client = make_client(server, token, token_command, ca)
    try:
        session = client.get(_session_path(session_id))
        events = list(client.pages(_session_path(session_id, "/events"), {"limit": 1000}))
    except ApiError as exc:
        raise fail(str(exc)) from exc
    if print_structured({"session": session, "events": events}, output):
        return
    claims = ", ".join(f"{k}={v}" for k, v in sorted(session["claims"].items()))
    for label, value in (
        ("Session", session["id"]),
        ("Via", session.get("via") or "kubernetes API"),
        ("User", session["username"] or "(no identity)"),
        ("Subject", session["subject"]),
        ("Issuer", session["issuer"]),
        ("Groups", ", ".join(session["groups"])),
        ("Claims", claims),
        ("Connection", session["connection"]),
        ("Command", session["command"]),
        ("Target", describe_target(session.get("target"))),
        ("Client", session["user_agent"]),
        ("Source", session["source"]),
        ("Started", session["started_at"]),
        ("Ended", session["ended_at"]),
        ("Outcome", session["outcome"]),
        ("Requests", str(session["requests"])),
    ):
        typer.echo(f"{label + ':':<12}{value}")
    typer.echo("")
    start = parse_time(session["started_at"])
    for event in events:
        offset = parse_time(event["time"]) - start
        typer.echo(f"{offset:>+10.3f}s  {event['seq']:>8}  {event['type']:<11} {summarize(event)}")


@sessions_app.command("replay")
def replay_command(
    session_id: Annotated[str, typer.Argument(metavar="ID")],
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    speed: Annotated[float, typer.Option(min=0.01, help="2 plays twice as fast")] = 1.0,
    max_wait: Annotated[
        float, typer.Option("--idle-limit", "--max-wait", min=0.0, help="cap any pause at this many seconds")
    ] = 5.0,
) -> None:
    """Play a session back. An exec or attach session plays its terminal output with the original timing;
    any other, the kubectl command and then each request and answer."""
    client = make_client(server, token, token_command, ca)
    try:
        session = client.get(_session_path(session_id))
        events = list(client.pages(_session_path(session_id, "/events"), {"limit": 1000}))
        cast = cast_from_events(session, events)
        if cast is not None:

            def write(text: str) -> None:
                sys.stdout.write(text)
                sys.stdout.flush()

            play(cast, write, time.sleep, speed=speed, idle_limit=max_wait)
            return
        for step in replay_steps(session, events):
            time.sleep(min(step.delay / speed, max_wait))
            sys.stdout.write(step.text)
            sys.stdout.flush()
    except ApiError as exc:
        raise fail(str(exc)) from exc


@sessions_app.command("export")
def export_command(
    session_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="one session; default: all matching")] = None,
    server: ServerOpt = "",
    token: TokenOpt = None,
    token_command: TokenCommandOpt = None,
    ca: CaOpt = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="jsonl: one JSON object per line, for a SIEM; asciicast: an exec "
            "or attach session as an asciicast v2 file for asciinema",
        ),
    ] = ExportFormat.jsonl,
    file: Annotated[Path | None, typer.Option("--file", help="write to this file (default: stdout)")] = None,
    user: str | None = None,
    group: str | None = None,
    connection: str | None = None,
    outcome: OutcomeOpt = None,
    since: str | None = None,
    until: str | None = None,
) -> None:
    """Export sessions and their events as JSON lines (a session line, then its events), or one exec
    session as asciicast."""
    client = make_client(server, token, token_command, ca)
    if fmt == "asciicast":
        _export_cast(client, session_id, file)
        return
    out = sys.stdout.buffer
    try:
        if session_id:
            ids: Iterator[str] = iter([session_id])
        else:
            params = _filters(
                user=user, group=group, connection=connection, outcome=outcome, since=since, until=until, limit=500
            )
            ids = (s["id"] for s in client.pages("/api/v1/sessions", params))
        for sid in ids:
            for line in client.lines(_session_path(sid, "/export"), {"format": "jsonl"}):
                out.write(line + b"\n")
        out.flush()
    except ApiError as exc:
        raise fail(str(exc)) from exc


def _export_cast(client: Any, session_id: str | None, file: Path | None) -> None:
    if not session_id:
        raise fail("--format asciicast exports one session: give its ID", 2)
    try:
        session = client.get(_session_path(session_id))
        cast = cast_from_events(session, client.pages(_session_path(session_id, "/events"), {"limit": 1000}))
    except ApiError as exc:
        raise fail(str(exc)) from exc
    if cast is None:
        raise fail(f"session {session_id} has no exec or attach stream to export as asciicast", 1)
    if file:
        file.write_text(cast.dumps(), encoding="utf-8")
    else:
        sys.stdout.write(cast.dumps())


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")
