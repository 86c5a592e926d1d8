"""Authentication: every request must carry an OIDC token that verifies now, or it stops here."""

from __future__ import annotations

from typing import Protocol

from kubegate.flow import Flow, Stage
from kubegate.identity.model import AuthError, Identity
from kubegate.kube.status import Refused

HINT = (
    "point your kubeconfig's user at `kubegate token` (or set a bearer token from your identity provider) and try again"
)


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header, or AuthError saying what is wrong."""
    if not authorization:
        raise AuthError("no bearer token in the request")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header is not a bearer token")
    return token.strip()


class AuthenticationStage(Stage):
    name = "authentication"

    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def on_request(self, flow: Flow) -> None:
        try:
            flow.identity = await self._verifier.verify(bearer_token(flow.request.headers.get("Authorization")))
        except AuthError as exc:
            raise Refused(401, f"kubegate refused the token: {exc.reason}; {HINT}", reason="Unauthorized") from exc
