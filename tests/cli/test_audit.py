"""`kubegate audit verify` on a SQLite store that an intruder edits with the sqlite3 module."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from kubegate.cli import audit
from kubegate.identity.model import Identity
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store


async def _record(url: str, requests: int) -> None:
    store = await Store.open(url)
    recorder = Recorder(store)
    flow = SimpleNamespace(kubectl_session="k", kubectl_command="kubectl get",
                           identity=Identity(issuer="https://idp.example", subject="dev", username="idp#dev"),
                           connection=SimpleNamespace(name="dev"),
                           request=SimpleNamespace(headers={}, remote="10.0.0.7"))
    sid = recorder.session_for(flow)  # type: ignore[arg-type]
    for i in range(requests):
        await recorder.record_event(sid, "request", {"path": f"/api/v1/pods/p{i}"}, durable=True)
    await recorder.close()
    await store.close()


def verify(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    audit.register(app)
    result = CliRunner().invoke(app, ["audit", "verify", *args])
    return result.exit_code, result.output


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "kubegate.db"
    asyncio.run(_record(f"sqlite:///{path}", 5))
    return path


def test_an_untouched_store_verifies(db_path: Path, tmp_path: Path) -> None:
    code, out = verify("--store-url", f"sqlite:///{db_path}")
    assert code == 0, out
    assert "audit chain OK: 6 events (events 1..6)" in out
    config = tmp_path / "kubegate.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{db_path}'}}\n")
    assert verify("--config", str(config))[0] == 0


def test_an_edited_row_fails_verification_naming_it(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE events SET data = replace(data, 'p2', 'p9') WHERE seq = 4")
    code, out = verify("--store-url", f"sqlite:///{db_path}")
    assert code == 1
    assert "audit chain BROKEN: event 4 was edited" in out
    assert "checked 3 events before the problem" in out


def test_a_removed_row_fails_verification_naming_it(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM events WHERE seq = 3")
    code, out = verify("--store-url", f"sqlite:///{db_path}")
    assert code == 1 and "event 3 removed" in out


def test_a_store_that_cannot_be_read_is_not_a_pass(tmp_path: Path) -> None:
    code, out = verify("--store-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 2 and "cannot verify the audit chain: there is no database at" in out
    assert not (tmp_path / "empty.db").exists()
