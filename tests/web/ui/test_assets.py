"""Front-end parts come from the package or node_modules; when they are missing, kubegate says how to install them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubegate.web.ui import assets as assets_module
from kubegate.web.ui.assets import VENDOR, Assets

Client = TestClient[web.Request, web.Application]


async def _client(vendor_dir: Path) -> Client:
    app = web.Application()
    Assets(vendor_dir).add_routes(app)
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def installed(tmp_path: Path) -> AsyncIterator[Client]:
    for rel in VENDOR.values():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"/* {rel} */")
    client = await _client(tmp_path)
    yield client
    await client.close()


async def test_installed_parts_and_own_files_are_served(installed: Client) -> None:
    response = await installed.get("/static/vendor/htmx.min.js")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/javascript")
    assert await response.text() == "/* htmx.org/dist/htmx.min.js */"
    css = await installed.get("/static/kubegate.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")


async def test_only_named_files_are_served(installed: Client) -> None:
    assert (await installed.get("/static/vendor/package.json")).status == 404
    assert (await installed.get("/static/vendor/..%2F..%2Fetc%2Fpasswd")).status == 404
    assert (await installed.get("/static/..%2Fui%2Fcookies.py")).status == 404
    assert (await installed.get("/static/.hidden")).status == 404


async def test_missing_parts_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    assets = Assets(tmp_path / "node_modules")
    assert assets.missing == sorted(VENDOR)
    assert "run `npm ci` in" in assets.missing_message() and "asciinema-player.min.js" in assets.missing_message()
    client = await _client(tmp_path / "node_modules")
    try:
        response = await client.get("/static/vendor/htmx.min.js")
        assert response.status == 503 and "npm ci" in await response.text()
    finally:
        await client.close()


def test_without_vendor_dir_the_packaged_copy_wins_over_node_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel carries kubegate/web/vendor (setup.py); a source checkout has only node_modules."""
    packaged = tmp_path / "vendor"
    monkeypatch.setattr(assets_module, "PACKAGED_VENDOR_DIR", packaged)
    assert Assets(None).vendor_dir == assets_module.SOURCE_VENDOR_DIR
    packaged.mkdir()
    assert Assets(None).vendor_dir == packaged
