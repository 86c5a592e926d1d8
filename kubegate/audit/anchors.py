"""External anchors: where signed checkpoints go, outside the database and out of its writers' reach.

S3 writes each checkpoint as its own object under object lock (COMPLIANCE by default: nobody, the
bucket owner included, can delete or overwrite it before the retention date), and reads back the
oldest version of each key, so a later version put over a checkpoint changes nothing. The webhook
POSTs each checkpoint to a receiver that keeps its own copy, and reads them back one number at a time
from the receiver's `read_url` when it has one.
"""

from __future__ import annotations

import asyncio
import datetime
import re
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp

from kubegate.audit.config import S3AnchorConfig, WebhookAnchorConfig

SEND_TIMEOUT = 10.0
READ_BATCH = 16  # checkpoints a webhook read-back asks for at once
_KEY = re.compile(r"checkpoint-(\d{12})\.json$")


class AnchorError(Exception):
    """An anchor refused or could not take a checkpoint; the text never holds a URL or a credential."""


class Anchor(Protocol):
    name: str

    async def put(self, number: int, document: str) -> None: ...


class ReadableAnchor(Anchor, Protocol):
    @property
    def where(self) -> str: ...

    async def read_back(self, through: int) -> dict[int, bytes]:
        """Every checkpoint the anchor holds, by number; `through` is the last one kubegate wrote there."""
        ...


def s3_client(region: str | None, endpoint_url: str | None) -> Any:
    import boto3  # the s3 extra: only configurations with S3 anchors or sinks need it

    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url)


class S3Anchor:
    name = "s3"

    def __init__(self, config: S3AnchorConfig, client: Any = None) -> None:
        self.config = config
        self.client = client or s3_client(config.region, config.endpoint_url)

    @property
    def where(self) -> str:
        return f"s3://{self.config.bucket}/{self.config.prefix}"

    def key(self, number: int) -> str:
        return f"{self.config.prefix}checkpoint-{number:012d}.json"

    async def put(self, number: int, document: str) -> None:
        until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.config.retention)
        try:
            await asyncio.to_thread(
                self.client.put_object,
                Bucket=self.config.bucket,
                Key=self.key(number),
                Body=document.encode(),
                ContentType="application/json",
                ObjectLockMode=self.config.object_lock_mode,
                ObjectLockRetainUntilDate=until,
                ChecksumAlgorithm="SHA256",
            )
        except Exception as exc:
            raise AnchorError(f"{self.where}: {s3_problem(exc)}") from exc

    async def read_back(self, through: int) -> dict[int, bytes]:
        return await asyncio.to_thread(self.read_all)

    def read_all(self) -> dict[int, bytes]:
        """Every checkpoint in the bucket by number: the oldest version of each key (the one locked first)."""
        oldest: dict[str, str] = {}  # S3 lists each key's versions newest first: the last one seen is the oldest
        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.config.bucket, Prefix=self.config.prefix
            )
            for page in pages:
                for v in page.get("Versions", []):
                    if _KEY.search(v["Key"]):
                        oldest[v["Key"]] = v["VersionId"]
            found: dict[int, bytes] = {}
            for key, version in oldest.items():
                match = _KEY.search(key)
                assert match is not None
                obj = self.client.get_object(Bucket=self.config.bucket, Key=key, VersionId=version)
                found[int(match.group(1))] = obj["Body"].read()
        except Exception as exc:
            raise AnchorError(f"{self.where}: {s3_problem(exc)}") from exc
        return found


def s3_problem(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


class WebhookAnchor:
    name = "webhook"

    def __init__(self, config: WebhookAnchorConfig) -> None:
        self.config = config

    @property
    def where(self) -> str:
        host = urlsplit(self.config.read_url or self.config.url).hostname
        return f"the webhook anchor at {host}" if host else "the webhook anchor"

    @property
    def readable(self) -> bool:
        return self.config.read_url is not None

    async def put(self, number: int, document: str) -> None:
        headers = {"Content-Type": "application/json", **self.config.headers}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT)) as http,
                http.post(self.config.url, data=document.encode(), headers=headers) as resp,
            ):
                if resp.status >= 300:
                    raise AnchorError(f"the checkpoint webhook answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AnchorError(f"the checkpoint webhook cannot be reached: {type(exc).__name__}") from exc

    async def read_back(self, through: int) -> dict[int, bytes]:
        """GET each checkpoint from 1 on, READ_BATCH at a time, until a whole batch past `through` is
        missing: checkpoints the receiver has beyond what this store says it wrote are read too."""
        template = self.config.read_url
        if template is None:
            raise AnchorError(f"{self.where}: no read_url is configured")
        headers = self.config.headers if self.config.read_headers is None else self.config.read_headers
        found: dict[int, bytes] = {}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT)) as http:

                async def one(number: int) -> None:
                    url = template.replace("{number}", str(number))
                    async with http.get(url, headers=headers, allow_redirects=False) as resp:
                        if resp.status == 200:
                            found[number] = await resp.read()
                        elif resp.status != 404:
                            raise AnchorError(f"{self.where}: checkpoint {number}: HTTP {resp.status}")

                start = 1
                while True:
                    numbers = range(start, start + READ_BATCH)
                    await asyncio.gather(*(one(n) for n in numbers))
                    if start > through and not any(n in found for n in numbers):
                        return found
                    start += READ_BATCH
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AnchorError(f"{self.where} cannot be read: {type(exc).__name__}") from exc
