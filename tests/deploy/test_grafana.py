"""deploy/grafana/kubegate.json: every query names a metric a running gateway serves on /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from kubegate.app import GATEWAY, build_app
from kubegate.config import Config

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "kubegate.json"
METRIC = re.compile(r"\bkubegate_[a-z_]+")
SUFFIXES = ("_bucket", "_sum", "_count")


async def test_every_dashboard_query_names_a_served_metric(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name for panel in dashboard["panels"] for target in panel["targets"] for name in METRIC.findall(target["expr"])
    }
    assert len(queried) >= 12
    app = build_app(Config.model_validate({"state_dir": tmp_path}))
    async with TestClient(TestServer(app)) as client:
        gateway = app[GATEWAY]
        await gateway.recorder.record_event(None, "note", {}, durable=True)  # one commit to time
        text = await (await client.get("/metrics")).text()
    assert "kubegate_recorder_commit_seconds_count 1.0" in text
    assert "kubegate_store_healthy 1.0" in text and "kubegate_recorder_queue_depth 0.0" in text
    assert 'kubegate_approvals_pending{kind="request"} 0.0' in text  # read from the store for this scrape
    served = {m.group(1) for m in re.finditer(r"^# (?:HELP|TYPE) (kubegate_[a-z_]+)", text, re.MULTILINE)}
    served |= {m.group(1) for m in re.finditer(r"^(kubegate_[a-z_]+)", text, re.MULTILINE)}
    counters = {name + "_total" for name in served}  # a counter's HELP line may name it without _total
    missing = {
        name
        for name in queried
        if name not in served | counters
        and not any(name.endswith(s) and name.removesuffix(s) in served for s in SUFFIXES)
    }
    assert not missing, f"the dashboard queries metrics /metrics does not serve: {sorted(missing)}"
