"""The listener says at start-up which base URL kubegate hands out, and the gateway uses exactly that."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kubegate.app import GATEWAY
from kubegate.config import Config, ListenConfig
from kubegate.listener import start_gateway


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ({"external_url": "https://kubegate.example.com/"}, "https://kubegate.example.com"),
        ({"address": "0.0.0.0:8443"}, "https://127.0.0.1:8443"),
        ({"address": "[::]:9443"}, "https://[::1]:9443"),
        ({"address": "[fd00::1]:443"}, "https://[fd00::1]:443"),
    ],
)
def test_the_base_url_is_external_url_else_the_listen_address(listen: dict[str, str], expected: str) -> None:
    assert ListenConfig.model_validate(listen).base_url() == expected


@pytest.mark.parametrize("url", ["kubegate.example.com", "https://", "https://k.example/?x=1", "https://k#frag"])
def test_an_external_url_that_is_not_a_base_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="external_url"):
        ListenConfig.model_validate({"external_url": url})


async def test_start_up_names_the_listen_address_as_the_base_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(listen=ListenConfig(address="127.0.0.1:0"), state_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="kubegate.listener"):
        listening = await start_gateway(config)
    try:
        port = int(listening.url.rpartition(":")[2])
        assert listening.url == f"https://127.0.0.1:{port}" == listening.runner.app[GATEWAY].base_url
        assert f"use the listen address {listening.url}: set listen.external_url" in caplog.text
    finally:
        await listening.stop()


async def test_start_up_names_the_external_url_as_the_base_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(
        listen=ListenConfig(address="127.0.0.1:0", external_url="https://kubegate.example.com"), state_dir=tmp_path
    )
    with caplog.at_level(logging.INFO, logger="kubegate.listener"):
        listening = await start_gateway(config)
    try:
        assert listening.runner.app[GATEWAY].base_url == "https://kubegate.example.com"
        assert "use listen.external_url https://kubegate.example.com" in caplog.text
        port = listening.runner.addresses[0][1]
        assert listening.runner.app[GATEWAY].loopback.url == f"https://127.0.0.1:{port}"  # MCP calls stay here
    finally:
        await listening.stop()
