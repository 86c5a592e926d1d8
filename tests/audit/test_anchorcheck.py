"""The chain against its anchored checkpoints: a chain rewritten whole, a chain cut short with its head moved
back, a checkpoint missing from the anchor, and signatures forged or by keys no longer trusted are named."""

from __future__ import annotations

from pathlib import Path

import orjson

from kubegate.audit.anchorcheck import AnchorReport, check
from kubegate.audit.anchoring import Anchoring
from kubegate.audit.anchors import S3Anchor
from kubegate.audit.config import S3AnchorConfig
from kubegate.audit.signing import FileSigner, Keyring, generate
from kubegate.recording.chain import verify
from kubegate.store.engine import Store
from tests.audit.builders import record, rewrite_chain, truncate_chain


async def anchored(store: Store, key: FileSigner, anchor: S3Anchor, rounds: int = 2) -> None:
    for n in range(rounds):
        await record(store, 3, session=f"k{n}")
        await Anchoring(store, key, [anchor], 60).round()


async def checked(store: Store, found: dict[int, bytes], keys: Keyring) -> AnchorReport:
    async with store.read() as conn:
        assert (await verify(conn)).ok  # the chain holds together in itself: only the anchor can tell
        return await check(conn, found, keys, anchor="s3", where="s3://anchors/")


def new_key(tmp_path: Path, name: str) -> FileSigner:
    generate(tmp_path / name)
    return FileSigner(tmp_path / name)


async def test_an_untouched_chain_matches_its_anchor_and_counts_what_came_after(
    store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig
) -> None:
    key, anchor = new_key(tmp_path, "k.pem"), S3Anchor(s3_anchor_config)
    await anchored(store, key, anchor)
    await record(store, 2, session="later")
    report = await checked(store, anchor.read_all(), Keyring([key.public_key]))
    assert report.ok and report.checkpoints == 2
    assert report.last is not None and report.last.seq == 8 and report.unanchored == 3


async def test_a_chain_rewritten_whole_is_named(store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig) -> None:
    key, anchor = new_key(tmp_path, "k.pem"), S3Anchor(s3_anchor_config)
    await anchored(store, key, anchor)
    await rewrite_chain(store, lambda data: data.replace("p1", "p7"))
    report = await checked(store, anchor.read_all(), Keyring([key.public_key]))
    assert report.problem is not None and report.problem.kind == "rewritten"
    assert "the chain was rewritten: event 4 is not the one checkpoint 1" in report.problem.message


async def test_a_chain_cut_short_is_named(store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig) -> None:
    key, anchor = new_key(tmp_path, "k.pem"), S3Anchor(s3_anchor_config)
    await anchored(store, key, anchor)
    await truncate_chain(store, 5)
    report = await checked(store, anchor.read_all(), Keyring([key.public_key]))
    assert report.problem is not None and report.problem.kind == "truncated"
    assert "it ends at event 5, but checkpoint 2" in report.problem.message
    assert "events 6..8 were removed" in report.problem.message


async def test_missing_checkpoints_are_named(store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig) -> None:
    key, anchor = new_key(tmp_path, "k.pem"), S3Anchor(s3_anchor_config)
    keys = Keyring([key.public_key])
    await anchored(store, key, anchor, rounds=3)
    found = anchor.read_all()
    gap = await checked(store, {n: d for n, d in found.items() if n != 2}, keys)
    assert gap.problem is not None and gap.problem.kind == "missing-anchor"
    assert "checkpoint 2 missing from s3://anchors/" in gap.problem.message
    newest_gone = await checked(store, {n: d for n, d in found.items() if n != 3}, keys)
    assert (
        newest_gone.problem is not None
        and "checkpoint 3 was written to s3://anchors/ but is not there" in newest_gone.problem.message
    )
    nothing = await checked(store, {}, keys)
    assert nothing.problem is not None and nothing.problem.kind == "missing-anchor"


async def test_forged_and_untrusted_checkpoints_are_refused_and_rotation_keeps_old_ones(
    store: Store, tmp_path: Path, s3_anchor_config: S3AnchorConfig
) -> None:
    old, new, anchor = new_key(tmp_path, "old.pem"), new_key(tmp_path, "new.pem"), S3Anchor(s3_anchor_config)
    await record(store, 1)
    await Anchoring(store, old, [anchor], 60).round()
    await record(store, 1, session="after-rotation")
    await Anchoring(store, new, [anchor], 60).round()
    found = anchor.read_all()
    assert (await checked(store, found, Keyring([old.public_key, new.public_key]))).ok
    retired = await checked(store, found, Keyring([new.public_key]))
    assert retired.problem is not None and retired.problem.kind == "signature"
    assert f"checkpoint 1 on s3://anchors/ is not genuine: it is signed by key {old.key_id}" in retired.problem.message
    doc = orjson.loads(found[2])
    doc["checkpoint"]["seq"] = 1
    forged = await checked(store, {**found, 2: orjson.dumps(doc)}, Keyring([old.public_key, new.public_key]))
    assert forged.problem is not None and "forged or altered" in forged.problem.message
