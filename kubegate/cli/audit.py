"""`kubegate audit verify`: walk the recorded hash chain and name the first event tampered with."""

from __future__ import annotations

import asyncio

import typer

from kubegate.cli.db import ConfigOpt, StoreUrlOpt, fail, resolve_store_url
from kubegate.cli.groups import command_group
from kubegate.recording.chain import ChainReport, verify
from kubegate.store.engine import Store, describe

audit_app = command_group("Check the integrity of the recorded audit trail.")


async def _verify(url: str) -> ChainReport:
    store = await Store.open(url, migrate=False)
    try:
        async with store.read() as conn:
            return await verify(conn)
    finally:
        await store.close()


@audit_app.command("verify")
def verify_command(config: ConfigOpt = None, store_url: StoreUrlOpt = None) -> None:
    """Check every event's hash and link; exit 1 naming the first event edited, removed or reordered."""
    url = resolve_store_url(config, store_url)
    try:
        report = asyncio.run(_verify(url))
    except Exception as exc:  # any failure to read the chain must not look like a clean result
        raise fail(f"cannot verify the audit chain: {describe(exc)}") from exc
    if report.problem is not None:
        p = report.problem
        where = f" (session {p.session_id})" if p.session_id else ""
        typer.echo(f"audit chain BROKEN: {p.message}{where}", err=True)
        typer.echo(f"checked {report.events} events before the problem", err=True)
        raise typer.Exit(1)
    span = f"events {report.first_seq}..{report.last_seq}" if report.events else "no events"
    typer.echo(f"audit chain OK: {report.events} events ({span}), head {report.head_hash}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
