"""Who is asking: OIDC token verification and the Identity it yields."""

from kubegate.identity.model import AuthError, Identity

__all__ = ["AuthError", "Identity"]
