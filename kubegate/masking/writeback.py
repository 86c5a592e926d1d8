"""Masked values written back: the pipeline step that restores them before a write is judged and sent.

A caller that read an object through kubegate holds markers where its masks hid values. When it writes the
object back (replace, apply, edit, any patch, server-side apply), kubegate reads the object as the caller,
masks that copy the way the caller's reads are masked (the masks of a `get` of it, and the write's own),
and puts each value back where the write carries exactly the marker kubegate shows at that field
(masking/writes.py). The forwarded body then holds the stored values; `flow.sent`, which the recording
shows, keeps the markers. Whatever cannot be restored that way is refused with a 400 that names the field.

The object the cluster would store (a dry run of the restored write) is then masked again: a restored value
it shows that the masked current object did not (a value moved to a field the masks do not cover) refuses
the write, and the response of the write is masked with the same masks, so restoring never reveals a value.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from kubegate.flow import Flow
from kubegate.kube.body import media_type
from kubegate.kube.status import Refused
from kubegate.masking.marker import MARKER_BYTES
from kubegate.masking.masker import Masker, kind_for
from kubegate.masking.writes import (
    JSON_PATCH,
    READING_OPS,
    MaskedWrite,
    Restorer,
    differing_paths,
    exposed,
    markers,
    show,
)
from kubegate.policy.decision import Decision

if TYPE_CHECKING:
    from kubegate.policy.engine import PolicyEngine
    from kubegate.upstream.stage import RoleGrants

HOW = (
    "To keep the stored value, send the marker exactly as kubegate showed it at that field of this object, "
    "or leave the field out; to set a new value, send the real value (for a Secret, in `stringData` or as "
    "base64 in `data`)."
)


def refuse(why: str) -> Refused:
    return Refused(400, f"kubegate refused this write: {why}. {HOW}", reason="BadRequest")


@dataclass
class Restoration:
    """What a write-back restored, for the checks after the dry run."""

    masker: Masker
    masks: tuple[str, ...]
    kind: str | None
    masked_current: Any
    values: list[str]

    def check(self, stored: Any) -> None:
        """Refuse when the object the cluster would store shows a restored value the caller's masks hid."""
        if not self.values or not isinstance(stored, dict):
            return
        shown = copy.deepcopy(stored)
        self.masker.mask_object(shown, self.masks, self.kind)
        if exposed(self.values, self.masked_current, shown) is not None:
            raise refuse("it would put a value your masks hide into a field they do not cover")

    def decision(self, decision: Decision) -> Decision:
        """The write's decision, masking its response at least as the restored values were masked."""
        masks = tuple(dict.fromkeys((*decision.masks, *self.masks)))
        return dataclasses.replace(decision, masks=masks) if masks != decision.masks else decision


class WriteBack:
    """Restores masked values in a write (see the module docstring); None when it carries none."""

    def __init__(self, masker: Masker, engine: PolicyEngine, grants: RoleGrants) -> None:
        self.masker = masker
        self.engine = engine
        self.grants = grants

    async def __call__(self, flow: Flow, decision: Decision) -> Restoration | None:
        if flow.sent is None:
            if MARKER_BYTES in flow.body:
                raise refuse(
                    "its body (not JSON or YAML) holds a masked value, which kubegate can only put back "
                    "in JSON or YAML; send it as JSON"
                )
            return None
        json_patch = media_type(flow.headers.get("Content-Type", "")) == JSON_PATCH
        found = next(markers(flow.sent), None)
        reads = (
            json_patch
            and isinstance(flow.sent, list)
            and any(isinstance(op, dict) and op.get("op") in READING_OPS for op in flow.sent)
        )
        if found is None and not reads:
            return None
        info, identity = flow.info, flow.identity
        assert info is not None and identity is not None
        where = f"{show(found)} holds a masked value" if found is not None else "it reads fields"
        if info.verb == "create" or not info.name:
            raise refuse(f"{where}, and it creates an object, which holds no value to put back")
        current = await self._current(flow, decision, where)
        if current is None:
            if found is None:
                return None
            raise refuse(
                f"{where}, and {info.resource}/{info.name} does not exist yet, so there is no value to put back"
            )
        read = self.engine.decide(identity, dataclasses.replace(info, verb="get"), flow.connection.name, current)
        masks = tuple(dict.fromkeys((*decision.masks, *(read.masks if read.action != "deny" else ()))))
        kind = current.get("kind") if isinstance(current.get("kind"), str) else kind_for(info.resource)
        masked = copy.deepcopy(current)
        if masks:
            self.masker.mask_object(masked, masks, kind)
        restorer = Restorer(current, masked)
        try:
            if json_patch:
                body = restorer.json_patch(flow.sent, set(differing_paths(current, masked)))
            else:
                body = restorer.document(flow.sent)
        except MaskedWrite as exc:
            raise refuse(f"{exc.field} {exc.why}") from None
        if restorer.restored:
            try:
                flow.body = orjson.dumps(body)
            except TypeError:
                raise refuse(f"{where} in a YAML document kubegate cannot write back as JSON") from None
        return Restoration(self.masker, masks, kind, masked, restorer.restored)

    async def _current(self, flow: Flow, decision: Decision, where: str) -> dict[str, Any] | None:
        """The object as the caller may read it (with the role the write gets); None if it does not exist."""
        await self.grants.ensure(flow, decision)
        status, current = await flow.connection.client.call("GET", flow.raw_path, identity=flow.identity)
        if status == 404:
            return None
        if status != 200 or not isinstance(current, dict):
            raise refuse(
                f"{where}, and kubegate could not read the object as you to put the stored values back "
                f"(the API server answered {status}); you need `get` on it"
            )
        return current
