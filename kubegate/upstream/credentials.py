"""kubegate's own upstream credentials: where the bearer token or client certificate comes from.

Every kind answers the same two questions for the forwarder: which Authorization header to send
(if any) for this identity, and which client certificate to present (if any).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path

import orjson

from kubegate.identity.model import Identity


class CredentialError(Exception):
    """kubegate could not obtain its own credentials for a connection (the request gets a 502)."""


CertPair = tuple[Path | bytes, Path | bytes]


class Credentials(ABC):
    """Source of kubegate's upstream identity for one connection."""

    @abstractmethod
    async def authorization(self, identity: Identity | None) -> str | None:
        """The Authorization header value to send upstream, or None (client certificate only)."""

    def client_cert(self) -> CertPair | None:
        """(certificate, key) files to present upstream, if this kind uses one."""
        return None

    async def close(self) -> None:
        return None


class StaticToken(Credentials):
    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    async def authorization(self, identity: Identity | None) -> str | None:
        return self._value


class TokenFile(Credentials):
    """A token file re-read when it changes (projected service-account tokens rotate in place).

    A change is a new inode (the kubelet swaps in a new file), a new mtime or a new size: the inode
    catches a same-sized token written within the file system's timestamp granularity.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._value = ""

    async def authorization(self, identity: Identity | None) -> str | None:
        try:
            st = self._path.stat()
        except OSError as exc:
            raise CredentialError(f"cannot read token file {self._path}: {exc.strerror}") from exc
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            token = self._path.read_text().strip()
            if not token:
                raise CredentialError(f"token file {self._path} is empty")
            self._value, self._stamp = f"Bearer {token}", stamp
        return self._value


class ClientCertificate(Credentials):
    """A client certificate and key: files, or PEM data from a kubeconfig's `*-data` fields."""

    def __init__(self, cert: Path | bytes, key: Path | bytes) -> None:
        self._pair = (cert, key)

    async def authorization(self, identity: Identity | None) -> str | None:
        return None

    def client_cert(self) -> CertPair | None:
        return self._pair


class ExecPlugin(Credentials):
    """A kubeconfig `exec` credential plugin (client.authentication.k8s.io), run as kubectl runs it,
    its token cached until the expiry it reports."""

    def __init__(self, command: str, args: list[str], env: dict[str, str], api_version: str) -> None:
        self._argv = [command, *args]
        self._env = env
        self._api_version = api_version
        self._token = ""
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def authorization(self, identity: Identity | None) -> str | None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._token and (self._expires == 0.0 or self._expires - 60 > loop.time()):
                return f"Bearer {self._token}"
            exec_info = {"apiVersion": self._api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
            env = {**os.environ, **self._env, "KUBERNETES_EXEC_INFO": orjson.dumps(exec_info).decode()}
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
            )
            out, err = await proc.communicate()
            if proc.returncode != 0:
                raise CredentialError(
                    f"credential plugin {self._argv[0]} failed ({proc.returncode}): "
                    f"{err.decode(errors='replace').strip()[:300]}"
                )
            try:
                status = orjson.loads(out)["status"]
                self._token = status["token"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise CredentialError(f"credential plugin {self._argv[0]} printed no token") from exc
            self._expires = _expiry_in_loop_time(status.get("expirationTimestamp"), loop.time())
            return f"Bearer {self._token}"


def _expiry_in_loop_time(stamp: str | None, now_loop: float) -> float:
    if not stamp:
        return 0.0
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return now_loop + (when - time.time())


def ssl_context_for(
    ca_file: Path | None, ca_data: bytes | None, insecure: bool, client_cert: CertPair | None
) -> ssl.SSLContext:
    """TLS to the upstream: its CA (file or kubeconfig data; then only that CA, as client-go trusts it, else
    the system's), optional client certificate."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_file is not None:
        ctx = ssl.create_default_context(cafile=str(ca_file))
    elif ca_data is not None:
        # Only PEM's ASCII armour matters; a stray non-ASCII byte in a comment must not stop the load.
        ctx = ssl.create_default_context(cadata=ca_data.decode("ascii", "ignore"))
    else:
        ctx = ssl.create_default_context()
    if client_cert is not None:
        _load_cert_chain(ctx, *client_cert)
    return ctx


def _load_cert_chain(ctx: ssl.SSLContext, cert: Path | bytes, key: Path | bytes) -> None:
    """ssl loads a chain only from files: PEM data is written to a private directory that is removed
    as soon as it is loaded, so a key from a kubeconfig never stays on disk."""
    if isinstance(cert, Path) and isinstance(key, Path):
        ctx.load_cert_chain(str(cert), str(key))
        return
    with tempfile.TemporaryDirectory(prefix="kubegate-") as tmp:
        paths = []
        for name, value in (("tls.crt", cert), ("tls.key", key)):
            path = value if isinstance(value, Path) else Path(tmp) / name
            if not isinstance(value, Path):
                path.write_bytes(value)
            paths.append(str(path))
        ctx.load_cert_chain(*paths)
