"""The masking stage: every response body a mask applies to is masked before anyone sees it.

On the way up it asks for an uncompressed JSON body (see negotiation.py). On the way down:
- a JSON document is held whole and masked at the end (a LIST is one document; the pipeline sends
  headers with the first byte, so a body that cannot be masked still becomes a clean Status);
  a body that no mask can touch (untouched.py) is only checked to be JSON and sent as it came; a
  SecretList, the largest body masking sees, takes a typed fast path (secretlist.py);
- a watch stream is masked event by event: each complete line goes out as soon as it is masked
  (an event fanned out to many watchers is masked once, see cache.py);
- text (pods/log, `logs -f`) flows through the streaming text detectors, and so do the stdout and
  stderr of exec and attach, message by message (streams.py);
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

from kubegate.flow import Flow, FlowKey, MaskReport, Message, Stage
from kubegate.kube.status import Refused
from kubegate.masking import secretlist
from kubegate.masking.cache import Masked, MaskedLines
from kubegate.masking.config import UnknownProfile
from kubegate.masking.marker import MARKER, markers_in
from kubegate.masking.masker import Masker, kind_for, mask_document
from kubegate.masking.negotiation import classify, json_only_accept
from kubegate.masking.plan import Plan
from kubegate.masking.streams import OutputMasks
from kubegate.masking.text import TextMasker
from kubegate.masking.untouched import untouched

Mode = Literal["pass", "json", "lines", "text"]
NO_BODY_STATUSES = frozenset({101, 204, 304})


@dataclass(eq=False)
class MaskState:
    """What the stage keeps per flow, under its key."""

    profiles: tuple[str, ...]
    plan: Plan
    kind_hint: str | None
    mode: Mode = "pass"
    buffer: bytearray = field(default_factory=bytearray)
    text: TextMasker | None = None
    output: OutputMasks | None = None
    report: MaskReport = field(default_factory=lambda: MaskReport(()))
    """Values masked so far (markers added): on the flow once anything is masked, for the metrics stage."""


STATE: FlowKey[MaskState] = FlowKey("masking")


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
        flow.keep(STATE, MaskState(profiles, plan, hint, report=MaskReport(profiles)))
        proxied = info is not None and (info.verb == "proxy" or info.subresource == "proxy")
        if plan.masks_objects and not proxied:
            flow.headers["Accept"] = json_only_accept(",".join(flow.headers.getall("Accept", [])))
        flow.headers["Accept-Encoding"] = "identity"

    async def on_response(self, flow: Flow) -> None:
        state = flow.kept(STATE)
        if state is None:
            return
        upgrade = flow.upgrade
        if upgrade is not None and upgrade.subresource != "portforward" and state.plan.text:
            state.output = OutputMasks(state.plan.text)
            flow.masked = state.report
            return
        if flow.response_status in NO_BODY_STATUSES or flow.method == "HEAD":
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
        if flow.rewrites_body:
            flow.masked = state.report

    async def on_message(self, flow: Flow, message: Message) -> list[Message]:
        state = flow.kept(STATE)
        if state is None or state.output is None:
            return [message]
        out = state.output.message(message)
        if not message.from_client:
            state.report.values += sum(markers_in(m.data) for m in out) - markers_in(message.data)
        return out

    async def on_stream_end(self, flow: Flow) -> list[Message]:
        state = flow.kept(STATE)
        if state is None or state.output is None:
            return []
        tails = state.output.flush()
        state.report.values += sum(markers_in(m.data) for m in tails)
        return tails

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        state = flow.kept(STATE)
        if state is None or state.mode == "pass":
            return data
        if state.mode == "text":
            assert state.text is not None
            out = state.text.feed(data)
            state.report.values += markers_in(out) - markers_in(data)
            return out
        state.buffer += data
        if state.mode == "json":
            return b""
        cut = state.buffer.rfind(b"\n") + 1
        if not cut:
            return b""
        lines = bytes(state.buffer[:cut])
        del state.buffer[:cut]
        context = (state.profiles, state.kind_hint)
        masked = [
            self.watch_events.get(context, line + b"\n", lambda doc: self._mask_line(state, doc))
            for line in lines.split(b"\n")[:-1]
        ]
        state.report.values += sum(hidden for _, hidden in masked)
        return b"".join(out for out, _ in masked)

    async def on_eof(self, flow: Flow) -> bytes:
        state = flow.kept(STATE)
        if state is None or state.mode == "pass":
            return b""
        if state.mode == "text":
            assert state.text is not None
            out = state.text.flush()
            state.report.values += markers_in(out)
            return out
        rest, state.buffer = state.buffer, bytearray()
        masked, hidden = self._mask_line(state, rest)
        state.report.values += hidden
        if hidden > 0:
            values = "value" if hidden == 1 else "values"
            flow.warnings.append(
                f"kubegate masked {hidden} {values} in this response {_by(flow, state)}; they read {MARKER}"
            )
        return masked

    def _mask_line(self, state: MaskState, doc: bytes | bytearray) -> Masked:
        """One JSON document (a whole body, or one watch event line), masked, and how many values were
        hidden (markers added, not those it held); the same bytes if there was nothing to mask."""
        if not doc or doc.isspace():
            return bytes(doc), 0
        newline = b"\n" if doc.endswith(b"\n") else b""
        if untouched(state.plan, doc, state.kind_hint):
            _valid_json(state, doc)  # what no mask touches is still refused when it is not JSON
            return bytes(doc), 0
        if secretlist.applies(state.plan, doc):
            fast = secretlist.mask_secret_list(state.plan, doc)
            if fast is not None:
                return fast[0] + newline, fast[1]
        loaded = _valid_json(state, doc)
        if not mask_document(state.plan, loaded, state.kind_hint):
            return bytes(doc), 0
        # orjson keeps every int64/uint64 exact; larger integers it reads as floats, which is what
        # kube-apiserver itself does with them (sigs.k8s.io/json falls back to float64), so it never
        # sends any.
        out = orjson.dumps(loaded)
        return out + newline, markers_in(out) - markers_in(doc)


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


def _by(flow: Flow, state: MaskState) -> str:
    """Which rule asked for which masks, for the caller's warning."""
    rules = ", ".join(flow.decision.deciding_rules if flow.decision is not None else ()) or "(none)"
    return f"(rule {rules}: {', '.join(state.profiles)})"
