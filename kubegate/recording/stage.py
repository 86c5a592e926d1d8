"""The pipeline stage that records: the request before it is forwarded, the response as it is sent, and
an upgraded stream's messages as the client exchanged them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubegate.flow import Flow, FlowKey, Message, Stage
from kubegate.kube import portforward as pf
from kubegate.kube.status import Refused
from kubegate.kube.streams import requested_ports
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.recording.anonymous import AnonymousRefusals, cut
from kubegate.recording.capture import body_fields, is_stream, request_fields, response_headers
from kubegate.recording.recorder import Recorder
from kubegate.recording.streams import CastRecord, LegacyForwardRecord, StreamRecord, TunnelRecord
from kubegate.store.engine import StoreError

log = logging.getLogger(__name__)


class SessionStage(Stage):
    """Right after authentication: the recorded session this request belongs to (its kubectl invocation,
    or the identity's idle window), decided once for every later stage."""

    name = "session"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def on_request(self, flow: Flow) -> None:
        flow.session_id = self.recorder.session_for(flow)


@dataclass(slots=True)
class _FlowRecord:
    session_id: str
    request_seq: int
    stream: bool = False
    body: bytearray = field(default_factory=bytearray)
    size: int = 0
    chunks: int = 0
    upgraded: StreamRecord | None = None
    flusher: asyncio.Task[None] | None = None


RECORD: FlowKey[_FlowRecord] = FlowKey("recorder")


class RecorderStage(Stage):
    """Writes the request event and waits for its commit before the pipeline forwards (fail closed);
    then records the response as the client receives it: buffered up to max_body_bytes, or, for
    streams, chunk by chunk as they pass. An upgraded stream is recorded as it opens (durably: no
    stream opens unrecorded), then as asciicast or forwarded connections in batches."""

    name = "recorder"

    def __init__(
        self, recorder: Recorder, masker: Masker | None = None, anonymous: AnonymousRefusals | None = None
    ) -> None:
        self.recorder = recorder
        self.masker = masker or Masker(MaskingConfig())
        self.anonymous = anonymous or AnonymousRefusals()

    async def on_request(self, flow: Flow) -> None:
        data = request_fields(flow, self.recorder.max_body_bytes, self.masker)
        session_id = flow.session_id
        if not session_id:
            raise Refused(
                500,
                "kubegate has no session to record this request in, so it was not forwarded. This is a "
                "kubegate bug (the session stage must run after authentication): tell the kubegate operator",
                reason="InternalError",
            )
        try:
            seq = await self.recorder.record_event(session_id, "request", data, durable=True, counts_request=True)
        except StoreError as exc:
            raise Refused(
                503,
                f"kubegate cannot record this request, so it was not forwarded: {exc}; "
                "try again or contact the kubegate operator",
                reason="ServiceUnavailable",
            ) from exc
        flow.keep(RECORD, _FlowRecord(session_id, seq))
        if flow.upgrade is not None:
            flow.upgrade.recorded = True

    async def on_response(self, flow: Flow) -> None:
        rec = flow.kept(RECORD)
        if rec is None:
            return
        rec.stream = is_stream(flow)
        if flow.upgrade is not None and flow.response_status == 101:
            await self._open_stream(flow, rec)
        elif rec.stream:
            await self._record(
                rec.session_id,
                "response",
                {
                    "flow": flow.id,
                    "request_seq": rec.request_seq,
                    "status": flow.response_status,
                    "headers": response_headers(flow),
                    "stream": True,
                },
            )

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        rec = flow.kept(RECORD)
        if rec is None or not data:
            return data
        rec.size += len(data)
        if not rec.stream:
            room = self.recorder.max_body_bytes - len(rec.body)
            if room > 0:
                rec.body += data[:room]
            return data
        if not self.recorder.healthy:
            raise Refused(
                503,
                "kubegate cannot record this stream any more, so it was stopped: the store "
                "failed; run the command again or contact the kubegate operator",
                reason="ServiceUnavailable",
            )
        rec.chunks += 1
        await self._record(rec.session_id, "chunk", {"flow": flow.id, "n": rec.chunks, **body_fields(data, len(data))})
        return data

    async def _open_stream(self, flow: Flow, rec: _FlowRecord) -> None:
        """The cluster answered 101: the stream is recorded as open before any message crosses."""
        upgrade, info = flow.upgrade, flow.info
        assert upgrade is not None and info is not None
        masks = flow.decision.masks if flow.decision is not None else ()
        data: dict[str, Any] = {
            "flow": flow.id,
            "kind": upgrade.subresource,
            "protocol": upgrade.protocol,
            "namespace": info.namespace,
            "pod": info.name,
            "container": info.container,
            "command": list(info.command),
            "tty": any(k == "tty" and v.lower() not in ("0", "false") for k, v in info.query),
            "masks": list(masks),
        }
        if upgrade.subresource == "portforward":
            data["ports"] = requested_ports(info.query)
            if upgrade.protocol == pf.TUNNEL_PROTOCOL:
                rec.upgraded = TunnelRecord(self.recorder.clock)
            else:
                rec.upgraded = LegacyForwardRecord(data["ports"], self.recorder.clock)
        else:
            text = self.masker.plan(masks).text if masks else None
            rec.upgraded = CastRecord(text.stream() if text else None, self.recorder.clock)
        try:
            await self.recorder.record_event(rec.session_id, "stream", data, durable=True)
        except StoreError as exc:
            raise Refused(
                503,
                f"kubegate cannot record this stream, so it was not opened: {exc}; try again or "
                "contact the kubegate operator",
                reason="ServiceUnavailable",
            ) from exc
        rec.flusher = asyncio.create_task(self._flush_every_second(flow, rec), name=f"record-stream-{flow.id}")

    async def on_message(self, flow: Flow, message: Message) -> list[Message]:
        rec = flow.kept(RECORD)
        if rec is None or rec.upgraded is None:
            return [message]
        if not self.recorder.healthy:
            raise Refused(
                503,
                "kubegate cannot record this session any more (its store failed), so it was stopped; run "
                "the command again or contact the kubegate operator",
                reason="ServiceUnavailable",
            )
        rec.upgraded.add(message)
        await self._flush_stream(flow, rec)
        return [message]

    async def on_stream_end(self, flow: Flow) -> list[Message]:
        rec = flow.kept(RECORD)
        if rec is not None and rec.upgraded is not None:
            await self._stop_flusher(rec)
            rec.upgraded.finish()
            await self._flush_stream(flow, rec, final=True)
        return []

    async def _flush_every_second(self, flow: Flow, rec: _FlowRecord) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._flush_stream(flow, rec, force=True)

    @staticmethod
    async def _stop_flusher(rec: _FlowRecord) -> None:
        if rec.flusher is not None:
            rec.flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rec.flusher
            rec.flusher = None

    async def _flush_stream(self, flow: Flow, rec: _FlowRecord, final: bool = False, force: bool = False) -> None:
        """Hand batched asciicast events and finished port-forward connections to the recorder."""
        stream = rec.upgraded
        assert stream is not None
        cast = stream.cast
        events = cast.take(final=final) if cast is not None and (final or force or cast.ready()) else []
        forwarded, stream.forwarded = stream.forwarded, []
        if events:
            await self._record(rec.session_id, "cast", {"flow": flow.id, "events": events})
        for conn in forwarded:
            await self._record(rec.session_id, "forward", {"flow": flow.id, **conn})

    async def on_end(self, flow: Flow) -> None:
        for done in self.anonymous.closed(self.recorder.clock()):  # any traffic closes due windows
            await self._record(done.session_id, "refusals", done.summary())
        rec = flow.kept(RECORD)
        duration_ms = round((time.monotonic() - flow.started) * 1000, 3)
        if rec is not None:
            await self._stop_flusher(rec)
        if flow.refusal is not None and flow.retry_of:
            await self._record(
                flow.session_id,
                "retry",
                {
                    "flow": flow.id,
                    "retry_of": flow.retry_of,
                    "method": flow.method,
                    "upgrade": flow.request.headers.get("Upgrade", ""),
                    "duration_ms": duration_ms,
                },
            )
        elif flow.refusal is not None and not flow.session_id:
            await self._record_anonymous(flow, duration_ms)
        elif flow.refusal is not None:
            await self._record_refusal(flow, rec, duration_ms)
        elif rec is not None and rec.stream:
            await self._record(
                rec.session_id,
                "end",
                {
                    "flow": flow.id,
                    "request_seq": rec.request_seq,
                    "duration_ms": duration_ms,
                    "bytes": rec.size if rec.upgraded is None else rec.upgraded.bytes_out,
                    "chunks": rec.chunks,
                    "error": flow.error,
                    **({"upgrade": _summary(flow, rec.upgraded)} if rec.upgraded is not None else {}),
                },
                outcome="error" if flow.error else "ok",
            )
        elif rec is not None:
            failed = bool(flow.error) or flow.response_status >= 400 or flow.response_status == 0
            await self._record(
                rec.session_id,
                "response",
                {
                    "flow": flow.id,
                    "request_seq": rec.request_seq,
                    "status": flow.response_status,
                    "headers": response_headers(flow),
                    "duration_ms": duration_ms,
                    "error": flow.error,
                    **body_fields(bytes(rec.body), self.recorder.max_body_bytes, total=rec.size),
                },
                outcome="error" if failed else "ok",
            )

    async def _record_refusal(self, flow: Flow, rec: _FlowRecord | None, duration_ms: float) -> None:
        """A refusal from any stage; one that came before this stage's on_request carries the request."""
        refusal = flow.refusal
        assert refusal is not None
        data: dict[str, Any] = {"flow": flow.id, "status": refusal.status(), "duration_ms": duration_ms}
        if rec is not None:
            data["request_seq"] = rec.request_seq
        else:
            data.update(request_fields(flow, self.recorder.max_body_bytes, self.masker))
        session_id = rec.session_id if rec is not None else flow.session_id
        await self._record(
            session_id,
            "refused",
            data,
            outcome="denied" if refusal.code == 403 else "refused",
            counts_request=rec is None,
        )

    async def _record_anonymous(self, flow: Flow, duration_ms: float) -> None:
        """A caller kubegate could not identify: the first refusal of its window, cut short; then counts."""
        now = self.recorder.clock()
        refusal = flow.refusal
        assert refusal is not None
        message = refusal.message
        what = f"{flow.method} {cut(flow.raw_path)}: {message}"
        window = self.anonymous.add(flow.request.remote or "", what, now)
        if window is None:
            return
        window.session_id = self.recorder.session_for(flow)
        await self._record(
            window.session_id,
            "refused",
            {
                "flow": flow.id,
                "method": cut(flow.method, 16),
                "path": cut(flow.raw_path),
                "query": cut(flow.query_string),
                "status": {"code": refusal.code, "reason": refusal.reason, "message": cut(message)},
                "client": window.client,
                "user_agent": cut(flow.request.headers.get("User-Agent", "")),
                "duration_ms": duration_ms,
                "window_seconds": self.anonymous.window_seconds,
            },
            outcome="refused",
            counts_request=True,
        )

    async def close(self) -> None:
        for done in self.anonymous.drain():
            await self._record(done.session_id, "refusals", done.summary())

    async def _record(
        self,
        session_id: str,
        type: str,
        data: dict[str, Any],
        *,
        outcome: str | None = None,
        counts_request: bool = False,
    ) -> None:
        try:
            await self.recorder.record_event(
                session_id, type, data, durable=False, outcome=outcome, counts_request=counts_request
            )
        except StoreError as exc:
            self.recorder.lost_events += 1
            log.error("cannot record a %s event of session %s: %s", type, session_id, exc)


def _summary(flow: Flow, stream: StreamRecord) -> dict[str, Any]:
    upgrade = flow.upgrade
    assert upgrade is not None
    return {"protocol": upgrade.protocol, "kind": upgrade.subresource, "ended_by": upgrade.ended_by, **stream.summary()}
