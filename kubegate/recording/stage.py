"""The pipeline stage that records: the request before it is forwarded, the response as it is sent."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubegate.flow import Flow, Stage
from kubegate.kube.status import Refused
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.recording.anonymous import AnonymousRefusals, cut
from kubegate.recording.capture import body_fields, is_stream, request_fields, response_headers
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import StoreError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _FlowRecord:
    session_id: str
    request_seq: int
    stream: bool = False
    body: bytearray = field(default_factory=bytearray)
    size: int = 0
    chunks: int = 0


class RecorderStage(Stage):
    """Writes the request event and waits for its commit before the pipeline forwards (fail closed);
    then records the response as the client receives it: buffered up to max_body_bytes, or, for
    streams, chunk by chunk as they pass."""

    name = "recorder"

    def __init__(
        self, recorder: Recorder, masker: Masker | None = None, anonymous: AnonymousRefusals | None = None
    ) -> None:
        self.recorder = recorder
        self.masker = masker or Masker(MaskingConfig())
        self.anonymous = anonymous or AnonymousRefusals()

    async def on_request(self, flow: Flow) -> None:
        data = request_fields(flow, self.recorder.max_body_bytes, self.masker)
        try:
            session_id = self.recorder.session_for(flow)
            seq = await self.recorder.record_event(session_id, "request", data, durable=True, counts_request=True)
        except StoreError as exc:
            raise Refused(
                503,
                f"kubegate cannot record this request, so it was not forwarded: {exc}; "
                "try again or contact the kubegate operator",
                reason="ServiceUnavailable",
            ) from exc
        flow.extras[self.name] = _FlowRecord(session_id, seq)

    async def on_response(self, flow: Flow) -> None:
        rec: _FlowRecord | None = flow.extras.get(self.name)
        if rec is None:
            return
        rec.stream = is_stream(flow)
        if rec.stream:
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
        rec: _FlowRecord | None = flow.extras.get(self.name)
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

    async def on_end(self, flow: Flow) -> None:
        for done in self.anonymous.closed(self.recorder.clock()):  # any traffic closes due windows
            await self._record(done.session_id, "refusals", done.summary())
        rec: _FlowRecord | None = flow.extras.get(self.name)
        duration_ms = round((time.monotonic() - flow.started) * 1000, 3)
        if flow.refusal is not None and "retry_of" in flow.extras:
            await self._record(
                self.recorder.session_for(flow),
                "retry",
                {
                    "flow": flow.id,
                    "retry_of": flow.extras["retry_of"],
                    "method": flow.method,
                    "upgrade": flow.request.headers.get("Upgrade", ""),
                    "duration_ms": duration_ms,
                },
            )
        elif flow.refusal is not None and flow.identity is None:
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
                    "bytes": rec.size,
                    "chunks": rec.chunks,
                    "error": flow.error,
                    **({"upgrade": flow.extras["upgrade_summary"]} if "upgrade_summary" in flow.extras else {}),
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
        code = int(getattr(refusal, "code", 500))
        status = refusal.status() if isinstance(refusal, Refused) else {"code": code, "message": str(refusal)}
        denied = code == 403 or getattr(refusal, "kind", "") in ("denied", "deny")
        data: dict[str, Any] = {"flow": flow.id, "status": status, "duration_ms": duration_ms}
        if rec is not None:
            data["request_seq"] = rec.request_seq
        else:
            data.update(request_fields(flow, self.recorder.max_body_bytes, self.masker))
        session_id = rec.session_id if rec is not None else self.recorder.session_for(flow)
        await self._record(
            session_id, "refused", data, outcome="denied" if denied else "refused", counts_request=rec is None
        )

    async def _record_anonymous(self, flow: Flow, duration_ms: float) -> None:
        """A caller kubegate could not identify: the first refusal of its window, cut short; then counts."""
        now = self.recorder.clock()
        refusal = flow.refusal
        message = str(getattr(refusal, "message", refusal))
        what = f"{flow.method} {cut(flow.raw_path)}: {message}"
        window = self.anonymous.add(flow.request.remote or "", what, now)
        if window is None:
            return
        window.session_id = self.recorder.session_for(flow)
        code = int(getattr(refusal, "code", 500))
        await self._record(
            window.session_id,
            "refused",
            {
                "flow": flow.id,
                "method": cut(flow.method, 16),
                "path": cut(flow.raw_path),
                "query": cut(flow.query_string),
                "status": {"code": code, "reason": getattr(refusal, "reason", None), "message": cut(message)},
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
