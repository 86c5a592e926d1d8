"""The Containerfile: the image builds with buildah, runs its entrypoint as a non-root user that writes nothing
to its root file system, and serves real kubectl through the real cluster with in-cluster credentials.

The image is cached in buildah's storage under a tag keyed by a hash of everything it is built from, and
deploy/debian-base keeps its root file system in ~/.cache/kubegate-image, so only the first run on a machine
builds (about 80 s: the Debian base, then the wheel and its dependencies from PyPI, mostly downloads);
later runs take seconds. scripts/test installs buildah and mmdebstrap; without them the tier says why it did
not run, and fails under CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubegate.sandbox.envtest import free_port, write_service_account_volume
from kubegate.sandbox.issuer import DevIssuer
from kubegate.web.ui.assets import VENDOR
from tests.conftest import KUBECTL, kubectl_env, tier_unavailable
from tests.deploy.conftest import OVERLAYS, ROOT, Cluster
from tests.test_package import SOURCES, listening_url

pytestmark = [pytest.mark.image, pytest.mark.timeout(600)]  # the first test waits for the build
BASE = os.environ.get("KUBEGATE_IMAGE_BASE", "")  # a public Python image elsewhere; default: deploy/debian-base
USER = 65532
REPOSITORY = "localhost/kubegate-test"  # one tag, the newest build's: older ones are removed


def buildah(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip()


def _inputs_digest(base_id: str) -> str:
    """A hash of the Containerfile, .containerignore, the base image and every file of the build context."""
    digest = hashlib.sha256(base_id.encode())
    files = [ROOT / "Containerfile", ROOT / ".containerignore"]
    for name in SOURCES:
        path = ROOT / name
        files += (
            sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
            if path.is_dir()
            else [path]
        )
    files += [ROOT / "node_modules" / rel for rel in VENDOR.values()]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _build_trust(tmp: Path) -> list[str]:
    """This machine reaches PyPI through a proxy whose CA only the host trusts: lend the build the host's
    CA bundle and tell its pip (a normal machine needs none of this)."""
    bundle = Path(os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt"))
    if not bundle.is_file():
        return []
    (tmp / "pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    return ["-v", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro", "-v", f"{tmp / 'pip.conf'}:/etc/pip.conf:ro"]


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tools = ["buildah"] if BASE else ["buildah", "mmdebstrap"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        tier_unavailable("image", f"{' and '.join(missing)} missing: apt-get install -y {' '.join(tools)}")
    if os.geteuid() != 0:
        tier_unavailable("image", "building with buildah and mmdebstrap as these tests do needs root")
    base = BASE
    if not base:
        made = subprocess.run([str(ROOT / "deploy" / "debian-base")], capture_output=True, text=True, timeout=600)
        assert made.returncode == 0, f"deploy/debian-base failed ({made.returncode}):\n{made.stderr[-3000:]}"
        base = made.stdout.strip()
    base_id = buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", base)
    tag = f"{REPOSITORY}:{_inputs_digest(base_id)}"
    if subprocess.run(["buildah", "inspect", "--type", "image", tag], capture_output=True).returncode != 0:
        started = time.monotonic()
        buildah(
            "build",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--format",
            "docker",
            "--build-arg",
            f"BASE={base}",
            *_build_trust(tmp_path_factory.mktemp("build")),
            "-t",
            tag,
            str(ROOT),
        )
        print(f"\nbuilt {tag} in {time.monotonic() - started:.0f} s")
        for old in buildah("images", "--format", "{{.Name}}:{{.Tag}}").split():
            if old.startswith(f"{REPOSITORY}:") and old != tag:
                subprocess.run(["buildah", "rmi", old], capture_output=True)  # kept while a container uses it
    print(f"\nimage {tag}: {buildah('images', '--format', '{{.Size}}', tag)}")
    yield tag


EXTRAS_IN_THE_IMAGE = """
import asyncpg.protocol
import botocore.session
from botocore.credentials import ReadOnlyCredentials
from kubegate.upstream.eks import build_eks_token, regional_sts_endpoint
session = botocore.session.get_session()
for service in ("sts", "sso", "sso-oidc", "signin"):
    session.create_client(service, region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b")
print(regional_sts_endpoint("cn-north-1"), build_eks_token(ReadOnlyCredentials("a", "b", None), "c", "eu-west-1"))
"""


def _config(image: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))["Docker"]["config"]
    return config


def test_the_image_runs_kubegate_serve_as_a_non_root_user_with_a_health_check(image: str) -> None:
    config = _config(image)
    assert config["Entrypoint"] == ["kubegate", "serve"]
    assert config["User"] == f"{USER}:{USER}"
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    container = buildah("from", "--pull-never", image)
    try:
        found = buildah(
            "run",
            "--isolation",
            "chroot",
            container,
            "--",
            "python3",
            "-c",
            "import shutil; print([c for c in ('gcc', 'cc', 'c++', 'clang', 'make', 'ld') if shutil.which(c)])",
        )
        assert found == "[]", f"compilers in the final stage: {found}"
        assert buildah("run", "--isolation", "chroot", container, "--", "kubegate", "--version").startswith("kubegate ")
        # The extras' compiled parts load stripped, and the AWS API models kept serve the EKS credentials.
        extras = buildah("run", "--isolation", "chroot", container, "--", "python3", "-c", EXTRAS_IN_THE_IMAGE)
        assert extras.startswith("https://sts.cn-north-1.amazonaws.com.cn k8s-aws-v1."), extras
    finally:
        buildah("rm", container)


class Issuer:
    """The development issuer on a loop of its own (kubectl and buildah block the test's thread)."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.issuer = DevIssuer(root)
        asyncio.run_coroutine_threadsafe(self.issuer.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.issuer.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    running = Issuer(tmp_path / "issuer")
    yield running.issuer
    running.close()


def test_the_image_serves_kubectl_through_the_real_cluster_as_its_serviceaccount(
    image: str, fresh_cluster: Cluster, issuer: DevIssuer, tmp_path: Path
) -> None:
    """The SQLite overlay's ServiceAccount and RBAC on the cluster, a TokenRequest token in a kubelet-style
    volume, kubegate.yaml with auth {in_cluster: true}: the entrypoint of the image serves kubectl."""
    fresh_cluster.kubectl("delete", "deployment", "kubegate", "-n", "kubegate", "--ignore-not-found")
    fresh_cluster.kubectl("apply", "--server-side", "--field-manager=kubegate-deploy", "-k", str(OVERLAYS / "sqlite"))
    control = fresh_cluster.control
    control.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "developers-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "developers"}],
        }
    )
    volume = write_service_account_volume(
        tmp_path / "serviceaccount", control.service_account_token("kubegate", "kubegate"), control.ca_file, "kubegate"
    )
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    os.chown(state, USER, USER)
    shutil.copy(issuer.ca_file, etc / "issuer-ca.crt")
    port = free_port()
    (etc / "kubegate.yaml").write_text(
        yaml.safe_dump(
            {
                "listen": {"address": f"127.0.0.1:{port}"},
                "state_dir": "/var/lib/kubegate",
                "identity": {
                    "issuers": [
                        {
                            "url": issuer.url,
                            "audience": "kubegate",
                            "ca_file": "issuer-ca.crt",
                            "username_prefix": "dev:",
                        }
                    ]
                },
                "connections": [{"name": "cluster", "auth": {"in_cluster": True}}],
                "policies": [{"name": "developers", "subjects": {"groups": ["developers"]}, "action": "allow"}],
            }
        )
    )
    entrypoint = _config(image)
    container = buildah("from", "--pull-never", image)
    proc = subprocess.Popen(
        [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "-v",
            f"{etc}:/etc/kubegate:ro",
            "-v",
            f"{state}:/var/lib/kubegate",
            # /var/run is a link to /run in the image, and buildah mounts onto the target itself
            "-v",
            f"{volume}:/run/secrets/kubernetes.io/serviceaccount:ro",
            "--env",
            "KUBERNETES_SERVICE_HOST=127.0.0.1",
            "--env",
            f"KUBERNETES_SERVICE_PORT={control.port}",
            container,
            "--",
            *entrypoint["Entrypoint"],
            *entrypoint["Cmd"],
        ],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = listening_url(proc)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "kubegate",
                    "clusters": [
                        {
                            "name": "kubegate",
                            "cluster": {
                                "server": f"{url}/k8s/cluster",
                                "certificate-authority": str(state / "tls" / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "alice", "user": {"token": issuer.mint("alice", ["developers"])}}],
                    "contexts": [{"name": "kubegate", "context": {"cluster": "kubegate", "user": "alice"}}],
                }
            )
        )

        def kubectl(*args: str) -> str:
            done = subprocess.run(
                [KUBECTL, f"--kubeconfig={kubeconfig}", *args],
                capture_output=True,
                text=True,
                timeout=60,
                env=kubectl_env(),
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        since = control.audit_mark()
        assert json.loads(kubectl("auth", "whoami", "-o", "json"))["status"]["userInfo"]["username"] == "dev:alice"
        assert "kubegate" in kubectl("get", "namespaces", "-o", "name")
        served = control.wait_for_event(
            lambda e: e.stage == "ResponseComplete" and "/api/v1/namespaces" in e.uri, since
        )
        assert served.user == "system:serviceaccount:kubegate:kubegate"
        assert (served.impersonated or {}).get("username") == "dev:alice"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    try:
        root = Path(buildah("mount", container))
        written = [
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.lstat().st_uid == USER and p.relative_to(root).parts[:3] != ("var", "lib", "kubegate")
        ]
        assert not written, f"kubegate wrote to its root file system: {written[:10]}"
        assert (state / "kubegate.db").is_file() and (state / "tls" / "ca.crt").is_file()
    finally:
        buildah("umount", container)
        buildah("rm", container)
