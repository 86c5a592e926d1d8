"""A registered cluster at run time: where it is, how kubegate proves itself to it, and a pooled client."""

from __future__ import annotations

import os
from dataclasses import replace

import aiohttp

from kubegate.identity.model import Identity
from kubegate.upstream.client import UpstreamClient
from kubegate.upstream.config import ConnectionConfig, InClusterAuth
from kubegate.upstream.credentials import (
    ClientCertificate,
    CredentialError,
    Credentials,
    StaticToken,
    TokenFile,
)
from kubegate.upstream.impersonation import impersonation_headers
from kubegate.upstream.kubeconfig import KubeconfigTarget, load_kubeconfig
from kubegate.upstream.trust import Trust

EKS_USER_PREFIX = "kubegate:"  # the access entry's username template is "kubegate:{{SessionName}}"
IMPERSONATION_CACHE_MAX = 4096


def _in_cluster(config: ConnectionConfig, auth: InClusterAuth) -> KubeconfigTarget:
    """The pod's service account (what client-go's rest.InClusterConfig reads); explicit fields win."""
    server = config.server
    if server is None:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise CredentialError(
                f"connection {config.name}: in_cluster needs KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT (set in every pod), or a server"
            )
        server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    ca_file = config.certificate_authority or auth.directory / "ca.crt"
    if not ca_file.is_file() and not config.insecure_skip_tls_verify:
        raise CredentialError(
            f"connection {config.name}: no cluster CA at {ca_file} (is the service-account "
            "token mounted? automountServiceAccountToken must not be false)"
        )
    return KubeconfigTarget(
        server=server, ca_file=ca_file, ca_data=None, insecure=False, credentials=TokenFile(auth.directory / "token")
    )


def _target(config: ConnectionConfig) -> KubeconfigTarget:
    """Credentials and TLS trust for a connection; explicit connection fields beat the kubeconfig's."""
    auth = config.auth
    credentials: Credentials
    if auth.in_cluster is not None:
        return _in_cluster(config, auth.in_cluster)
    if auth.kubeconfig is not None:
        kube = load_kubeconfig(auth.kubeconfig.path, auth.kubeconfig.context)
        if config.certificate_authority is None:
            return kube if config.server is None else replace(kube, server=config.server)
        credentials = kube.credentials
    elif auth.token_file is not None:
        credentials = TokenFile(auth.token_file)
    elif auth.token is not None:
        credentials = StaticToken(auth.token)
    elif auth.client_certificate is not None and auth.client_key is not None:
        credentials = ClientCertificate(auth.client_certificate, auth.client_key)
    elif auth.eks is not None:
        try:
            from kubegate.upstream.eks import EKSCredentials
        except ModuleNotFoundError as exc:
            raise CredentialError(
                f"connection {config.name}: EKS credentials need botocore: pip install 'kubegate[eks]'"
            ) from exc
        credentials = EKSCredentials(auth.eks, config.identity_mode)
    else:
        raise CredentialError(f"connection {config.name}: no usable auth")
    return KubeconfigTarget(
        server=config.server or "",
        ca_file=config.certificate_authority,
        ca_data=None,
        insecure=False,
        credentials=credentials,
    )


class Connection:
    """One cluster: its base URL, TLS trust, kubegate's credentials and a keep-alive connection pool."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self.name = config.name
        target = _target(config)
        self.credentials = target.credentials
        self.server = target.server.rstrip("/")
        self.trust = Trust(
            target.ca_file,
            target.ca_data,
            config.insecure_skip_tls_verify or target.insecure,
            self.credentials.client_cert(),
        )
        self._session: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []
        self.client = UpstreamClient(self)
        # The verifier hands out one Identity object per cached token, so its impersonation headers are
        # built once per token, not per request. Keyed by id(); the entry holds the identity itself, so
        # the id cannot be reused while the entry lives, and `is` proves a hit.
        self._impersonating: dict[int, tuple[Identity, list[tuple[str, str]]]] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pool; after the CA file changed, a new one. Requests under way on the old pool (watches, exec)
        finish there and its idle connections close after the keep-alive; it is closed with the connection."""
        if self.trust.refresh() and self._session is not None:
            self._retired.append(self._session)
            self._session = None
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self.trust.context, limit=0, keepalive_timeout=60, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def upstream_identity_headers(self, identity: Identity) -> list[tuple[str, str]]:
        """kubegate's own Authorization plus impersonation of the verified caller."""
        headers: list[tuple[str, str]] = []
        authorization = await self.credentials.authorization(identity)
        if authorization:
            headers.append(("Authorization", authorization))
        if self.config.identity_mode == "impersonation":
            headers += self._impersonation(identity)
        return headers

    def _impersonation(self, identity: Identity) -> list[tuple[str, str]]:
        entry = self._impersonating.get(id(identity))
        if entry is not None and entry[0] is identity:
            return entry[1]
        headers = impersonation_headers(identity, self.config.pass_groups)
        if len(self._impersonating) >= IMPERSONATION_CACHE_MAX:
            del self._impersonating[next(iter(self._impersonating))]
        self._impersonating[id(identity)] = (identity, headers)
        return headers

    def kubernetes_user(self, identity: Identity) -> str:
        """The user the cluster authorizes for `identity`, whom temporary bindings name: the impersonated
        user, or in eks-session-name mode the user EKS maps the caller's session to (docs/eks.md)."""
        if self.config.identity_mode == "eks-session-name":
            from kubegate.upstream.eks import role_session_name

            return EKS_USER_PREFIX + role_session_name(identity)
        return identity.username

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            if session is not None:
                await session.close()
        self._retired.clear()
        await self.credentials.close()
