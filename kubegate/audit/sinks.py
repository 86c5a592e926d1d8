"""Where exported audit events go: JSON lines on stdout or a file (for Fluent Bit or Vector), an HTTP
webhook taking `EventList`s as kube-apiserver's audit webhook backend sends them, and S3 batches.

A sink returns only once the destination has the batch (the file fsynced, the webhook answered 2xx,
the object written); the exporter moves its cursor after that, so a crash repeats a batch, never skips it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from kubegate.audit.anchors import s3_client, s3_problem
from kubegate.audit.config import SinkConfig
from kubegate.audit.k8sevent import API_VERSION

SEND_TIMEOUT = 30.0


class SinkError(Exception):
    """A destination did not take a batch; the text never holds a URL or a credential."""


@dataclass(frozen=True, slots=True)
class Batch:
    first_seq: int
    last_seq: int
    events: list[dict[str, Any]]

    def lines(self) -> bytes:
        return b"".join(orjson.dumps(e) + b"\n" for e in self.events)


class Sink(Protocol):
    name: str

    async def send(self, batch: Batch) -> None: ...

    async def close(self) -> None: ...


class StdoutSink:
    def __init__(self, config: SinkConfig) -> None:
        self.name = config.name

    async def send(self, batch: Batch) -> None:
        sys.stdout.buffer.write(batch.lines())
        sys.stdout.buffer.flush()

    async def close(self) -> None:
        return None


class FileSink:
    def __init__(self, config: SinkConfig) -> None:
        assert config.path is not None
        self.name = config.name
        self.path = config.path

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    async def send(self, batch: Batch) -> None:
        try:
            await asyncio.to_thread(self._append, batch.lines())
        except OSError as exc:
            raise SinkError(f"cannot append to {self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        return None


class WebhookSink:
    def __init__(self, config: SinkConfig) -> None:
        assert config.url is not None
        self.name = config.name
        self.url = config.url
        self.headers = {"Content-Type": "application/json", **config.headers}
        self._http: aiohttp.ClientSession | None = None

    async def send(self, batch: Batch) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT))
        body = orjson.dumps({"kind": "EventList", "apiVersion": API_VERSION, "metadata": {}, "items": batch.events})
        try:
            async with self._http.post(self.url, data=body, headers=self.headers) as resp:
                if resp.status >= 300:
                    raise SinkError(f"the webhook answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SinkError(f"the webhook cannot be reached: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class S3Sink:
    """One object per batch, named by the seqs it covers: a repeated batch overwrites its own object."""

    def __init__(self, config: SinkConfig, client: Any = None) -> None:
        assert config.bucket is not None
        self.name = config.name
        self.config = config
        self.client = client or s3_client(config.region, config.endpoint_url)

    def key(self, batch: Batch) -> str:
        return f"{self.config.prefix}{batch.first_seq:012d}-{batch.last_seq:012d}.jsonl"

    async def send(self, batch: Batch) -> None:
        try:
            await asyncio.to_thread(
                self.client.put_object,
                Bucket=self.config.bucket,
                Key=self.key(batch),
                Body=batch.lines(),
                ContentType="application/x-ndjson",
            )
        except Exception as exc:
            raise SinkError(f"s3://{self.config.bucket}/{self.config.prefix}: {s3_problem(exc)}") from exc

    async def close(self) -> None:
        return None


def make_sink(config: SinkConfig) -> Sink:
    kinds: dict[str, type[Any]] = {"stdout": StdoutSink, "file": FileSink, "webhook": WebhookSink, "s3": S3Sink}
    sink: Sink = kinds[config.type](config)
    return sink
