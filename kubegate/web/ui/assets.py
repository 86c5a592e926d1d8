"""Static files: kubegate's own CSS and JS, and the front-end parts installed from the npm registry
(package.json at the repository root; `npm ci` in scripts/install) served from node_modules."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

import kubegate

log = logging.getLogger(__name__)
OWN = Path(__file__).resolve().parent.parent / "static"
DEFAULT_VENDOR_DIR = Path(kubegate.__file__).resolve().parent.parent / "node_modules"
VENDOR = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "asciinema-player.min.js": "asciinema-player/dist/bundle/asciinema-player.min.js",
    "asciinema-player.css": "asciinema-player/dist/bundle/asciinema-player.css",
}
TYPES = {".js": "text/javascript", ".css": "text/css"}


class Assets:
    def __init__(self, vendor_dir: Path | None) -> None:
        self.vendor_dir = vendor_dir or DEFAULT_VENDOR_DIR
        self.missing = sorted(name for name, rel in VENDOR.items() if not (self.vendor_dir / rel).is_file())
        if self.missing:
            log.warning("%s", self.missing_message())

    def missing_message(self) -> str:
        return (f"the web UI's front-end parts are not installed in {self.vendor_dir} (missing "
                f"{', '.join(self.missing)}): run `npm ci` in {self.vendor_dir.parent} (scripts/install does), "
                "or set ui.vendor_dir to a node_modules that has htmx.org and asciinema-player")

    def _file(self, path: Path) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": TYPES.get(path.suffix, "application/octet-stream"),
                                               "Cache-Control": "public, max-age=3600",
                                               "X-Content-Type-Options": "nosniff"})

    async def own(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = OWN / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound(text=f"no static file {name}")
        return self._file(path)

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        rel = VENDOR.get(name)
        if rel is None:
            raise web.HTTPNotFound(text=f"no front-end part {name}; kubegate serves {', '.join(sorted(VENDOR))}")
        path = self.vendor_dir / rel
        if not path.is_file():
            return web.Response(status=503, text=self.missing_message())
        return self._file(path)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/static/vendor/{name}", self.vendor)
        app.router.add_get("/static/{name}", self.own)
