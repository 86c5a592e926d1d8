"""The audit.k8s.io/v1 Event schema (audit_event_v1.schema.json, derived from the Kubernetes types)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = json.loads((Path(__file__).parent / "audit_event_v1.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def assert_audit_event(event: Any) -> None:
    errors = sorted(VALIDATOR.iter_errors(event), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
