"""Each registered connection and its health."""

from __future__ import annotations

from aiohttp import web

from kubegate.web.ui.health import HealthCache
from kubegate.web.ui.pages import POLICY_READERS, UI, Viewer, page, render

HEALTH: web.AppKey[HealthCache] = web.AppKey("kubegate-ui-health", HealthCache)


def _auth_kind(name: str, request: web.Request) -> str:
    config = next(c for c in request.config_dict[UI].config.connections if c.name == name)
    auth = config.auth
    return next(
        kind
        for kind in ("kubeconfig", "token_file", "token", "client_certificate", "eks")
        if getattr(auth, kind) is not None
    )


@page(POLICY_READERS)
async def connections_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    gateway = request.config_dict[UI].gateway
    checks = await request.app[HEALTH].check(gateway.connections)
    rows = [
        {
            "health": h,
            "auth": _auth_kind(h.name, request),
            "identity_mode": gateway.connections[h.name].config.identity_mode,
        }
        for h in checks
    ]
    return render(request, "connections.html", viewer=viewer, title="Connections", rows=rows)


def add_routes(app: web.Application) -> None:
    app[HEALTH] = HealthCache()
    app.router.add_get("/connections", connections_page)
