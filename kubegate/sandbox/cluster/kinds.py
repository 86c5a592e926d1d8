"""The resource types the sandbox serves: one registry that discovery, OpenAPI, routing and RBAC all read."""

from __future__ import annotations

from dataclasses import dataclass, field

CRUD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    name: str
    verbs: tuple[str, ...]
    kind: str = ""  # response kind when it differs from the parent's
    group: str | None = None
    version: str = "v1"


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    resource: str
    kind: str
    namespaced: bool
    singular: str
    verbs: tuple[str, ...] = CRUD_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    create_on_update: bool = False
    name_rule: str = "subdomain"  # "subdomain" (DNS-1123 subdomain), "label" (DNS-1123 label) or "path"
    stored: bool = True  # False for review kinds that are only ever created and answered
    returns_deleted: bool = False  # DELETE answers with the object (else with a Success Status)
    list_kind: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        """The path segment after /api or /apis: `v1` or `apps/v1`."""
        return self.api_version

    @property
    def qualified(self) -> str:
        """`pods` or `deployments.apps`, as kube-apiserver names a resource in its messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def qualified_kind(self) -> str:
        """`Pod` or `Deployment.apps`, as kube-apiserver names a kind in Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def key(self) -> str:
        return f"{self.group}/{self.resource}"

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"


_STATUS = Subresource("status", STATUS_VERBS)

KINDS: tuple[Kind, ...] = (
    Kind(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        "namespace",
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
        short_names=("ns",),
        subresources=(_STATUS,),
        name_rule="label",
        returns_deleted=True,
    ),
    Kind(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        "pod",
        short_names=("po",),
        categories=("all",),
        subresources=(
            Subresource("log", ("get",)),
            _STATUS,
            Subresource("exec", ("create", "get")),
            Subresource("attach", ("create", "get")),
            Subresource("portforward", ("create", "get")),
        ),
        returns_deleted=True,
    ),
    Kind("", "v1", "secrets", "Secret", True, "secret"),
    Kind("", "v1", "configmaps", "ConfigMap", True, "configmap", short_names=("cm",)),
    Kind(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        True,
        "serviceaccount",
        short_names=("sa",),
        subresources=(Subresource("token", ("create",), kind="TokenRequest", group="authentication.k8s.io"),),
    ),
    Kind("", "v1", "events", "Event", True, "event", short_names=("ev",), create_on_update=True, name_rule="path"),
    Kind(
        "",
        "v1",
        "services",
        "Service",
        True,
        "service",
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
        short_names=("svc",),
        categories=("all",),
        subresources=(_STATUS,),
        name_rule="label",
        returns_deleted=True,
    ),
    Kind(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        "deployment",
        short_names=("deploy",),
        categories=("all",),
        subresources=(Subresource("scale", STATUS_VERBS, kind="Scale", group="autoscaling"), _STATUS),
    ),
    Kind("rbac.authorization.k8s.io", "v1", "roles", "Role", True, "role", create_on_update=True, name_rule="path"),
    Kind(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        True,
        "rolebinding",
        create_on_update=True,
        name_rule="path",
    ),
    Kind(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        False,
        "clusterrole",
        create_on_update=True,
        name_rule="path",
    ),
    Kind(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        "clusterrolebinding",
        create_on_update=True,
        name_rule="path",
    ),
    Kind(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        "selfsubjectaccessreview",
        verbs=("create",),
        stored=False,
    ),
    Kind(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        "selfsubjectrulesreview",
        verbs=("create",),
        stored=False,
    ),
    Kind(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        False,
        "selfsubjectreview",
        verbs=("create",),
        stored=False,
    ),
)


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in registry order, core first."""
    seen: list[tuple[str, str]] = []
    for k in KINDS:
        if (k.group, k.version) not in seen:
            seen.append((k.group, k.version))
    return seen


def kinds_in(group: str, version: str) -> list[Kind]:
    return [k for k in KINDS if k.group == group and k.version == version]


def find(group: str, version: str, resource: str) -> Kind | None:
    return next((k for k in KINDS if k.group == group and k.version == version and k.resource == resource), None)


def by_kind(api_version: str, kind: str) -> Kind | None:
    return next((k for k in KINDS if k.api_version == api_version and k.kind == kind), None)
