"""One access-log line per request, JSON or key=value text, on the `kubegate.access` logger.

The line says who (the verified username, never a token), through which connection, what (verb,
resource, namespace, name; never the query or a body, where tokens and masked values live), what
policy decided and by which rule, what the caller got (status, duration, bytes sent) and which
recorded session holds the rest. The stage is first in the pipeline, so its on_end runs last and
sees every other stage's outcome.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from typing import Any

import orjson

from kubegate.audit.config import AccessLogConfig
from kubegate.flow import Flow, Stage

ACCESS_LOGGER = "kubegate.access"


def access_record(flow: Flow, now: float) -> dict[str, Any]:
    info = flow.info
    decision = flow.decision
    refusal = flow.refusal
    grant = flow.grant
    status = flow.response_status or (refusal.code if refusal is not None else 0)
    return {
        "time": datetime.datetime.fromtimestamp(now, datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "identity": flow.identity.username if flow.identity is not None else "",
        "connection": str(getattr(flow.connection, "name", "")),
        "client": flow.request.remote or "",
        "verb": info.verb if info is not None else "",
        "resource": (info.resource + (f"/{info.subresource}" if info.subresource else "")) if info is not None else "",
        "namespace": info.namespace if info is not None else "",
        "name": (info.name if info is not None else "") or _created_name(flow),
        "decision": decision.action if decision is not None else ("refused" if refusal is not None else ""),
        "rule": ",".join(decision.deciding_rules) if decision is not None else "",
        "approval": grant.request_id if grant is not None else "",
        "status": status,
        "duration_ms": round((time.monotonic() - flow.started) * 1000, 3),
        "bytes": flow.bytes_sent,
        "session": flow.session_id,
        "request_id": flow.id,
        **({"error": flow.error} if flow.error else {}),
    }


def _created_name(flow: Flow) -> str:
    """A create names its object in the body, as kube-apiserver's audit log then does in objectRef."""
    metadata = flow.sent.get("metadata") if isinstance(flow.sent, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""


def text_line(record: dict[str, Any]) -> str:
    """key=value pairs; a value with a space, a quote or an equals sign is JSON-quoted."""
    parts = []
    for key, value in record.items():
        text = str(value)
        if not text or any(c in text for c in ' "=\n'):
            text = orjson.dumps(text).decode()
        parts.append(f"{key}={text}")
    return " ".join(parts)


def access_logger() -> logging.Logger:
    """`kubegate.access`, writing bare lines to stderr unless the operator gave it handlers of its own."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class AccessLogStage(Stage):
    name = "access-log"

    def __init__(self, config: AccessLogConfig, logger: logging.Logger | None = None) -> None:
        self.format = config.format
        self.logger = logger or access_logger()

    async def on_end(self, flow: Flow) -> None:
        record = access_record(flow, time.time())
        line = orjson.dumps(record).decode() if self.format == "json" else text_line(record)
        self.logger.info(line)
