"""The masking stage: every response body a mask applies to is masked before anyone sees it.

On the way up it asks for an uncompressed JSON body (see negotiation.py). On the way down:
- a JSON document is held whole and masked at the end (a LIST is one document; the pipeline sends
  headers with the first byte, so a body that cannot be masked still becomes a clean Status);
  a body that no mask can touch (untouched.py) is only checked to be JSON and sent as it came; a
  SecretList, the largest body masking sees, takes a typed fast path (secretlist.py);
- a watch stream is masked event by event: each complete line goes out as soon as it is masked
  (an event fanned out to many watchers is masked once, see cache.py);
- text (pods/log, `logs -f`) flows through the streaming text detectors;
- anything else, or a body still compressed, is refused when an object mask applies: protobuf, CBOR
  or gzip never reach a client unmasked. (Text detectors alone mask text bodies and pass the rest:
  they apply to text streams and to the object fields a profile names.)
Accept-Encoding is set to `identity` rather than dropped, because aiohttp's client would otherwise
add its default `gzip, deflate`.
Non-resource requests (/api, /apis, /openapi, /version) carry no objects and are left alone, so
kubectl's discovery and protobuf OpenAPI keep working under any mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from kubegate.flow import Flow, Stage
from kubegate.kube.status import Refused
from kubegate.masking import secretlist
from kubegate.masking.cache import MaskedLines
from kubegate.masking.config import UnknownProfile
from kubegate.masking.marker import MARKER, MARKER_B64, MARKER_BYTES
from kubegate.masking.masker import Masker, kind_for, mask_document
from kubegate.masking.negotiation import classify, json_only_accept
from kubegate.masking.plan import Plan
from kubegate.masking.text import TextMasker
from kubegate.masking.untouched import untouched

Mode = Literal["pass", "json", "lines", "text"]
_MARKERS = (MARKER_BYTES, MARKER_B64.encode())
NO_BODY_STATUSES = frozenset({101, 204, 304})


@dataclass(eq=False)
class MaskState:
    """What the stage keeps per flow in flow.extras["masking"]."""

    profiles: tuple[str, ...]
    plan: Plan
    kind_hint: str | None
    mode: Mode = "pass"
    buffer: bytearray = field(default_factory=bytearray)
    text: TextMasker | None = None


class MaskingStage(Stage):
    name = "masking"

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.watch_events = MaskedLines()

    async def on_request(self, flow: Flow) -> None:
        profiles = tuple(flow.decision.masks) if flow.decision else ()
        info = flow.info
        if not profiles or (info is not None and not info.is_resource_request):
            return
        try:
            plan = self.masker.plan(profiles)
        except UnknownProfile as exc:
            raise Refused(
                500,
                f"kubegate cannot apply the masks this request needs: {exc}. Nothing was "
                "sent; ask a kubegate administrator to fix the policy or the masking config.",
                reason="InternalError",
            ) from exc
        if not plan.masks_anything:
            return
        hint = kind_for(info.resource, info.subresource) if info is not None else None
        flow.extras[self.name] = MaskState(profiles, plan, hint)
        proxied = info is not None and (info.verb == "proxy" or info.subresource == "proxy")
        if plan.masks_objects and not proxied:
            flow.headers["Accept"] = json_only_accept(",".join(flow.headers.getall("Accept", [])))
        flow.headers["Accept-Encoding"] = "identity"

    async def on_response(self, flow: Flow) -> None:
        state: MaskState | None = flow.extras.get(self.name)
        if state is None or flow.response_status in NO_BODY_STATUSES or flow.method == "HEAD":
            return
        headers = flow.response_headers
        content_type = headers.get("Content-Type", "")
        encoding = headers.get("Content-Encoding", "")
        body = classify(content_type, encoding, headers.get("Content-Length"))
        plan = state.plan
        if body == "text" and plan.text:
            state.mode = "text"
        elif body == "json" and plan.masks_objects:
            state.mode = "lines" if flow.is_stream else "json"
        elif body == "unmaskable" and plan.masks_objects:
            what = content_type or "none"
            if encoding:
                what += f", encoding {encoding}"
            raise Refused(
                502,
                f"kubegate could not mask this response (content type {what}), so it was not "
                f"sent; the masks {', '.join(state.profiles)} apply to this request. Ask for JSON "
                "(no protobuf, CBOR or compressed Accept headers), or ask for a policy without "
                "masks for it.",
                reason="BadGateway",
            )
        if state.mode == "text":
            state.text = plan.text.stream()
        if state.mode in ("lines", "text"):
            flow.warnings.append(f"kubegate masks values in this stream {_by(flow, state)}")
        flow.rewrites_body = state.mode != "pass"

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        state: MaskState | None = flow.extras.get(self.name)
        if state is None or state.mode == "pass":
            return data
        if state.mode == "text":
            assert state.text is not None
            return state.text.feed(data)
        state.buffer += data
        if state.mode == "json":
            return b""
        cut = state.buffer.rfind(b"\n") + 1
        if not cut:
            return b""
        lines = bytes(state.buffer[:cut])
        del state.buffer[:cut]
        context = (state.profiles, state.kind_hint)
        return b"".join(
            self.watch_events.get(context, line + b"\n", lambda doc: self._mask_line(state, doc))
            for line in lines.split(b"\n")[:-1]
        )

    async def on_eof(self, flow: Flow) -> bytes:
        state: MaskState | None = flow.extras.get(self.name)
        if state is None or state.mode == "pass":
            return b""
        if state.mode == "text":
            assert state.text is not None
            return state.text.flush()
        rest, state.buffer = state.buffer, bytearray()
        masked = self._mask_line(state, rest)
        hidden = 0 if masked == rest else _markers(masked) - _markers(rest)
        if hidden > 0:
            values = "value" if hidden == 1 else "values"
            flow.warnings.append(
                f"kubegate masked {hidden} {values} in this response {_by(flow, state)}; they read {MARKER}"
            )
        return masked

    def _mask_line(self, state: MaskState, doc: bytes | bytearray) -> bytes:
        """One JSON document (a whole body, or one watch event line), masked; the same bytes if
        there was nothing to mask."""
        if not doc or doc.isspace():
            return bytes(doc)
        newline = b"\n" if doc.endswith(b"\n") else b""
        if untouched(state.plan, doc, state.kind_hint):
            _valid_json(state, doc)  # what no mask touches is still refused when it is not JSON
            return bytes(doc)
        if secretlist.applies(state.plan, doc):
            masked = secretlist.mask_secret_list(state.plan, doc)
            if masked is not None:
                return masked + newline
        loaded = _valid_json(state, doc)
        if not mask_document(state.plan, loaded, state.kind_hint):
            return bytes(doc)
        # orjson keeps every int64/uint64 exact; larger integers it reads as floats, which is what
        # kube-apiserver itself does with them (sigs.k8s.io/json falls back to float64), so it never
        # sends any.
        return orjson.dumps(loaded) + newline


def _valid_json(state: MaskState, doc: bytes | bytearray) -> Any:
    try:
        return orjson.loads(doc)
    except orjson.JSONDecodeError as exc:
        raise Refused(
            502,
            "kubegate could not mask this response (it is not valid JSON), so it was not "
            f"sent; the masks {', '.join(state.profiles)} apply to this request.",
            reason="BadGateway",
        ) from exc


def _markers(body: bytes | bytearray) -> int:
    return sum(body.count(m) for m in _MARKERS)


def _by(flow: Flow, state: MaskState) -> str:
    """Which rule asked for which masks, for the caller's warning."""
    rules = ", ".join(getattr(flow.decision, "deciding_rules", ()) or ()) or "(none)"
    return f"(rule {rules}: {', '.join(state.profiles)})"
