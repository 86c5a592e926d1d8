"""EKS upstream credentials: kubegate's AWS identity, the IAM role it assumes, and the token EKS accepts.

The token is the one aws-iam-authenticator and `aws eks get-token` build: a presigned STS
GetCallerIdentity URL whose signed `x-k8s-aws-id` header ties it to one cluster. EKS calls that URL and
maps the ARN it gets back (`assumed-role/<role>/<session name>`) to a Kubernetes user through an access
entry, which is why the RoleSessionName can carry the caller's identity (`eks-session-name` mode).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import botocore.session
import orjson
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials as BotoCredentials
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.loaders import create_loader
from botocore.regions import EndpointResolver

from kubegate.identity.model import Identity
from kubegate.upstream.config import EKSAuth
from kubegate.upstream.credentials import CredentialError, Credentials

TOKEN_PREFIX = "k8s-aws-v1."
PRESIGN_SECONDS = 60  # X-Amz-Expires of the presigned URL, as aws-iam-authenticator sets it
TOKEN_REUSE_SECONDS = 14 * 60  # EKS accepts a token for 15 minutes after X-Amz-Date; renew a minute early
CREDENTIAL_MARGIN_SECONDS = 5 * 60  # renew assumed-role credentials this long before they expire
KUBEGATE_SESSION_NAME = "kubegate"  # kubegate's own session; never produced by role_session_name
IDENTITY_MODES = ("impersonation", "eks-session-name")

_HASH_BYTES = 10  # 80 bits, 16 base32 characters: collisions are out of reach for any real population
# A subset of STS's [\w+=,.@-]: `@` is rewritten to `-` by EKS's {{SessionName}}, so leaving it (and the
# other punctuation) out keeps the Kubernetes user name equal to the session name.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_REGION = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")
_BOTO_CONFIG = BotoConfig(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
_HINTS = {
    "AccessDenied": "check that the role's trust policy lets kubegate's AWS identity assume it "
    "(with the configured ExternalId) and that its own policy allows sts:AssumeRole",
    "ExpiredToken": "kubegate's own AWS credentials have expired: check its IRSA token file, "
    "EKS Pod Identity agent or instance profile, and the host clock",
    "InvalidClientTokenId": "kubegate's own AWS credentials are not valid: check the AWS_* environment, "
    "profile, IRSA or EKS Pod Identity setup",
    "SignatureDoesNotMatch": "kubegate's AWS secret key does not match its access key id",
    "NoCredentials": "kubegate found no AWS credentials: give its pod an IAM role (IRSA or EKS Pod "
    "Identity), an instance profile, a profile or AWS_* environment variables",
    "RegionDisabledException": "activate STS for this region in the account's IAM settings",
}

T = TypeVar("T")


class AWSCredentialError(CredentialError):
    """An STS or AWS credential-chain failure; `code` is AWS's error code (AccessDenied, ExpiredToken...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def role_session_name(identity: Identity) -> str:
    """The RoleSessionName that carries `identity` to EKS in eks-session-name mode.

    A readable part of the subject (for CloudTrail and audit logs) plus a hash of everything that makes
    the identity distinct (issuer, subject, username, groups, selected claims; not the token's expiry),
    so two identities never share a name however their subjects are truncated or sanitized. Only
    [A-Za-z0-9_.-], at most 64 characters, and never equal to kubegate's own session name.
    """
    canonical = orjson.dumps(
        {
            "issuer": identity.issuer,
            "subject": identity.subject,
            "username": identity.username,
            "groups": sorted(set(identity.groups)),
            "claims": {str(k): str(v) for k, v in identity.claims.items()},
        },
        option=orjson.OPT_SORT_KEYS,
    )
    digest = base64.b32encode(hashlib.sha256(canonical).digest()[:_HASH_BYTES]).decode().lower()
    readable = _UNSAFE.sub("-", identity.subject)[: 64 - 1 - len(digest)].strip("-.")
    return f"{readable}.{digest}" if readable else digest


@functools.cache
def regional_sts_endpoint(region: str) -> str:
    """https://sts.<region>.<partition DNS suffix>, from botocore's endpoint data (China, GovCloud...)."""
    resolver = EndpointResolver(create_loader().load_data("endpoints"))
    found = resolver.construct_endpoint("sts", region)
    host = found["hostname"] if found else f"sts.{region}.amazonaws.com"
    return f"https://{host}"


def build_eks_token(
    credentials: BotoCredentials | ReadOnlyCredentials, cluster: str, region: str, *, endpoint_url: str | None = None
) -> str:
    """An EKS bearer token: the presigned GetCallerIdentity URL, `k8s-aws-v1.` + unpadded base64url.

    `x-k8s-aws-id` is a signed header, so the token cannot be replayed against another cluster. Blocking
    only on first use of a region (botocore's endpoint data); otherwise pure computation.
    """
    base = (endpoint_url or regional_sts_endpoint(region)).rstrip("/")
    request = AWSRequest(
        method="GET", url=f"{base}/?Action=GetCallerIdentity&Version=2011-06-15", headers={"x-k8s-aws-id": cluster}
    )
    SigV4QueryAuth(credentials, "sts", region, expires=PRESIGN_SECONDS).add_auth(request)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(request.url.encode()).decode().rstrip("=")


@dataclass
class _Slot:
    """Cached credentials and token of one session name; the lock serializes their renewal."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    credentials: ReadOnlyCredentials | None = None
    credentials_renew_at: float = 0.0
    token: str = ""
    token_renew_at: float = 0.0


class EKSCredentials(Credentials):
    """Bearer tokens for one EKS cluster, from the standard AWS credential chain and an assumed role.

    Base credentials come from botocore's chain (environment, profile, IRSA web identity, EKS Pod
    Identity, instance metadata). With `role_arn` kubegate assumes that role through the regional STS
    endpoint; in eks-session-name mode once per identity, with role_session_name(identity) as
    RoleSessionName. `authorization(None)` is always kubegate's own session ("kubegate"), the one to use
    for kubegate's own calls such as managing temporary bindings.
    """

    def __init__(
        self,
        auth: EKSAuth,
        identity_mode: str = "impersonation",
        *,
        sts_endpoint_url: str | None = None,
        session: botocore.session.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if identity_mode not in IDENTITY_MODES:
            raise CredentialError(f"identity_mode must be one of {', '.join(IDENTITY_MODES)}, not {identity_mode!r}")
        if not _REGION.fullmatch(auth.region):
            raise CredentialError(f"EKS region {auth.region!r} is not an AWS region name such as eu-west-1")
        if identity_mode == "eks-session-name" and not auth.role_arn:
            raise CredentialError(
                "identity_mode eks-session-name needs auth.eks.role_arn: the identity "
                "travels as the RoleSessionName of that role"
            )
        self._auth = auth
        self._mode = identity_mode
        self._sts_endpoint_url = sts_endpoint_url
        self._session = session or botocore.session.get_session()
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._client: BaseClient | None = None
        self._client_lock = asyncio.Lock()

    def session_name(self, identity: Identity | None) -> str:
        """The RoleSessionName requests for `identity` run under (kubegate's own for None)."""
        if self._mode == "eks-session-name" and identity is not None:
            return role_session_name(identity)
        return KUBEGATE_SESSION_NAME

    async def authorization(self, identity: Identity | None) -> str:
        name = self.session_name(identity)
        slot = self._slots.setdefault(name, _Slot())
        async with slot.lock:
            now = self._clock()
            if not slot.token or now >= slot.token_renew_at:
                credentials, credentials_renew_at = await self._credentials(slot, name, now)
                token = await self._aws(
                    "sign the EKS token", build_eks_token, credentials, self._auth.cluster, self._auth.region
                )
                slot.token = f"Bearer {token}"
                slot.token_renew_at = min(now + TOKEN_REUSE_SECONDS, credentials_renew_at)
            value = slot.token
        self._prune(now)
        return value

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _credentials(self, slot: _Slot, name: str, now: float) -> tuple[ReadOnlyCredentials, float]:
        """Credentials to sign with, and when to stop using them."""
        if not self._auth.role_arn:
            # botocore refreshes chain credentials itself, well before their expiry.
            return await self._aws("find AWS credentials", self._base_credentials), math.inf
        if slot.credentials is None or now >= slot.credentials_renew_at:
            client = await self._sts()
            credentials, expires = await self._aws(
                f"sts:AssumeRole on {self._auth.role_arn}", self._assume_role, client, name
            )
            slot.credentials, slot.credentials_renew_at = credentials, expires - CREDENTIAL_MARGIN_SECONDS
        return slot.credentials, slot.credentials_renew_at

    def _base_credentials(self) -> ReadOnlyCredentials:
        found = self._session.get_credentials()
        if found is None:
            raise NoCredentialsError()
        return found.get_frozen_credentials()

    def _assume_role(self, client: BaseClient, name: str) -> tuple[ReadOnlyCredentials, float]:
        params = {"RoleArn": self._auth.role_arn, "RoleSessionName": name}
        if self._auth.external_id:
            params["ExternalId"] = self._auth.external_id
        answer = client.assume_role(**params)["Credentials"]
        credentials = ReadOnlyCredentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
        return credentials, answer["Expiration"].timestamp()

    async def _sts(self) -> BaseClient:
        async with self._client_lock:
            if self._client is None:
                self._client = await self._aws("create the STS client", self._new_sts_client)
            return self._client

    def _new_sts_client(self) -> BaseClient:
        endpoint = self._sts_endpoint_url or regional_sts_endpoint(self._auth.region)
        return self._session.create_client(
            "sts", region_name=self._auth.region, endpoint_url=endpoint, config=_BOTO_CONFIG
        )

    async def _aws(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking botocore call in a thread; its failures become AWSCredentialError."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise self._error(action, error.get("Code") or "Unknown", error.get("Message") or "") from exc
        except NoCredentialsError as exc:
            raise self._error(action, "NoCredentials", str(exc)) from exc
        except BotoCoreError as exc:
            raise self._error(action, type(exc).__name__, str(exc)) from exc

    def _error(self, action: str, code: str, detail: str) -> AWSCredentialError:
        for secret in self._secrets():
            detail = detail.replace(secret, "[redacted]")
        detail = detail.strip().rstrip(".")[:300]
        hint = _HINTS.get(code)
        message = f"EKS cluster {self._auth.cluster}: {action} failed ({code})"
        message += f": {detail}" if detail else ""
        message += f"; {hint}" if hint else ""
        return AWSCredentialError(message, code)

    def _secrets(self) -> list[str]:
        """Values an AWS message could echo back that must never reach a client or a log."""
        found = [self._auth.external_id or ""]
        for slot in self._slots.values():
            if slot.credentials is not None:
                found += [slot.credentials.secret_key, slot.credentials.token or ""]
        return [s for s in found if s]

    def _prune(self, now: float) -> None:
        """Forget sessions whose token and credentials are both stale (identities that went away)."""
        for name, slot in list(self._slots.items()):
            if now >= slot.token_renew_at and now >= slot.credentials_renew_at and not slot.lock.locked():
                del self._slots[name]
