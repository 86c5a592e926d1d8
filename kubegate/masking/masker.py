"""The Masker: one compiled masking config, applied to every shape a Kubernetes response takes.

Shapes: a single object; `*List` kinds (their items carry no kind, so it comes from the list's);
`List` with mixed kinds; `Table` (rows[].object is a PartialObjectMetadata, a full object with
includeObject=Object, or absent; cells that print a masked value are masked too); watch events
(`{"type", "object"}`, including Table-shaped ones). A PartialObjectMetadata has no kind of its
own, but its last-applied annotation names the kind, which is all that can hold values there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import yaml

from kubegate.masking.config import CREDENTIALS_IN_TEXT, MaskingConfig
from kubegate.masking.fields import PARTIAL, mask_fields
from kubegate.masking.marker import MARKER
from kubegate.masking.paths import map_strings
from kubegate.masking.plan import Catalog, Plan
from kubegate.masking.text import TextMasker

# Kinds served by resources whose objects omit `kind` (Table rows, patch bodies): resource -> kind.
RESOURCE_KINDS = {
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "pods": "Pod",
    "podtemplates": "PodTemplate",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    "replicasets": "ReplicaSet",
    "replicationcontrollers": "ReplicationController",
    "jobs": "Job",
    "cronjobs": "CronJob",
}
SUBRESOURCE_KINDS = {("serviceaccounts", "token"): "TokenRequest"}
MIN_CELL_MATCH = 6  # a cell containing a masked value at least this long is masked whole


def kind_for(resource: str, subresource: str = "") -> str | None:
    """The kind a request's objects have, where kubegate needs it and the body may not say."""
    if subresource:
        return SUBRESOURCE_KINDS.get((resource, subresource))
    return RESOURCE_KINDS.get(resource)


class Masker:
    """Compiled once per config; plans are built once per distinct set of profiles."""

    def __init__(self, config: MaskingConfig) -> None:
        self.config = config
        self._catalog = Catalog.from_config(config)
        self._plans: dict[frozenset[str], Plan] = {}
        self._scrub = self.plan((CREDENTIALS_IN_TEXT,)).text

    def scrub(self, text: str) -> str:
        """credentials-in-text over one string that no object holds (a command line, a request target), for
        what kubegate records whatever the policy masks."""
        return self._scrub.mask(text)

    def plan(self, profiles: Sequence[str]) -> Plan:
        """The compiled plan for these profiles; raises UnknownProfile for a name not configured."""
        key = frozenset(profiles)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._catalog.plan(self.config.expand(key))
        return plan

    def mask_object(self, obj: Any, profiles: Sequence[str], kind_hint: str | None = None) -> bool:
        """Mask a decoded response body in place; True if anything changed. `kind_hint` is the kind
        the request's resource serves (see kind_for), used when an object does not say."""
        plan = self.plan(profiles)
        if not plan.masks_objects:
            return False
        return mask_document(plan, obj, kind_hint)

    def mask_request_body(self, obj: Any, profiles: Sequence[str], kind_hint: str | None = None) -> Any:
        """A masked copy of a decoded request body, for recording (the original is left alone).

        Besides objects, patch bodies: a merge or strategic patch is masked as an object of
        kind_hint; in a JSON Patch against a kind the plan masks, every value is masked.
        """
        copy = orjson.loads(orjson.dumps(obj))
        plan = self.plan(profiles)
        if not plan.masks_objects:
            return copy
        if isinstance(copy, list):
            if kind_hint is None or plan.touches(kind_hint) or plan.annotation_plan.touches(kind_hint):
                for op in copy:
                    if isinstance(op, dict) and "value" in op:
                        op["value"] = map_strings(op["value"], lambda _: MARKER)[0]
            return copy
        mask_document(plan, copy, kind_hint)
        return copy

    def mask_request_bytes(self, body: bytes, profiles: Sequence[str], kind_hint: str | None = None) -> bytes:
        """A request body as it may be recorded: decoded, masked and re-encoded as JSON. A body that
        cannot be decoded (protobuf, CBOR) but whose kind the profiles mask is replaced whole."""
        if not body:
            return body
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            try:
                obj = yaml.safe_load(body)
            except yaml.YAMLError:
                obj = None
            if not isinstance(obj, dict | list):
                plan = self.plan(profiles)
                touched = kind_hint is None or plan.touches(kind_hint) or plan.annotation_plan.touches(kind_hint)
                return MARKER.encode() if plan.masks_objects and touched else body
        kind = obj.get("kind") if isinstance(obj, dict) and isinstance(obj.get("kind"), str) else kind_hint
        return orjson.dumps(self.mask_request_body(obj, profiles, kind))

    def text_stream(self, profiles: Sequence[str]) -> TextMasker:
        """A streaming masker for log and exec output under these profiles."""
        return self.plan(profiles).text.stream()


def mask_document(plan: Plan, obj: Any, kind_hint: str | None) -> bool:
    """Mask any response shape (see the module docstring) in place."""
    if not isinstance(obj, dict):
        return False
    kind = obj.get("kind")
    if kind is None and "type" in obj and "object" in obj:
        return mask_document(plan, obj["object"], kind_hint)
    if kind == "Table":
        return _table(plan, obj, kind_hint)
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        item_kind = kind[:-4] if kind != "List" else kind_hint
        changed = False
        for item in obj["items"]:
            if isinstance(item, dict):
                own = item.get("kind")
                if own is None:
                    changed |= mask_fields(plan, item, item_kind)
                else:
                    changed |= mask_document(plan, item, kind_hint)
        return changed
    return mask_fields(plan, obj, kind if isinstance(kind, str) else kind_hint)


def _table(plan: Plan, table: dict[str, Any], kind_hint: str | None) -> bool:
    rows = table.get("rows")
    if not isinstance(rows, list):
        return False
    changed = False
    for row in rows:
        if not isinstance(row, dict):
            continue
        seen: set[str] = set()
        obj = row.get("object")
        if isinstance(obj, dict):
            kind = obj.get("kind")
            changed |= mask_fields(plan, obj, kind if isinstance(kind, str) and kind != PARTIAL else kind_hint, seen)
        cells = row.get("cells")
        if isinstance(cells, list):
            changed |= _cells(plan, cells, seen)
    return changed


def _cells(plan: Plan, cells: list[Any], seen: set[str]) -> bool:
    changed = False
    long_values = [v for v in seen if len(v) >= MIN_CELL_MATCH]
    for i, cell in enumerate(cells):
        if not isinstance(cell, str) or cell == MARKER:
            continue
        if cell in seen or any(v in cell for v in long_values):
            cells[i] = MARKER
            changed = True
        elif plan.scan_text_fields:
            masked = plan.text.mask(cell)
            if masked != cell:
                cells[i] = masked
                changed = True
    return changed
