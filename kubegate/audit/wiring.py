"""The audit parts a running gateway holds, built from `audit:`: checkpoint anchoring and export sinks."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from kubegate.audit.anchoring import Anchoring
from kubegate.audit.anchors import Anchor, S3Anchor, WebhookAnchor
from kubegate.audit.config import AuditConfig
from kubegate.audit.export import Exporter, ExportMetrics
from kubegate.audit.signing import FileSigner, SigningError
from kubegate.audit.sinks import make_sink
from kubegate.configbase import ConfigError
from kubegate.store.engine import Store, describe

log = logging.getLogger(__name__)


@dataclass(eq=False)
class AuditServices:
    anchoring: Anchoring | None = None
    exporters: list[Exporter] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: AuditConfig, store: Store, registry: CollectorRegistry) -> AuditServices:
        services = cls()
        anchors: list[Anchor] = []
        if config.anchors.s3 is not None:
            anchors.append(S3Anchor(config.anchors.s3))
        if config.anchors.webhook is not None:
            anchors.append(WebhookAnchor(config.anchors.webhook))
        if anchors:
            assert config.signing.key_file is not None  # AuditConfig refuses anchors without a key
            try:
                signer = FileSigner(config.signing.key_file)
            except SigningError as exc:
                raise ConfigError(f"audit.signing.key_file: {exc}") from exc
            services.anchoring = Anchoring(store, signer, anchors, config.checkpoint_interval)
        export = config.export
        metrics = ExportMetrics(registry)
        services.exporters = [
            Exporter(
                store,
                make_sink(sink),
                batch_max=sink.batch_max,
                interval=export.interval,
                retry_max_interval=export.retry_max_interval,
                lag_alarm=export.lag_alarm,
                lease_seconds=export.lease,
                metrics=metrics,
            )
            for sink in export.sinks
        ]
        return services

    def start(self) -> list[asyncio.Task[Any]]:
        if self.anchoring is not None:
            self.tasks.append(asyncio.create_task(self.anchoring.run(), name="audit-anchoring"))
        for exporter in self.exporters:
            self.tasks.append(asyncio.create_task(exporter.run(), name=f"audit-export-{exporter.sink.name}"))
        return self.tasks

    async def close(self) -> None:
        """After the tasks were cancelled: release what the sinks hold."""
        for exporter in self.exporters:
            await exporter.sink.close()
            try:
                await exporter.release()
            except Exception as exc:  # the store is going away too: the lease then simply runs out
                log.warning("export sink %s: cannot release its lease: %s", exporter.sink.name, describe(exc))

    def status(self) -> dict[str, Any]:
        """/readyz details: informative, never a reason to stop serving (recording, not export, is the gate)."""
        checks: dict[str, Any] = {}
        if self.anchoring is not None:
            checks["anchoring"] = self.anchoring.status()
        if self.exporters:
            checks["export"] = {e.sink.name: e.status() for e in self.exporters}
        return checks
