"""Reload on change: a valid change is picked up; an invalid one keeps the previous policy and says why."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kubegate.config import Config, load_config, policy_engine
from kubegate.configbase import ConfigError
from kubegate.policy.engine import PolicyEngine
from tests.policy.builders import req, rule, who

ALLOW_PODS = "policies:\n  - {name: pods, action: allow, match: {resources: [pods]}}\n"
ALLOW_SVC = "policies:\n  - {name: services, action: allow, match: {resources: [services]}}\n"
INVALID = "policies:\n  - {name: pods, action: allow}\n  - {name: bad, action: allow, match: {verbs: [nope]}}\n"
PODS, SERVICES = req("GET", "/api/v1/namespaces/a/pods"), req("GET", "/api/v1/namespaces/a/services")


def action(engine: PolicyEngine, info) -> str:
    return engine.decide(who(), info, "c").action


def test_from_config_reads_config_rules_and_folders(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(ALLOW_PODS)
    engine = policy_engine(Config(policies=[rule("svc", match={"resources": ["services"]})], policy_dirs=[tmp_path]))
    assert engine.status() == {"ok": True, "rules": 2, "error": ""}
    assert (action(engine, PODS), action(engine, SERVICES)) == ("allow", "allow")


def test_startup_with_an_invalid_file_fails(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(INVALID)
    with pytest.raises(ConfigError, match=r"p.yaml: policies\[1\].match.verbs"):
        policy_engine(Config(policy_dirs=[tmp_path]))


def test_reload_picks_up_changes_and_keeps_previous_on_error(tmp_path: Path, caplog) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW_PODS)
    engine = policy_engine(Config(policy_dirs=[tmp_path]))
    assert engine.reload() is False  # nothing changed

    policy.write_text(ALLOW_SVC)
    assert engine.reload() is True
    assert (action(engine, PODS), action(engine, SERVICES)) == ("deny", "allow")

    with caplog.at_level(logging.ERROR, logger="kubegate.policy"):
        policy.write_text(INVALID)
        assert engine.reload() is True
    assert (action(engine, PODS), action(engine, SERVICES)) == ("deny", "allow")  # previous policy
    status = engine.status()
    assert status["ok"] is False and status["rules"] == 1
    assert status["error"].startswith(f"{policy}: policies[1].match.verbs: 'nope' is not a request verb")
    assert "keeping the previous 1 rules" in caplog.text and "policies[1].match.verbs" in caplog.text
    assert engine.reload() is False  # the same broken file is reported once

    (tmp_path / "more.yml").write_text("- {name: nodes, action: allow, match: {resources: [nodes]}}\n")
    policy.write_text(ALLOW_PODS)
    assert engine.reload() is True
    assert engine.status() == {"ok": True, "rules": 2, "error": ""}
    assert action(engine, PODS) == "allow"

    (tmp_path / "more.yml").unlink()
    assert engine.reload() is True and engine.status()["rules"] == 1


def test_config_file_changes_are_watched_too(tmp_path: Path) -> None:
    config = tmp_path / "kubegate.yaml"
    config.write_text(ALLOW_PODS)
    engine = policy_engine(load_config(config), config_path=config)
    assert action(engine, PODS) == "allow"
    config.write_text(ALLOW_SVC)
    assert engine.reload() and action(engine, SERVICES) == "allow" and action(engine, PODS) == "deny"
    config.write_text("policies: [{name: x}]\n")
    assert engine.reload() and engine.status()["error"].startswith(f"{config}: policies[0].action: Field required")
    assert action(engine, SERVICES) == "allow"


async def test_watch_reloads_in_the_background(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW_PODS)
    engine = policy_engine(Config(policy_dirs=[tmp_path]))
    loop = asyncio.get_running_loop()
    reloads: asyncio.Queue[dict] = asyncio.Queue()
    reload = engine.reload

    def reporting_reload() -> bool:  # watch() reloads in a worker thread
        changed = reload()
        if changed:
            loop.call_soon_threadsafe(reloads.put_nowait, engine.status())
        return changed

    engine.reload = reporting_reload  # type: ignore[method-assign]
    task = asyncio.create_task(engine.watch(interval=0.01))
    try:
        policy.write_text(ALLOW_SVC)
        assert (await asyncio.wait_for(reloads.get(), 10))["ok"]
        assert action(engine, SERVICES) == "allow"
        policy.write_text(INVALID)
        assert not (await asyncio.wait_for(reloads.get(), 10))["ok"]
        assert action(engine, SERVICES) == "allow"
    finally:
        task.cancel()


def test_a_reload_naming_an_unknown_mask_keeps_the_previous_policy(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(ALLOW_PODS)
    engine = policy_engine(Config(policy_dirs=[tmp_path]))
    policy.write_text("policies:\n  - {name: pods, action: allow, match: {resources: [pods]}, mask: [nope]}\n")
    assert engine.reload() is True
    assert action(engine, PODS) == "allow" and engine.decide(who(), PODS, "c").masks == ()
    assert "policies[0].mask: 'nope' is not a mask profile or detector" in engine.status()["error"]
    config = Config.model_validate(
        {"masking": {"detectors": [{"name": "nope", "pattern": "x+"}]}, "policy_dirs": [str(tmp_path)]}
    )
    assert policy_engine(config).decide(who(), PODS, "c").masks == ("nope",), "a detector is a mask"
