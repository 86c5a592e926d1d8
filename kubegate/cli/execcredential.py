"""The ExecCredential kubectl reads from its credential plugin (client.authentication.k8s.io).

Standard library only (json, os, time): the plugin's cached path (kubegate.cli.plugin) prints one on
every kubectl call.
"""

from __future__ import annotations

import json
import os
import time

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


def requested_api_version() -> str:
    """The ExecCredential version kubectl asked for in KUBERNETES_EXEC_INFO (v1 if absent or unknown)."""
    try:
        info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO", "{}"))
    except ValueError:
        return EXEC_API_VERSIONS[0]
    version = info.get("apiVersion") if isinstance(info, dict) else None
    return version if version in EXEC_API_VERSIONS else EXEC_API_VERSIONS[0]


def exec_credential(token: str, expiry: float | None, api_version: str) -> str:
    """The credential as kubectl reads it from stdout; `expiry` is the token's exp (epoch seconds)."""
    status: dict[str, str] = {"token": token}
    if expiry is not None:
        status["expirationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
    return json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "spec": {}, "status": status})
