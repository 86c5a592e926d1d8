"""The upstream-access stage: which binding a decision asks for, whom it names, how failures refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.status import Refused
from kubegate.policy.decision import Decision
from kubegate.recording.query import list_events
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from kubegate.upstream.bindings import BindingError, BindingSpec, Ensured
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from kubegate.upstream.credentials import CredentialError
from kubegate.upstream.eks import role_session_name
from kubegate.upstream.stage import RoleGrants, UpstreamAccessStage

ALICE = Identity(issuer="https://idp", subject="alice", username="idp:alice", groups=("dev",))
EKS_AUTH = {"eks": {"cluster": "dev", "region": "eu-west-1", "role_arn": "arn:aws:iam::111122223333:role/kubegate"}}


class FakeBindings:
    """Records what the stage asks for; answers with `action` or raises `error`."""

    def __init__(self, action: str = "created", error: Exception | None = None) -> None:
        self.asked: list[tuple[BindingSpec, str, str]] = []
        self.action = action
        self.error = error

    async def ensure(self, spec: BindingSpec, identity: str, session: str) -> Ensured:
        self.asked.append((spec, identity, session))
        if self.error is not None:
            raise self.error
        return Ensured(spec, self.action, 1_900_000_000.0)  # type: ignore[arg-type]


@pytest.fixture
async def conn() -> AsyncIterator[Connection]:
    c = Connection(ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth={"token": "t"}))
    yield c
    await c.close()


def flow(
    conn: Connection,
    path: str = "/api/v1/namespaces/pr-1/pods",
    role: str | None = "view",
    scope: str | None = "namespace",
) -> Flow:
    request = make_mocked_request("GET", path, headers={"Kubectl-Session": "ks-1"})
    f = Flow(request=request, connection=conn, method="GET", raw_path=path, query_string="", headers=CIMultiDict())
    f.identity = ALICE
    f.info = parse_request_info("GET", path, "")
    f.decision = Decision("allow", (), "allowed", role=role, role_scope=scope)  # type: ignore[arg-type]
    f.session_id = "ks-1"  # as the session stage decided it
    return f


async def test_no_role_means_no_binding(conn: Connection) -> None:
    fake = FakeBindings()
    await UpstreamAccessStage(RoleGrants({"dev": fake})).on_request(flow(conn, role=None, scope=None))  # type: ignore[dict-item]
    assert fake.asked == []


async def test_a_namespaced_role_binds_the_impersonated_user_in_the_request_namespace(conn: Connection) -> None:
    fake = FakeBindings()
    f = flow(conn)
    await UpstreamAccessStage(RoleGrants({"dev": fake})).on_request(f)  # type: ignore[dict-item]
    [(spec, identity, session)] = fake.asked
    assert (spec.kind, spec.namespace, spec.user, spec.role) == ("RoleBinding", "pr-1", "idp:alice", "view")
    assert (identity, session) == ("idp:alice", "ks-1")


async def test_a_cluster_wide_rule_binds_cluster_wide_and_a_namespaced_one_never_does(conn: Connection) -> None:
    fake = FakeBindings()
    stage = UpstreamAccessStage(RoleGrants({"dev": fake}))  # type: ignore[dict-item]
    await stage.on_request(flow(conn, "/api/v1/namespaces", scope="cluster"))
    await stage.on_request(flow(conn, "/api/v1/namespaces", scope="namespace"))
    assert [s.kind for s, _, _ in fake.asked] == ["ClusterRoleBinding"]


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (BindingError(403, "lacks the permission bind on clusterroles", "Forbidden"), 403, "lacks the permission bind"),
        (CredentialError("token file /x is empty"), 502, "could not get its own credentials for connection dev"),
    ],
)
async def test_a_binding_that_cannot_be_made_refuses_the_request(
    conn: Connection, error: Exception, code: int, text: str
) -> None:
    with pytest.raises(Refused) as caught:
        await UpstreamAccessStage(RoleGrants({"dev": FakeBindings(error=error)})).on_request(flow(conn))  # type: ignore[dict-item]
    assert caught.value.code == code and text in caught.value.message


async def test_a_role_bound_cluster_wide_that_is_a_namespaced_role_is_refused(conn: Connection) -> None:
    with pytest.raises(Refused) as caught:
        await UpstreamAccessStage(RoleGrants({"dev": FakeBindings()})).on_request(  # type: ignore[dict-item]
            flow(conn, role="Role/deployer", scope="cluster")
        )
    assert caught.value.code == 403 and "a Role exists in one namespace only" in caught.value.message


async def test_eks_session_name_mode_binds_the_user_eks_maps_the_session_to() -> None:
    conn = Connection(
        ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth=EKS_AUTH, identity_mode="eks-session-name")
    )
    try:
        fake = FakeBindings()
        await UpstreamAccessStage(RoleGrants({"dev": fake})).on_request(flow(conn))  # type: ignore[dict-item]
    finally:
        await conn.close()
    [(spec, identity, _)] = fake.asked
    assert spec.user == f"kubegate:{role_session_name(ALICE)}" and identity == "idp:alice"


async def test_made_and_renewed_bindings_are_recorded_in_the_session(conn: Connection, tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'kubegate.db'}")
    recorder = Recorder(store)
    await recorder.start()
    try:
        f, again = flow(conn), flow(conn)
        session = f.session_id = again.session_id = recorder.session_for(f)
        stage = UpstreamAccessStage(RoleGrants({"dev": FakeBindings()}, recorder))  # type: ignore[dict-item]
        await stage.on_request(f)
        await UpstreamAccessStage(RoleGrants({"dev": FakeBindings("cached")}, recorder)).on_request(again)  # type: ignore[dict-item]
        await recorder.flush()
        events, _ = await list_events(store, session, limit=50)
    finally:
        await recorder.close()
        await store.close()
    [binding] = [e for e in events if e["type"] == "binding"]
    assert binding["data"]["action"] == "created" and binding["data"]["role"] == "view"
    assert binding["data"]["kind"] == "RoleBinding" and binding["data"]["user"] == "idp:alice"
