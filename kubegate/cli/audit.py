"""`kubegate audit verify`: walk the recorded hash chain and name the first event tampered with, then check
the chain against the signed checkpoints read back from each anchor (S3, and the webhook when it has a
read_url); `kubegate audit keygen`: a new signing key."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from kubegate.audit.anchorcheck import AnchorReport, check, delivered
from kubegate.audit.anchors import AnchorError, ReadableAnchor, S3Anchor, WebhookAnchor
from kubegate.audit.config import AnchorsConfig, AuditConfig
from kubegate.audit.export import Exporter
from kubegate.audit.signing import Keyring, SigningError, generate
from kubegate.audit.wiring import AuditServices
from kubegate.cli.context import ContextError, load_context
from kubegate.cli.db import ConfigOpt, StoreUrlOpt, fail
from kubegate.cli.groups import command_group
from kubegate.config import Config, load_config
from kubegate.configbase import ConfigError
from kubegate.recording.chain import ChainReport, verify
from kubegate.store.engine import Store, StoreError, describe

audit_app = command_group("Check the integrity of the recorded audit trail.")


def _config(path: Path | None) -> Config:
    try:
        path = path or (Path(c) if (c := load_context().get("config")) else None)
        return load_config(path) if path else Config()
    except (ContextError, ConfigError) as exc:
        raise fail(str(exc)) from exc


def _keyring(audit: AuditConfig) -> Keyring:
    paths = audit.signing.trusted_keys or ([audit.signing.key_file] if audit.signing.key_file else [])
    if not paths:
        raise fail("audit.signing.trusted_keys: an anchor is configured but no key to verify checkpoints with")
    try:
        return Keyring.from_files(paths)
    except SigningError as exc:
        raise fail(f"audit.signing.trusted_keys: {exc}") from exc


def _readable_anchors(anchors: AnchorsConfig) -> list[ReadableAnchor]:
    found: list[ReadableAnchor] = []
    if anchors.s3 is not None:
        found.append(S3Anchor(anchors.s3))
    if anchors.webhook is not None:
        webhook = WebhookAnchor(anchors.webhook)
        if webhook.readable:
            found.append(webhook)
        else:
            typer.echo("the webhook anchor is not read back: audit.anchors.webhook.read_url is not set", err=True)
    return found


async def _verify(
    url: str, anchors: list[ReadableAnchor], keys: Keyring | None
) -> tuple[ChainReport, list[tuple[ReadableAnchor, AnchorReport]]]:
    store = await Store.open(url, migrate=False)
    try:
        async with store.read() as conn:
            chain = await verify(conn)
            if not chain.ok or keys is None:
                return chain, []
            reports = []
            for anchor in anchors:
                written = await delivered(conn, anchor.name)
                found = await anchor.read_back(written[-1] if written else 0)
                reports.append((anchor, await check(conn, found, keys, anchor=anchor.name, where=anchor.where)))
            return chain, reports
    finally:
        await store.close()


@audit_app.command("verify")
def verify_command(config: ConfigOpt = None, store_url: StoreUrlOpt = None) -> None:
    """Check every event's hash and link, then the chain against the signed checkpoints read back from each
    anchor (audit.anchors.s3; the webhook's read_url); exit 1 naming an edit, a removal, a rewrite, a
    truncation or a missing anchor."""
    cfg = _config(config)
    anchors = _readable_anchors(cfg.audit.anchors)
    keys = _keyring(cfg.audit) if anchors else None
    try:
        url = store_url or cfg.store_url
        report, anchored = asyncio.run(_verify(url, anchors, keys))
    except AnchorError as exc:
        raise fail(f"cannot read the checkpoints: {exc}") from exc
    except Exception as exc:  # any failure to read the chain must not look like a clean result
        raise fail(f"cannot verify the audit chain: {describe(exc)}") from exc
    if report.problem is not None:
        p = report.problem
        where = f" (session {p.session_id})" if p.session_id else ""
        typer.echo(f"audit chain BROKEN: {p.message}{where}", err=True)
        typer.echo(f"checked {report.events} events before the problem", err=True)
        raise typer.Exit(1)
    broken = [r.problem for _, r in anchored if r.problem is not None]
    for problem in broken:
        typer.echo(f"audit chain BROKEN ({problem.kind}): {problem.message}", err=True)
    if broken:
        raise typer.Exit(1)
    span = f"events {report.first_seq}..{report.last_seq}" if report.events else "no events"
    typer.echo(f"audit chain OK: {report.events} events ({span}), head {report.head_hash}")
    for anchor, found in anchored:
        if found.last is not None:
            typer.echo(
                f"anchored: signed checkpoints 1..{found.checkpoints} on {anchor.where} match, the last "
                f"through event {found.last.seq}; {found.unanchored} events since are not anchored yet"
            )


@audit_app.command("export")
def export_command(
    config: ConfigOpt = None,
    store_url: StoreUrlOpt = None,
    once: Annotated[bool, typer.Option("--once", help="stop when every sink has caught up")] = False,
) -> None:
    """Export recorded events to the sinks in audit.export (what kubegate serve does), from a process of its
    own: a sidecar, or a job that runs --once. Sinks share their cursors with the gateway's exporters."""
    cfg = _config(config)
    if not cfg.audit.export.sinks:
        raise fail("audit.export.sinks: no sink is configured")
    try:
        asyncio.run(_export(store_url or cfg.store_url, cfg.audit, once))
    except Exception as exc:
        raise fail(f"export stopped: {describe(exc)}") from exc


async def _export(url: str, audit: AuditConfig, once: bool) -> None:
    from prometheus_client import CollectorRegistry

    store = await Store.open(url, migrate=False)
    services = AuditServices.from_config(
        audit.model_copy(update={"anchors": AnchorsConfig()}), store, CollectorRegistry()
    )
    try:
        if once:
            for exporter in services.exporters:
                await _catch_up(exporter)
        else:
            await asyncio.gather(*services.start())
    finally:
        await services.close()
        await store.close()


async def _catch_up(exporter: Exporter) -> None:
    """Export until the sink has every event; wait out the lease of a process that held the sink and stopped."""
    deadline = time.monotonic() + 2 * exporter.lease_seconds
    while True:
        if await exporter.step():
            continue
        if not exporter.standby:
            return
        if time.monotonic() > deadline:
            raise StoreError(
                f"sink {exporter.sink.name} is being exported by another process (a gateway holds its lease)"
            )
        await asyncio.sleep(exporter.interval)


@audit_app.command("keygen")
def keygen_command(
    out: Annotated[Path, typer.Argument(help="where to write the private key (PEM); the public key goes to OUT.pub")],
) -> None:
    """Make an Ed25519 key for signing checkpoints (see docs: rotating the signing key)."""
    try:
        kid = generate(out)
    except FileExistsError as exc:
        raise fail(f"{out} exists: kubegate never overwrites a signing key") from exc
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc.strerror}") from exc
    typer.echo(f"wrote {out} and {out}.pub: key id {kid}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
