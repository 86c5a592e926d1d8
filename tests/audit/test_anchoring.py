"""Checkpoints are signed when the chain moves and land on every anchor: S3 under object lock, a webhook;
an anchor that fails gets them on a later round and /readyz says why until then."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from kubegate.audit.anchoring import Anchoring
from kubegate.audit.anchors import S3Anchor, WebhookAnchor
from kubegate.audit.checkpoint import check_signature, digest, parse
from kubegate.audit.config import S3AnchorConfig, WebhookAnchorConfig
from kubegate.audit.signing import FileSigner, Keyring, generate
from kubegate.store.engine import Store
from kubegate.store.tables import chain_anchors, chain_head
from tests.audit.builders import receiver, record


def signer(tmp_path: Path) -> FileSigner:
    generate(tmp_path / "signing.pem")
    return FileSigner(tmp_path / "signing.pem")


async def test_a_checkpoint_is_made_only_when_the_chain_moved_and_reaches_both_anchors(
    store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig, s3: Any
) -> None:
    key = signer(tmp_path)
    async with receiver() as hook:
        anchors = [S3Anchor(s3_anchor_config), WebhookAnchor(WebhookAnchorConfig(url=hook.url))]
        anchoring = Anchoring(store, key, anchors, interval=60, clock=lambda: 1_700_000_000.0)
        assert await anchoring.checkpoint() is None  # an empty chain has nothing to vouch for
        await record(store, 3)
        await anchoring.round()
        await anchoring.round()  # nothing new: no second checkpoint
        await record(store, 2, session="k2")
        await anchoring.round()
        assert len(hook.received) == 2
    found = S3Anchor(s3_anchor_config).read_all()
    assert sorted(found) == [1, 2]
    assert found[1] == hook.received[0] and found[2] == hook.received[1]
    first, second = parse(found[1]), parse(found[2])
    async with store.read() as conn:
        head = (await conn.execute(sa.select(chain_head))).one()
        rows = (await conn.execute(sa.select(chain_anchors).order_by(chain_anchors.c.number))).all()
    assert (second.checkpoint.seq, second.checkpoint.hash, second.checkpoint.events) == (head.seq, head.hash, head.seq)
    assert first.checkpoint.seq == 4 and first.checkpoint.time == 1_700_000_000.0
    assert first.checkpoint.previous == "" and second.checkpoint.previous == digest(first.document)
    assert [r.delivered for r in rows] == [["s3", "webhook"], ["s3", "webhook"]]
    keys = Keyring([key.public_key])
    assert check_signature(first, keys) is None and check_signature(second, keys) is None
    head_object = s3.head_object(Bucket=s3_anchor_config.bucket, Key=S3Anchor(s3_anchor_config).key(1))
    assert head_object["ObjectLockMode"] == "COMPLIANCE" and head_object["ObjectLockRetainUntilDate"]


async def test_an_anchor_that_fails_is_named_then_caught_up(store: Store, tmp_path: Path) -> None:
    await record(store, 1)
    async with receiver() as hook:
        hook.failures = 1
        anchoring = Anchoring(store, signer(tmp_path), [WebhookAnchor(WebhookAnchorConfig(url=hook.url))], 60)
        await anchoring.round()
        assert hook.received == []
        assert anchoring.status()["problems"] == {"webhook": "the checkpoint webhook answered HTTP 503"}
        await anchoring.round()
        assert len(hook.received) == 1 and "problems" not in anchoring.status()
        assert orjson.loads(hook.received[0])["checkpoint"]["number"] == 1


async def test_a_version_put_over_a_checkpoint_does_not_replace_it(
    store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig, s3: Any
) -> None:
    await record(store, 1)
    anchor = S3Anchor(s3_anchor_config)
    await Anchoring(store, signer(tmp_path), [anchor], 60).round()
    original = anchor.read_all()[1]
    s3.put_object(Bucket=s3_anchor_config.bucket, Key=anchor.key(1), Body=b"{}", ChecksumAlgorithm="SHA256")
    assert anchor.read_all()[1] == original
