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
from tests.audit.builders import CheckpointReceiver, checkpoint_receiver


async def _record(url: str, requests: int) -> None:
    store = await Store.open(url)
    recorder = Recorder(store)
    flow = SimpleNamespace(
        kubectl_session="k",
        kubectl_command="kubectl get",
        identity=Identity(issuer="https://idp.example", subject="dev", username="idp#dev"),
        connection=SimpleNamespace(name="dev"),
        request=SimpleNamespace(headers={}, remote="10.0.0.7"),
    )
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


# -- against the signed checkpoints on an S3 anchor ------------------------------------------------------


def _anchored_config(tmp_path: Path, db_path: Path, bucket: str, endpoint: str) -> Path:
    """A kubegate.yaml with a signing key and an S3 anchor, and one checkpoint of db_path's chain on it."""
    from kubegate.audit.anchoring import Anchoring
    from kubegate.audit.anchors import S3Anchor
    from kubegate.audit.signing import FileSigner
    from kubegate.config import load_config

    code, out = keygen(str(tmp_path / "keys" / "signing.pem"))
    assert code == 0 and "key id" in out
    config = tmp_path / "kubegate.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{db_path}'}}\naudit:\n  signing: {{key_file: keys/signing.pem, "
        f"trusted_keys: [keys/signing.pem.pub]}}\n  anchors:\n    s3: {{bucket: {bucket}, "
        f"endpoint_url: '{endpoint}', region: us-east-1, retention: 1d}}\n"
    )
    audit_config = load_config(config).audit
    assert audit_config.anchors.s3 is not None and audit_config.signing.key_file is not None

    async def checkpoint() -> None:
        store = await Store.open(f"sqlite:///{db_path}")
        assert audit_config.anchors.s3 is not None and audit_config.signing.key_file is not None
        await Anchoring(
            store, FileSigner(audit_config.signing.key_file), [S3Anchor(audit_config.anchors.s3)], 60
        ).round()
        await store.close()

    asyncio.run(checkpoint())
    return config


def keygen(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    audit.register(app)
    result = CliRunner().invoke(app, ["audit", "keygen", *args])
    return result.exit_code, result.output


def test_a_rewritten_database_fails_against_its_s3_anchor(
    db_path: Path, tmp_path: Path, locked_bucket: str, s3_endpoint: str
) -> None:
    from tests.audit.builders import rewrite_chain

    config = _anchored_config(tmp_path, db_path, locked_bucket, s3_endpoint)
    code, out = verify("--config", str(config))
    assert code == 0, out
    assert (
        f"anchored: signed checkpoints 1..1 on s3://{locked_bucket}/kubegate/checkpoints/ match, the last "
        "through event 6; 0 events since are not anchored yet" in out
    )

    async def rewrite() -> None:
        store = await Store.open(f"sqlite:///{db_path}")
        await rewrite_chain(store, lambda data: data.replace("p2", "p9"))
        await store.close()

    asyncio.run(rewrite())
    code, out = verify("--config", str(config))
    assert code == 1
    assert "audit chain BROKEN (rewritten): the chain was rewritten: event 6 is not the one checkpoint 1" in out


def test_a_truncated_database_fails_against_its_s3_anchor(
    db_path: Path, tmp_path: Path, locked_bucket: str, s3_endpoint: str
) -> None:
    config = _anchored_config(tmp_path, db_path, locked_bucket, s3_endpoint)
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM events WHERE seq > 4")
        db.execute("UPDATE chain_head SET seq = 4, hash = (SELECT hash FROM events WHERE seq = 4)")
    assert verify("--store-url", f"sqlite:///{db_path}")[0] == 0  # the chain alone cannot tell
    code, out = verify("--config", str(config))
    assert code == 1 and "audit chain BROKEN (truncated)" in out and "events 5..6 were removed" in out


def test_an_anchor_without_the_checkpoints_fails(
    db_path: Path, tmp_path: Path, locked_bucket: str, s3_endpoint: str, s3: object
) -> None:
    config = _anchored_config(tmp_path, db_path, locked_bucket, s3_endpoint)
    config.write_text(config.read_text().replace(locked_bucket, f"{locked_bucket}-empty"))
    s3.create_bucket(Bucket=f"{locked_bucket}-empty", ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
    code, out = verify("--config", str(config))
    assert code == 1 and "audit chain BROKEN (missing-anchor): checkpoint 1 was written to" in out


def test_an_anchor_with_no_key_to_check_it_is_a_config_error(db_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "kubegate.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{db_path}'}}\naudit:\n  anchors: {{s3: {{bucket: b}}}}\n")
    code, out = verify("--config", str(config))
    assert code == 2 and "audit: anchors need signing.key_file" in out


def _webhook_config(tmp_path: Path, db_path: Path, hook: CheckpointReceiver, rounds: int = 1) -> Path:
    """A kubegate.yaml with a signing key and a webhook anchor that can be read back, and `rounds`
    checkpoints of db_path's chain sent to it (each after one more request)."""
    from kubegate.audit.anchoring import Anchoring
    from kubegate.audit.anchors import WebhookAnchor
    from kubegate.audit.signing import FileSigner
    from kubegate.config import load_config

    assert keygen(str(tmp_path / "keys" / "signing.pem"))[0] == 0
    config = tmp_path / "kubegate.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{db_path}'}}\naudit:\n  signing: {{key_file: keys/signing.pem, "
        f"trusted_keys: [keys/signing.pem.pub]}}\n  anchors:\n    webhook: {{url: '{hook.url}', "
        f"read_url: '{hook.read_url}'}}\n"
    )
    audit_config = load_config(config).audit
    assert audit_config.anchors.webhook is not None and audit_config.signing.key_file is not None

    async def checkpoints() -> None:
        assert audit_config.anchors.webhook is not None and audit_config.signing.key_file is not None
        for n in range(rounds):
            if n:
                await _record(f"sqlite:///{db_path}", 1)
            store = await Store.open(f"sqlite:///{db_path}")
            signer = FileSigner(audit_config.signing.key_file)
            await Anchoring(store, signer, [WebhookAnchor(audit_config.anchors.webhook)], 60).round()
            await store.close()

    asyncio.run(checkpoints())
    return config


def test_the_webhook_anchor_is_read_back_and_a_rewrite_fails_against_it(db_path: Path, tmp_path: Path) -> None:
    from tests.audit.builders import rewrite_chain

    with checkpoint_receiver() as hook:
        config = _webhook_config(tmp_path, db_path, hook, rounds=2)
        code, out = verify("--config", str(config))
        assert code == 0, out
        assert (
            "anchored: signed checkpoints 1..2 on the webhook anchor at 127.0.0.1 match, the last through event 7"
            in out
        )
        assert sorted(set(hook.reads)) == list(range(1, 33))  # read on until a whole batch past 2 was missing

        async def rewrite() -> None:
            store = await Store.open(f"sqlite:///{db_path}")
            await rewrite_chain(store, lambda data: data.replace("p2", "p9"))
            await store.close()

        asyncio.run(rewrite())
        code, out = verify("--config", str(config))
    assert code == 1 and "audit chain BROKEN (rewritten): the chain was rewritten: event 6 is not the one" in out


def test_a_checkpoint_the_webhook_receiver_lost_or_replaced_is_named(db_path: Path, tmp_path: Path) -> None:
    with checkpoint_receiver() as hook:
        config = _webhook_config(tmp_path, db_path, hook, rounds=2)
        first, second = hook.held[1], hook.held[2]
        del hook.held[2]
        code, out = verify("--config", str(config))
        assert code == 1
        assert (
            "audit chain BROKEN (missing-anchor): checkpoint 2 was written to the webhook anchor at 127.0.0.1 "
            "but is not there" in out
        )
        del hook.held[1]
        hook.held[2] = second  # a gap: checkpoint 1 is gone and 2 is still there
        code, out = verify("--config", str(config))
        assert code == 1 and "checkpoint 1 missing from the webhook anchor at 127.0.0.1" in out
        hook.held[1] = first.replace(b'"events":', b'"events": ')  # the same checkpoint, not the same bytes
        code, out = verify("--config", str(config))
        assert code == 1 and "does not follow checkpoint 1 there: an anchored checkpoint was replaced" in out
        hook.held[1] = first.replace(b'"events":6', b'"events":5')  # what was signed, altered
        code, out = verify("--config", str(config))
        assert code == 1 and "audit chain BROKEN (signature): checkpoint 1 on the webhook anchor" in out


def test_a_webhook_receiver_that_cannot_answer_is_not_a_pass(db_path: Path, tmp_path: Path) -> None:
    with checkpoint_receiver() as hook:
        config = _webhook_config(tmp_path, db_path, hook)
        hook.read_status = 500
        code, out = verify("--config", str(config))
    assert code == 2 and "cannot read the checkpoints: the webhook anchor at 127.0.0.1: checkpoint" in out
    assert "HTTP 500" in out


def test_a_webhook_anchor_without_read_url_is_said_to_be_unchecked(db_path: Path, tmp_path: Path) -> None:
    with checkpoint_receiver() as hook:
        config = _webhook_config(tmp_path, db_path, hook)
        config.write_text(config.read_text().replace(f", read_url: '{hook.read_url}'", ""))
        code, out = verify("--config", str(config))
    assert code == 0 and "the webhook anchor is not read back: audit.anchors.webhook.read_url is not set" in out
