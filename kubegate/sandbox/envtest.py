"""A real Kubernetes control plane (etcd + kube-apiserver) for tests and benchmarks, envtest style.

The binaries come from `KUBEBUILDER_ASSETS`, the folder controller-runtime's envtest uses for the same
purpose (`scripts/test` fills it from ../shared/envtest). The sandbox cluster shares kubegate's own
parsers and codecs, so it can never disagree with them; this one is the judge of Kubernetes behaviour.

What it sets up: RBAC authorization, a static admin token (system:masters), kubegate's own token bound
to exactly `deploy/rbac.yaml`, client certificates for any other user a test needs, a JSON audit log
(RequestResponse for every request kubegate makes, Metadata for the rest, every stage), and the
aggregated roles `view` and `edit` filled with rules (no controller-manager aggregates them here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubegate.sandbox.kubelet import Kubelet
from kubegate.tls import ensure_serving_cert

ASSETS_VARIABLE = "KUBEBUILDER_ASSETS"
ADMIN_USER = "envtest-admin"
# deploy/rbac.yaml binds this user: kubegate's own identity on EKS (docs/eks.md).
GATEWAY_USER = "kubegate:kubegate"
RBAC_FILE = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "rules": [
        {"level": "None", "users": ["system:apiserver"]},
        {"level": "RequestResponse", "users": [GATEWAY_USER]},
        {"level": "Metadata"},
    ],
}

# What the clusterrole-aggregation controller would put into view and edit (abridged from the rules
# that kube-controller-manager aggregates from the built-in aggregate-to-* roles).
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_VIEW_RESOURCES = {
    "": [
        "configmaps",
        "endpoints",
        "persistentvolumeclaims",
        "pods",
        "pods/log",
        "pods/status",
        "replicationcontrollers",
        "services",
        "serviceaccounts",
        "events",
        "limitranges",
        "resourcequotas",
        "namespaces",
        "namespaces/status",
        "pods/status",
        "services/status",
    ],
    "apps": ["daemonsets", "deployments", "deployments/scale", "replicasets", "statefulsets"],
    "batch": ["cronjobs", "jobs"],
    "networking.k8s.io": ["ingresses", "networkpolicies"],
    "policy": ["poddisruptionbudgets"],
    "autoscaling": ["horizontalpodautoscalers"],
    "discovery.k8s.io": ["endpointslices"],
}
AGGREGATED_RULES: dict[str, list[dict[str, Any]]] = {
    "view": [
        {"apiGroups": [group], "resources": resources, "verbs": _READ} for group, resources in _VIEW_RESOURCES.items()
    ],
    "edit": [
        *(
            {"apiGroups": [group], "resources": resources, "verbs": _READ}
            for group, resources in _VIEW_RESOURCES.items()
        ),
        {
            "apiGroups": [""],
            "resources": [
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "configmaps",
                "secrets",
                "services",
                "serviceaccounts",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "events",
            ],
            "verbs": _WRITE,
        },
        {"apiGroups": [""], "resources": ["secrets"], "verbs": _READ},
        {"apiGroups": [""], "resources": ["pods/exec", "pods/attach", "pods/portforward"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets", "deployments", "deployments/scale", "replicasets", "statefulsets"],
            "verbs": _WRITE,
        },
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": _WRITE},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": _WRITE},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _WRITE},
    ],
}


class EnvtestUnavailable(RuntimeError):
    """The kube-apiserver and etcd binaries are not where KUBEBUILDER_ASSETS says."""


def assets_dir() -> Path:
    """The folder holding kube-apiserver and etcd, or EnvtestUnavailable saying what is missing."""
    value = os.environ.get(ASSETS_VARIABLE, "")
    if not value:
        raise EnvtestUnavailable(
            f"{ASSETS_VARIABLE} is not set; scripts/test sets it from ../shared/envtest "
            "(or point it at your own envtest binaries)"
        )
    folder = Path(value)
    missing = [b for b in ("kube-apiserver", "etcd") if not os.access(folder / b, os.X_OK)]
    if missing:
        raise EnvtestUnavailable(f"{ASSETS_VARIABLE}={folder} has no executable {' or '.join(missing)}")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class ClientCert:
    """A client certificate the cluster's CA signed: user = CN, groups = O."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class AuditEvent:
    """One line of the kube-apiserver audit log, with the fields tests read."""

    raw: dict[str, Any]

    @property
    def stage(self) -> str:
        return str(self.raw.get("stage", ""))

    @property
    def uri(self) -> str:
        return str(self.raw.get("requestURI", ""))

    @property
    def verb(self) -> str:
        return str(self.raw.get("verb", ""))

    @property
    def user(self) -> str:
        return str((self.raw.get("user") or {}).get("username", ""))

    @property
    def impersonated(self) -> dict[str, Any] | None:
        return self.raw.get("impersonatedUser")

    @property
    def code(self) -> int:
        return int((self.raw.get("responseStatus") or {}).get("code", 0))


class ControlPlane:
    """etcd and kube-apiserver as child processes on free loopback ports, for one test session."""

    def __init__(self, root: Path, assets: Path | None = None, *, extra_args: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.assets = assets or assets_dir()
        self.extra_args = extra_args
        self.admin_token = secrets.token_urlsafe(24)
        self.gateway_token = secrets.token_urlsafe(24)
        self.port = 0
        self.url = ""
        self.ca_file = self.root / "tls" / "ca.crt"
        self.audit_log = self.root / "audit.log"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._ctx: ssl.SSLContext | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> ControlPlane:
        self.root.mkdir(parents=True, exist_ok=True)
        certs = ensure_serving_cert(
            self.root / "tls",
            ["127.0.0.1", "localhost", "kubernetes.default.svc", "kubernetes.default", "kubernetes"],
            cn="envtest",
        )
        self.ca_file = certs.ca
        sa_key = self.root / "sa.key"
        key = ec.generate_private_key(ec.SECP256R1())
        sa_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (self.root / "sa.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        tokens = self.root / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},{ADMIN_USER},admin-uid,"system:masters"\n'
            f"{self.gateway_token},{GATEWAY_USER},kubegate-uid\n"
        )
        tokens.chmod(0o600)
        policy = self.root / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        client_port, peer_port, self.port = free_port(), free_port(), free_port()
        etcd_dir = self.root / "etcd"
        shutil.rmtree(etcd_dir, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                "--name",
                "envtest",
                "--data-dir",
                str(etcd_dir),
                "--listen-client-urls",
                f"http://127.0.0.1:{client_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{client_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"envtest=http://127.0.0.1:{peer_port}",
                "--initial-cluster-state",
                "new",
                "--log-level",
                "error",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{client_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={certs.cert}",
                f"--tls-private-key-file={certs.key}",
                f"--client-ca-file={certs.ca}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.root / 'sa.pub'}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                f"--cert-dir={self.root / 'certs'}",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                "--audit-log-maxsize=0",
                "--allow-privileged=true",
                "--v=0",
                *self.extra_args,
            ],
        )
        self.url = f"https://127.0.0.1:{self.port}"
        self._ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            self._wait_ready(timeout)
            self._bootstrap()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """kube-apiserver first, then etcd: an apiserver whose etcd is gone waits out the whole 10 s."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._procs.clear()

    def _spawn(self, binary: str, args: list[str]) -> None:
        log = (self.root / f"{binary}.log").open("ab")
        self._procs.append(
            subprocess.Popen(
                [str(self.assets / binary), *args],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def _wait_ready(self, timeout: float) -> None:
        """/readyz, then the OpenAPI document kubectl apply validates against (served a little later)."""
        deadline = time.monotonic() + timeout
        for path in ("/readyz", "/openapi/v3/apis/apps/v1", "/apis/rbac.authorization.k8s.io/v1/clusterroles/edit"):
            while True:
                for proc in self._procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {self.root}/*.log")
                with contextlib.suppress(OSError, urllib.error.URLError):
                    if self.request("GET", path, check=False)[0] == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"kube-apiserver did not serve {path} within {timeout:.0f}s; see {self.root}")
                time.sleep(0.1)

    def _bootstrap(self) -> None:
        """kubegate's rights from deploy/rbac.yaml (so that file is tested too) and rules for view/edit."""
        for doc in yaml.safe_load_all(RBAC_FILE.read_text()):
            if doc:
                self.apply(doc)
        for name, rules in AGGREGATED_RULES.items():
            self.request(
                "PATCH",
                f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
                {"rules": rules},
                content_type="application/merge-patch+json",
            )

    # -- talking to it as the admin -------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
        check: bool = True,
        timeout: float = 30,
    ) -> tuple[int, Any]:
        """One API call (as the admin unless given a token); returns (status, decoded JSON or text)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.admin_token}",
                "Content-Type": content_type,
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode(errors="replace")
        if check and status >= 400:
            raise RuntimeError(f"{method} {path} answered {status}: {decoded}")
        return status, decoded

    def apply(self, obj: dict[str, Any], *, field_manager: str = "envtest") -> dict[str, Any]:
        """Server-side apply of one object as the admin (any kind the cluster serves)."""
        path = self.object_path(obj)
        _, out = self.request(
            "PATCH", f"{path}?fieldManager={field_manager}&force=true", obj, content_type="application/apply-patch+yaml"
        )
        result: dict[str, Any] = out
        return result

    def seed(self, objects: list[dict[str, Any]]) -> None:
        """Create (apply) objects as the admin; namespaces first, and each namespace's default ServiceAccount
        (no controller-manager makes it, and without it the ServiceAccount admission refuses pods)."""
        namespaces = {(o.get("metadata") or {}).get("namespace") for o in objects if o.get("kind") != "Namespace"}
        ordered = sorted(objects, key=lambda o: o.get("kind") != "Namespace")
        for obj in ordered:
            if obj.get("kind") == "Namespace":
                self.apply(obj)
                namespaces.add(obj["metadata"]["name"])
        for ns in sorted(n for n in namespaces if n):
            self.ensure_namespace(ns)
        for obj in ordered:
            if obj.get("kind") != "Namespace":
                self.apply(obj)

    def ensure_namespace(self, name: str) -> None:
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}})

    def get(self, path: str) -> Any:
        return self.request("GET", path)[1]

    def exists(self, path: str) -> bool:
        return self.request("GET", path, check=False)[0] == 200

    _PLURALS = {
        "Endpoints": "endpoints",
        "NetworkPolicy": "networkpolicies",
        "Ingress": "ingresses",
        "PodDisruptionBudget": "poddisruptionbudgets",
        "StorageClass": "storageclasses",
        "IngressClass": "ingressclasses",
        "PriorityClass": "priorityclasses",
    }
    _CLUSTER_KINDS = frozenset(
        {
            "Namespace",
            "Node",
            "ClusterRole",
            "ClusterRoleBinding",
            "PersistentVolume",
            "CustomResourceDefinition",
            "StorageClass",
            "PriorityClass",
            "IngressClass",
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
    )

    def object_path(self, obj: dict[str, Any]) -> str:
        """The REST path of one object (built-in kinds; a CRD's kind with `plural` in the object's `_plural`)."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj.get("metadata") or {}
        plural = self._PLURALS.get(kind) or (kind.lower() + ("es" if kind.endswith("s") else "s"))
        if kind.endswith("y") and kind not in self._PLURALS:
            plural = kind.lower()[:-1] + "ies"
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        ns = "" if kind in self._CLUSTER_KINDS else f"/namespaces/{meta.get('namespace') or 'default'}"
        return f"{base}{ns}/{plural}/{meta['name']}"

    # -- credentials for others -----------------------------------------------------------------------

    def write_kubeconfig(
        self, path: Path, token: str | None = None, *, cert: ClientCert | None = None, server: str | None = None
    ) -> Path:
        """A kubeconfig for this cluster: kubegate's own token unless given another token or a client cert."""
        user: dict[str, Any] = (
            {"client-certificate": str(cert.cert), "client-key": str(cert.key)}
            if cert
            else {"token": token or self.gateway_token}
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "envtest",
            "preferences": {},
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {
                        "server": server or self.url,
                        "certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": "envtest", "user": user}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "envtest"}}],
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def admin_kubeconfig(self, path: Path) -> Path:
        return self.write_kubeconfig(path, self.admin_token)

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token for a ServiceAccount from the TokenRequest API, as the kubelet gets a projected one."""
        _, answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": seconds}},
        )
        token: str = answer["status"]["token"]
        return token

    def client_cert(self, user: str, groups: tuple[str, ...] = ()) -> ClientCert:
        """A client certificate for `user` in `groups`, signed by the cluster's client CA."""
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        ca_key = serialization.load_pem_private_key((self.ca_file.parent / "ca.key").read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                *(x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups),
                x509.NameAttribute(NameOID.COMMON_NAME, user),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        folder = self.root / "clients"
        folder.mkdir(exist_ok=True)
        stem = folder / secrets.token_hex(6)
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        return ClientCert(cert_path, key_path)

    # -- the audit log --------------------------------------------------------------------------------

    def audit_mark(self) -> int:
        """A position in the audit log; events() after it are what reached the cluster since."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def events(self, since: int = 0, where: Callable[[AuditEvent], bool] | None = None) -> list[AuditEvent]:
        """Audit events after `since` (every stage; RequestReceived is written before the request runs)."""
        return list(self._events(since, where))

    def _events(self, since: int, where: Callable[[AuditEvent], bool] | None) -> Iterator[AuditEvent]:
        if not self.audit_log.exists():
            return
        with self.audit_log.open("rb") as f:
            f.seek(since)
            for line in f:
                if not line.endswith(b"\n"):
                    break
                event = AuditEvent(json.loads(line))
                if where is None or where(event):
                    yield event

    def wait_for_event(self, where: Callable[[AuditEvent], bool], since: int = 0, timeout: float = 10) -> AuditEvent:
        """The first audit event after `since` that matches, waiting for it to be written."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(since, where)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError("no matching audit event reached the cluster's log")
            time.sleep(0.05)


def write_service_account_volume(directory: Path, token: str, ca_file: Path, namespace: str) -> Path:
    """The service-account volume as the kubelet's atomic writer lays it out and rotates it: the files in a
    fresh timestamped directory, `..data` swapped to point at it, and token, ca.crt, namespace -> ..data/."""
    directory.mkdir(parents=True, exist_ok=True)
    fresh = directory / f"..{dt.datetime.now(dt.UTC):%Y_%m_%d_%H_%M_%S.%f}"
    fresh.mkdir()
    (fresh / "token").write_text(token)
    (fresh / "ca.crt").write_bytes(ca_file.read_bytes())
    (fresh / "namespace").write_text(namespace)
    link = directory / "..data_tmp"
    link.symlink_to(fresh.name)
    old = (directory / "..data").resolve() if (directory / "..data").exists() else None
    os.replace(link, directory / "..data")
    for name in ("token", "ca.crt", "namespace"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")
    if old is not None:
        shutil.rmtree(old)
    return directory


class EnvtestCluster:
    """The control plane and one kubelet stand-in, started and stopped on the caller's event loop, with
    the same helpers the sandbox cluster offers the tests (seed, append_log, kubeconfigs)."""

    def __init__(self, root: Path, assets: Path | None = None) -> None:
        self.control = ControlPlane(root / "control-plane", assets)
        self.root = Path(root)
        self.kubelet: Kubelet | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.control.start)
        self._loop = asyncio.get_running_loop()
        self.kubelet = Kubelet(self.root / "kubelet", self.control.url, self.control.admin_token, self.control.ca_file)
        try:
            await self.kubelet.start()
        except BaseException:
            await asyncio.to_thread(self.control.stop)
            raise

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.stop()
        await asyncio.to_thread(self.control.stop)

    @property
    def url(self) -> str:
        return self.control.url

    @property
    def ca_file(self) -> Path:
        return self.control.ca_file

    @property
    def admin_token(self) -> str:
        return self.control.admin_token

    @property
    def gateway_token(self) -> str:
        return self.control.gateway_token

    @property
    def node(self) -> str:
        assert self.kubelet is not None
        return self.kubelet.node

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        return self.control.write_kubeconfig(path, token)

    def seed(self, objects: list[dict[str, Any]]) -> None:
        self.control.seed(objects)

    def append_log(
        self, namespace: str, pod: str, text: str, container: str | None = None, partial: bool = False
    ) -> None:
        """Container output, appended on the kubelet's loop (from any thread; returns once it is there)."""
        assert self.kubelet is not None and self._loop is not None
        kubelet = self.kubelet
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            kubelet.append_log(namespace, pod, text, container, partial)
            return

        async def append() -> None:
            kubelet.append_log(namespace, pod, text, container, partial)

        asyncio.run_coroutine_threadsafe(append(), self._loop).result(10)


def developers_are_admins() -> dict[str, Any]:
    """The standing binding the test tier and the CI benchmark give a cluster: group `developers` is
    cluster-admin (kubegate passes groups as Impersonate-Group), so callers need no temporary role."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "developers-are-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}],
    }
