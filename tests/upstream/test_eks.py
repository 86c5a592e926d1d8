from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import botocore.session
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sts.models import AssumedRole, sts_backends
from yarl import URL

import kubegate.upstream.eks as eks
from kubegate.identity.model import Identity
from kubegate.upstream.config import EKSAuth
from kubegate.upstream.credentials import CredentialError
from kubegate.upstream.eks import (
    CREDENTIAL_MARGIN_SECONDS,
    KUBEGATE_SESSION_NAME,
    TOKEN_REUSE_SECONDS,
    AWSCredentialError,
    EKSCredentials,
    build_eks_token,
    regional_sts_endpoint,
    role_session_name,
)

ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/kubegate-dev"
OTHER_ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/someone-else"
REGION = "eu-west-1"
STS_HOST = f"sts.{REGION}.amazonaws.com"
ALICE = Identity(
    issuer="https://idp.example",
    subject="alice@example.com",
    username="https://idp.example#alice@example.com",
    groups=("dev",),
)
BOB = Identity(issuer="https://idp.example", subject="bob", username="https://idp.example#bob")
STS_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def assumed_roles() -> list[AssumedRole]:
    return list(sts_backends[DEFAULT_ACCOUNT_ID]["aws"].assumed_roles)


def decode(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    assert scheme == "Bearer"
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def recompute_signature(url: str, cluster: str, credentials: ReadOnlyCredentials) -> str:
    """What an STS verifier computes: the canonical request of the URL as sent, at its own X-Amz-Date."""
    params = query(url)
    scope = params["X-Amz-Credential"].split("/")
    unsigned = url[: url.index("&X-Amz-Signature=")]
    request = AWSRequest(method="GET", url=unsigned, headers={"x-k8s-aws-id": cluster})
    request.context["timestamp"] = params["X-Amz-Date"]
    auth = SigV4QueryAuth(credentials, scope[3], scope[2], expires=int(params["X-Amz-Expires"]))
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)


def secret_of(url: str) -> ReadOnlyCredentials:
    """The assumed-role credentials moto issued for the access key a token was signed with."""
    access_key = query(url)["X-Amz-Credential"].split("/")[0]
    role = sts_backends[DEFAULT_ACCOUNT_ID]["aws"].get_assumed_role_from_access_key(access_key)
    assert role is not None
    return ReadOnlyCredentials(role.access_key_id, role.secret_access_key, role.session_token)


async def test_assumes_the_role_as_kubegate_with_the_external_id(sts_url: str) -> None:
    creds = EKSCredentials(
        EKSAuth(cluster="dev", region=REGION, role_arn=ROLE, external_id="ext-4711"), sts_endpoint_url=sts_url
    )
    value = await creds.authorization(ALICE)
    [role] = assumed_roles()
    assert (role.role_arn, role.session_name, role.external_id) == (ROLE, "kubegate", "ext-4711")
    assert query(decode(value))["X-Amz-Credential"].startswith(f"{role.access_key_id}/")
    await creds.close()


async def test_token_is_a_presigned_get_caller_identity_on_the_regional_endpoint(sts_url: str) -> None:
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), sts_endpoint_url=sts_url)
    url = decode(await creds.authorization(None))
    parts, params = urlsplit(url), query(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", STS_HOST, "/")
    assert params["Action"] == "GetCallerIdentity"
    assert params["Version"] == "2011-06-15"
    assert params["X-Amz-Expires"] == "60"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-SignedHeaders"].split(";") == ["host", "x-k8s-aws-id"]
    assert params["X-Amz-Credential"].split("/")[2:] == [REGION, "sts", "aws4_request"]
    assert params["X-Amz-Security-Token"] == secret_of(url).token
    await creds.close()


async def test_token_signature_verifies_with_the_assumed_role_credentials(sts_url: str) -> None:
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), sts_endpoint_url=sts_url)
    url = decode(await creds.authorization(None))
    secret = secret_of(url)
    assert recompute_signature(url, "dev", secret) == query(url)["X-Amz-Signature"]
    assert recompute_signature(url, "prod", secret) != query(url)["X-Amz-Signature"]
    await creds.close()


def test_build_eks_token_signature_and_partition_endpoint() -> None:
    signer = ReadOnlyCredentials("AKIAEXAMPLEKEY000001", "example-secret", None)
    url = decode("Bearer " + build_eks_token(signer, "cn-cluster", "cn-north-1"))
    assert urlsplit(url).netloc == "sts.cn-north-1.amazonaws.com.cn"
    assert "X-Amz-Security-Token" not in query(url)
    assert recompute_signature(url, "cn-cluster", signer) == query(url)["X-Amz-Signature"]
    wrong = ReadOnlyCredentials("AKIAEXAMPLEKEY000001", "another-secret", None)
    assert recompute_signature(url, "cn-cluster", wrong) != query(url)["X-Amz-Signature"]


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://sts.us-east-1.amazonaws.com"),  # regional, not the global sts.amazonaws.com
        ("eu-west-1", "https://sts.eu-west-1.amazonaws.com"),
        ("us-gov-west-1", "https://sts.us-gov-west-1.amazonaws.com"),
        ("cn-northwest-1", "https://sts.cn-northwest-1.amazonaws.com.cn"),
    ],
)
def test_sts_endpoints_are_regional(region: str, endpoint: str) -> None:
    assert regional_sts_endpoint(region) == endpoint


async def test_presigned_url_answers_get_caller_identity_for_the_assumed_role(sts_url: str, moto_sts_only: str) -> None:
    """What EKS does with a token: GET the URL with the x-k8s-aws-id header. Unlike STS, moto ignores
    query-string credentials, so the caller is then identified by the access key the URL was signed with."""
    creds = EKSCredentials(
        EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), "eks-session-name", sts_endpoint_url=sts_url
    )
    url = decode(await creds.authorization(ALICE))
    parts = urlsplit(url)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            URL(f"{moto_sts_only}{parts.path}?{parts.query}", encoded=True),
            headers={"Host": parts.netloc, "x-k8s-aws-id": "dev"},
        ) as response,
    ):
        body = await response.text()
    assert response.status == 200
    assert "<GetCallerIdentityResult>" in body
    secret = secret_of(url)
    sts = botocore.session.get_session().create_client(
        "sts",
        region_name=REGION,
        endpoint_url=sts_url,
        aws_access_key_id=secret.access_key,
        aws_secret_access_key=secret.secret_key,
        aws_session_token=secret.token,
    )
    arn = sts.get_caller_identity()["Arn"]
    assert arn == f"arn:aws:sts::{DEFAULT_ACCOUNT_ID}:assumed-role/kubegate-dev/{role_session_name(ALICE)}"
    await creds.close()


async def test_session_name_mode_assumes_once_per_identity(sts_url: str) -> None:
    creds = EKSCredentials(
        EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), "eks-session-name", sts_endpoint_url=sts_url
    )
    alice = await creds.authorization(ALICE)
    bob = await creds.authorization(BOB)
    assert await creds.authorization(ALICE) == alice
    own = await creds.authorization(None)
    assert len({alice, bob, own}) == 3
    names = [r.session_name for r in assumed_roles()]
    assert names == [role_session_name(ALICE), role_session_name(BOB), KUBEGATE_SESSION_NAME]
    await creds.close()


async def test_impersonation_mode_ignores_the_identity(sts_url: str) -> None:
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), sts_endpoint_url=sts_url)
    assert await creds.authorization(ALICE) == await creds.authorization(BOB)
    assert [r.session_name for r in assumed_roles()] == [KUBEGATE_SESSION_NAME]
    await creds.close()


async def test_tokens_and_credentials_are_cached_and_renewed_before_expiry(
    sts_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[str] = []

    def counting(*args: object, **kwargs: object) -> str:
        token = build_eks_token(*args, **kwargs)  # type: ignore[arg-type]
        signed.append(token)
        return token

    monkeypatch.setattr(eks, "build_eks_token", counting)
    clock = Clock()
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), sts_endpoint_url=sts_url, clock=clock)
    first = await creds.authorization(None)
    assert await creds.authorization(None) == first
    assert (len(assumed_roles()), len(signed)) == (1, 1)

    clock.now += TOKEN_REUSE_SECONDS - 1
    assert await creds.authorization(None) == first
    clock.now += 1
    await creds.authorization(None)
    assert (len(assumed_roles()), len(signed)) == (1, 2)

    expires = assumed_roles()[0].expiration.timestamp()
    clock.now = expires - CREDENTIAL_MARGIN_SECONDS
    renewed = await creds.authorization(None)
    assert (len(assumed_roles()), len(signed)) == (2, 3)
    assert query(decode(renewed))["X-Amz-Credential"].startswith(assumed_roles()[1].access_key_id)
    await creds.close()


async def test_token_never_outlives_the_credentials_it_was_signed_with(sts_url: str) -> None:
    clock = Clock()
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), sts_endpoint_url=sts_url, clock=clock)
    await creds.authorization(None)
    expires = assumed_roles()[0].expiration.timestamp()
    clock.now = expires - CREDENTIAL_MARGIN_SECONDS - TOKEN_REUSE_SECONDS + 60
    await creds.authorization(None)
    clock.now = expires - CREDENTIAL_MARGIN_SECONDS
    await creds.authorization(None)
    assert len(assumed_roles()) == 2
    await creds.close()


async def test_without_a_role_the_token_is_signed_with_the_chain_credentials(
    sts_url: str, aws_env: ReadOnlyCredentials
) -> None:
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION), sts_endpoint_url=sts_url)
    url = decode(await creds.authorization(ALICE))
    assert query(url)["X-Amz-Credential"].startswith(f"{aws_env.access_key}/")
    assert recompute_signature(url, "dev", aws_env) == query(url)["X-Amz-Signature"]
    assert assumed_roles() == []
    await creds.close()


@pytest.mark.parametrize("role_arn", [ROLE, None])
async def test_no_credentials_is_a_credential_error(
    sts_url: str, monkeypatch: pytest.MonkeyPatch, role_arn: str | None
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=role_arn), sts_endpoint_url=sts_url)
    with pytest.raises(AWSCredentialError) as caught:
        await creds.authorization(None)
    assert caught.value.code == "NoCredentials"
    assert "(NoCredentials)" in str(caught.value)
    assert "IRSA" in str(caught.value)
    await creds.close()


@pytest.fixture
def iam_user(sts_url: str, enforce_iam: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> str:
    """An IAM user that may assume ROLE only; moto then checks every request against IAM."""
    iam = botocore.session.get_session().create_client("iam", region_name="us-east-1", endpoint_url=sts_url)
    iam.create_user(UserName="kubegate")
    key = iam.create_access_key(UserName="kubegate")["AccessKey"]
    iam.put_user_policy(
        UserName="kubegate",
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE}]}
        ),
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    enforce_iam()
    return str(key["SecretAccessKey"])


async def test_access_denied_carries_the_code_and_no_secret(sts_url: str, iam_user: str) -> None:
    allowed = EKSCredentials(
        EKSAuth(cluster="dev", region=REGION, role_arn=ROLE, external_id="ext-4711"), sts_endpoint_url=sts_url
    )
    assert (await allowed.authorization(None)).startswith("Bearer k8s-aws-v1.")
    denied = EKSCredentials(
        EKSAuth(cluster="dev", region=REGION, role_arn=OTHER_ROLE, external_id="ext-4711"), sts_endpoint_url=sts_url
    )
    with pytest.raises(AWSCredentialError) as caught:
        await denied.authorization(None)
    message = str(caught.value)
    assert caught.value.code == "AccessDenied"
    assert f"sts:AssumeRole on {OTHER_ROLE} failed (AccessDenied)" in message
    assert "trust policy" in message
    assert iam_user not in message
    assert "ext-4711" not in message
    await allowed.close()
    await denied.close()


async def test_unknown_access_key_is_invalid_client_token_id(
    sts_url: str, aws_env: ReadOnlyCredentials, enforce_iam: Callable[[], None]
) -> None:
    enforce_iam()
    creds = EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), sts_endpoint_url=sts_url)
    with pytest.raises(AWSCredentialError) as caught:
        await creds.authorization(None)
    assert caught.value.code == "InvalidClientTokenId"
    assert aws_env.secret_key not in str(caught.value)
    await creds.close()


def test_configuration_mistakes_are_refused_up_front() -> None:
    with pytest.raises(CredentialError, match=r"needs auth\.eks\.role_arn"):
        EKSCredentials(EKSAuth(cluster="dev", region=REGION), "eks-session-name")
    with pytest.raises(CredentialError, match="not an AWS region"):
        EKSCredentials(EKSAuth(cluster="dev", region="evil.example/x#", role_arn=ROLE))
    with pytest.raises(CredentialError, match="identity_mode"):
        EKSCredentials(EKSAuth(cluster="dev", region=REGION, role_arn=ROLE), "both")


_text = st.text(min_size=0, max_size=120)
identities = st.builds(
    Identity,
    issuer=st.sampled_from(["https://token.actions.githubusercontent.com", "https://idp.example"]),
    subject=_text,
    username=_text,
    groups=st.lists(st.text(max_size=20), max_size=4).map(tuple),
    claims=st.dictionaries(st.sampled_from(["repository", "run_id", "actor"]), _text, max_size=3),
)


def _essence(identity: Identity) -> tuple[object, ...]:
    return (
        identity.issuer,
        identity.subject,
        identity.username,
        frozenset(identity.groups),
        tuple(sorted(identity.claims.items())),
    )


@settings(max_examples=300)
@given(identities)
def test_role_session_name_is_a_valid_stable_session_name(identity: Identity) -> None:
    name = role_session_name(identity)
    assert STS_SESSION_NAME.fullmatch(name)
    assert "@" not in name
    assert name != KUBEGATE_SESSION_NAME
    assert (
        role_session_name(
            Identity(
                identity.issuer,
                identity.subject,
                identity.username,
                tuple(reversed(identity.groups)),
                dict(identity.claims),
                expires_at=identity.expires_at + 3600,
            )
        )
        == name
    )


@settings(max_examples=300)
@given(identities, identities)
def test_distinct_identities_get_distinct_session_names(a: Identity, b: Identity) -> None:
    assert (role_session_name(a) == role_session_name(b)) == (_essence(a) == _essence(b))


def test_role_session_name_keeps_a_readable_prefix() -> None:
    name = role_session_name(
        Identity(
            issuer="https://token.actions.githubusercontent.com",
            subject="repo:acme/shop:ref:refs/heads/main",
            username="x",
        )
    )
    assert name.startswith("repo-acme-shop-ref-refs-heads-main.")
    long = role_session_name(Identity(issuer="i", subject="a" * 200, username="u"))
    same_prefix = role_session_name(Identity(issuer="i", subject="a" * 199 + "b", username="u"))
    assert len(long) == 64
    assert long != same_prefix
