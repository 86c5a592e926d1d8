"""Runs one Flow through the stages in order, forwards it, and streams the answer back through them.

Request hooks run first to last; response hooks run last to first, so the stage nearest the
cluster sees the response first (masking before recording, recording before metrics). An upgraded
stream's messages take the same two ways: the client's first to last, the cluster's last to first;
the bridge (upgrade.py) only carries them.
Every stage's `on_end` runs for every flow, refused or not, so refusals are counted and recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from kubegate.flow import Flow, Message, Stage
from kubegate.kube.status import Refused, status_object
from kubegate.proxy.config import StreamsConfig
from kubegate.proxy.headers import downstream_response_headers, warning_header

if TYPE_CHECKING:
    from kubegate.proxy.upgrade import UpgradeBridge

log = logging.getLogger(__name__)


def _overrides(stage: Stage, hook: str) -> bool:
    return getattr(type(stage), hook) is not getattr(Stage, hook)


class Pipeline:
    def __init__(
        self, stages: Sequence[Stage], upgrades: UpgradeBridge | None = None, streams: StreamsConfig | None = None
    ) -> None:
        self.stages = list(stages)
        self.active = 0  # flows between arrival and the end of every stage's on_end
        self.upgrades = upgrades
        self.streams = streams or StreamsConfig()
        self._request = [s for s in self.stages if _overrides(s, "on_request")]
        self._response = [s for s in reversed(self.stages) if _overrides(s, "on_response")]
        self._chunk = [s for s in reversed(self.stages) if _overrides(s, "on_chunk")]
        self._eof = [s for s in reversed(self.stages) if _overrides(s, "on_eof")]
        self._end = [s for s in reversed(self.stages) if _overrides(s, "on_end")]
        # What an on_eof tail still passes through: the chunk hooks of the stages before the one that held it.
        self._after_eof = {
            id(stage): [s for s in self._chunk if self.stages.index(s) < self.stages.index(stage)]
            for stage in self._eof
        }
        messaging = [s for s in self.stages if _overrides(s, "on_message")]
        self._messages = {True: messaging, False: messaging[::-1]}  # keyed by from_client
        # Last to first, like the other ends: what the masking stage still holds passes the recorder
        # before the recorder closes the stream's recording.
        self._stream_end = [s for s in reversed(self.stages) if _overrides(s, "on_stream_end")]

    async def run(self, flow: Flow) -> web.StreamResponse:
        self.active += 1
        try:
            return await self._run(flow)
        except Refused as refusal:
            flow.refusal = refusal
            flow.response_status = refusal.code
            return refusal.response()
        finally:
            for stage in self._end:
                try:
                    await stage.on_end(flow)
                except Exception:
                    log.exception("stage %s failed in on_end", stage.name)
            self.active -= 1

    async def _run(self, flow: Flow) -> web.StreamResponse:
        for stage in self._request:
            await stage.on_request(flow)
        if flow.is_upgrade:
            if self.upgrades is None:
                raise Refused(
                    501,
                    "this kubegate has no bridge for upgraded connections (exec, attach, "
                    "port-forward), and never passes them through unrecorded",
                    reason="NotImplemented",
                )
            return await self.upgrades.run(flow, self)
        return await self._forward(flow)

    async def opened(self, flow: Flow) -> None:
        """An upgrade was answered 101: the response hooks see it before any message crosses."""
        for stage in self._response:
            await stage.on_response(flow)

    async def message(self, flow: Flow, message: Message) -> list[Message]:
        """One message of an upgraded stream through the message hooks of its direction."""
        return await self._messages_from(flow, [message], self._messages[message.from_client])

    async def stream_end(self, flow: Flow) -> list[Message]:
        """The stream is ending: what each stage held, through the stages after it in its direction."""
        out: list[Message] = []
        for stage in self._stream_end:
            for held in await stage.on_stream_end(flow):
                way = self._messages[held.from_client]
                later = [s for s in way if way.index(s) > way.index(stage)] if stage in way else way
                out += await self._messages_from(flow, [held], later)
        return out

    @staticmethod
    async def _messages_from(flow: Flow, messages: list[Message], stages: list[Stage]) -> list[Message]:
        for stage in stages:
            passed: list[Message] = []
            for message in messages:
                passed += await stage.on_message(flow, message)
            messages = passed
        return messages

    def _expiry(self, flow: Flow) -> float | None:
        """Seconds until the caller's token expires, for streams that outlive requests; None: never cut."""
        expires = flow.identity.expires_at if flow.identity is not None else 0.0
        if not flow.is_stream or not self.streams.close_on_token_expiry or not expires:
            return None
        return max(0.0, expires - time.time())

    async def _forward(self, flow: Flow) -> web.StreamResponse:
        """The judged request, as the verified caller, through the connection's one upstream client."""
        async with flow.connection.client.open(
            flow.method,
            flow.raw_path,
            flow.query_string,
            identity=flow.identity,
            headers=flow.headers.items(),
            body=flow.body,
            stream=flow.is_stream,
        ) as upstream:
            return await self._respond(flow, upstream)

    async def _respond(self, flow: Flow, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
        """Stream the body through the response hooks. Headers go out with the first byte, so a stage
        that holds the whole body (masking) can still refuse it with a clean Status."""
        flow.response_status = upstream.status
        flow.response_headers = CIMultiDict(upstream.headers)
        for stage in self._response:
            await stage.on_response(flow)
        headers = downstream_response_headers(upstream.headers, drop_length=flow.rewrites_body)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        try:
            try:
                async with asyncio.timeout(self._expiry(flow)) as deadline:
                    async for data in upstream.content.iter_any():
                        await self._send(flow, response, await self._through(flow, data, self._chunk))
            except TimeoutError:
                if not deadline.expired():
                    raise
                await self._expired(flow, response)
                return response
            for stage in self._eof:
                tail = await stage.on_eof(flow)
                await self._send(flow, response, await self._through(flow, tail, self._after_eof[id(stage)]))
        except (Refused, aiohttp.ClientError, TimeoutError) as exc:
            if not response.prepared:
                raise
            flow.error = f"response cut short: {exc}"
            if flow.request.transport is not None:
                flow.request.transport.close()
            return response
        await self._prepare(flow, response)
        await response.write_eof()
        return response

    async def _expired(self, flow: Flow, response: web.StreamResponse) -> None:
        """The caller's token expired mid-stream: a JSON watch gets an ERROR event saying so, then ends."""
        flow.error = "token expired"
        message = "kubegate ended this stream: your token expired; get a new token and run the command again"
        if (
            flow.info is not None
            and flow.info.verb == "watch"
            and flow.response_headers.get("Content-Type", "").startswith("application/json")
        ):
            event = {"type": "ERROR", "object": status_object(401, message, "Unauthorized")}
            await self._send(flow, response, orjson.dumps(event) + b"\n")
        await self._prepare(flow, response)
        await response.write_eof()

    @classmethod
    async def _send(cls, flow: Flow, response: web.StreamResponse, data: bytes) -> None:
        if not data:
            return
        await cls._prepare(flow, response)
        flow.bytes_sent += len(data)
        await response.write(data)

    @staticmethod
    async def _prepare(flow: Flow, response: web.StreamResponse) -> None:
        """Send the headers, with the warnings stages left for the caller (kubectl prints each one); a stage
        that holds the body (masking) can add one until the first byte goes out."""
        if response.prepared:
            return
        for text in flow.warnings:
            response.headers.add("Warning", warning_header(text))
        await response.prepare(flow.request)

    @staticmethod
    async def _through(flow: Flow, data: bytes, stages: list[Stage]) -> bytes:
        for stage in stages:
            if not data:
                return b""
            data = await stage.on_chunk(flow, data)
        return data
