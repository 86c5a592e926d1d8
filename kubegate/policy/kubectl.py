"""Turn a kubectl command line into the request kubectl would send, for `kubegate policy explain`.

The request is built as a method, path and query and then read by parse_request_info, so explain
sees exactly what the gateway would. Where one kubectl command sends several requests, the one that
policy usually cares about is chosen: `apply`/`create -f` is the create (an apply to an existing
object is a patch: use --verb patch), `edit` the patch, `delete --all`/`-l` a deletecollection,
`cp` the exec of tar, `debug POD` the patch of pods/ephemeralcontainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import yaml

from kubegate.kube.requestinfo import RequestInfo, parse_request_info


class KubectlParseError(ValueError):
    """A command line explain cannot turn into a request; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> ResourceType:
    return ResourceType(group, version, plural, namespaced, kind)


_TYPES: dict[tuple[str, ...], ResourceType] = {
    ("po", "pod", "pods"): _rt("", "v1", "pods", "Pod"),
    ("svc", "service", "services"): _rt("", "v1", "services", "Service"),
    ("cm", "configmap", "configmaps"): _rt("", "v1", "configmaps", "ConfigMap"),
    ("secret", "secrets"): _rt("", "v1", "secrets", "Secret"),
    ("ns", "namespace", "namespaces"): _rt("", "v1", "namespaces", "Namespace", namespaced=False),
    ("no", "node", "nodes"): _rt("", "v1", "nodes", "Node", namespaced=False),
    ("sa", "serviceaccount", "serviceaccounts"): _rt("", "v1", "serviceaccounts", "ServiceAccount"),
    ("pvc", "persistentvolumeclaim", "persistentvolumeclaims"): _rt(
        "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"
    ),
    ("pv", "persistentvolume", "persistentvolumes"): _rt(
        "", "v1", "persistentvolumes", "PersistentVolume", namespaced=False
    ),
    ("ev", "event", "events"): _rt("", "v1", "events", "Event"),
    ("ep", "endpoints"): _rt("", "v1", "endpoints", "Endpoints"),
    ("rc", "replicationcontroller", "replicationcontrollers"): _rt(
        "", "v1", "replicationcontrollers", "ReplicationController"
    ),
    ("quota", "resourcequota", "resourcequotas"): _rt("", "v1", "resourcequotas", "ResourceQuota"),
    ("limits", "limitrange", "limitranges"): _rt("", "v1", "limitranges", "LimitRange"),
    ("deploy", "deployment", "deployments"): _rt("apps", "v1", "deployments", "Deployment"),
    ("sts", "statefulset", "statefulsets"): _rt("apps", "v1", "statefulsets", "StatefulSet"),
    ("ds", "daemonset", "daemonsets"): _rt("apps", "v1", "daemonsets", "DaemonSet"),
    ("rs", "replicaset", "replicasets"): _rt("apps", "v1", "replicasets", "ReplicaSet"),
    ("job", "jobs"): _rt("batch", "v1", "jobs", "Job"),
    ("cj", "cronjob", "cronjobs"): _rt("batch", "v1", "cronjobs", "CronJob"),
    ("ing", "ingress", "ingresses"): _rt("networking.k8s.io", "v1", "ingresses", "Ingress"),
    ("netpol", "networkpolicy", "networkpolicies"): _rt("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    ("role", "roles"): _rt("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ("rolebinding", "rolebindings"): _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ("clusterrole", "clusterroles"): _rt(
        "rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False
    ),
    ("clusterrolebinding", "clusterrolebindings"): _rt(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
    ),
    ("pdb", "poddisruptionbudget", "poddisruptionbudgets"): _rt(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"
    ),
    ("hpa", "horizontalpodautoscaler", "horizontalpodautoscalers"): _rt(
        "autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"
    ),
    ("crd", "crds", "customresourcedefinition", "customresourcedefinitions"): _rt(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
    ),
    ("sc", "storageclass", "storageclasses"): _rt(
        "storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False
    ),
    ("accessentry", "accessentries"): _rt("eks.services.k8s.aws", "v1alpha1", "accessentries", "AccessEntry"),
}
RESOURCE_TYPES = {name: rt for names, rt in _TYPES.items() for name in names}
KINDS = {rt.kind: rt for rt in _TYPES.values()}

# Flags that take a value (as the next argument unless written --flag=value).
_VALUE_FLAGS = frozenset(
    {
        "-n",
        "--namespace",
        "-o",
        "--output",
        "-l",
        "--selector",
        "-f",
        "--filename",
        "-c",
        "--container",
        "--field-selector",
        "-p",
        "--patch",
        "--type",
        "--image",
        "--replicas",
        "--target",
        "--raw",
        "--context",
        "--kubeconfig",
        "--cluster",
        "--user",
        "-s",
        "--server",
        "--token",
        "--as",
        "--as-group",
        "--timeout",
        "--sort-by",
        "--template",
        "--grace-period",
        "--since",
        "--tail",
        "--copy-to",
        "--profile",
        "--from-literal",
        "--from-file",
        "--clusterrole",
        "--role",
        "--serviceaccount",
        "--group",
        "--port",
        "--request-timeout",
        "-k",
        "--kustomize",
        "--subresource",
        "--current-replicas",
        "--resource-version",
    }
)


@dataclass(frozen=True, slots=True)
class KubectlRequest:
    """The request a command line stands for, and the object it sends (if any)."""

    info: RequestInfo
    obj: dict[str, Any] | None
    method: str
    target: str  # path?query, for display


@dataclass
class _Args:
    positional: list[str]
    flags: dict[str, list[str]]
    command: list[str]

    def flag(self, *names: str) -> str | None:
        for n in names:
            if n in self.flags:
                return self.flags[n][-1]
        return None

    def has(self, *names: str) -> bool:
        return any(n in self.flags for n in names)


def _split(argv: list[str]) -> _Args:
    positional: list[str] = []
    flags: dict[str, list[str]] = {}
    command: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            command = argv[i + 1 :]
            break
        if a.startswith("--") and "=" in a:
            k, _, v = a.partition("=")
            flags.setdefault(k, []).append(v)
        elif a in _VALUE_FLAGS:
            if i + 1 >= len(argv):
                raise KubectlParseError(f"{a} needs a value")
            flags.setdefault(a, []).append(argv[i + 1])
            i += 1
        elif a.startswith("-n") and len(a) > 2 and not a.startswith("--"):
            flags.setdefault("-n", []).append(a[2:])
        elif a.startswith("-") and len(a) > 1:
            flags.setdefault(a, []).append("")
        else:
            positional.append(a)
        i += 1
    return _Args(positional, flags, command)


def resolve_type(token: str) -> ResourceType:
    """A kubectl resource name (short, singular, plural, or plural.group) as its API type."""
    token = token.lower()
    if token in RESOURCE_TYPES:
        return RESOURCE_TYPES[token]
    plural, _, group = token.partition(".")
    known = RESOURCE_TYPES.get(plural)
    if known and (not group or group == known.group):
        return known
    return ResourceType(group, "v1", plural, True, "")


def api_path(rt: ResourceType, namespace: str, name: str = "", sub: str = "") -> str:
    base = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    ns = f"/namespaces/{quote(namespace, safe='')}" if rt.namespaced and namespace else ""
    tail = f"/{quote(name, safe='')}" if name else ""
    return f"{base}{ns}/{rt.plural}{tail}" + (f"/{sub}" if sub else "")


def _read_object(path: str) -> dict[str, Any]:
    if path == "-":
        raise KubectlParseError("explain cannot read -f - (stdin); give the file name")
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise KubectlParseError(f"cannot read {path}: {exc}") from exc
    if not docs or not isinstance(docs[0], dict):
        raise KubectlParseError(f"{path} holds no Kubernetes object")
    if docs[0].get("kind") == "List" or len(docs) > 1:
        raise KubectlParseError(f"{path} holds several objects; explain one object per file")
    return docs[0]


def _type_of_object(obj: dict[str, Any]) -> ResourceType:
    kind = str(obj.get("kind", ""))
    api_version = str(obj.get("apiVersion", "v1"))
    group, _, version = api_version.rpartition("/")
    known = KINDS.get(kind)
    if known and known.group == group:
        return known
    if not kind:
        raise KubectlParseError("the object has no kind")
    return ResourceType(group, version, kind.lower() + "s", True, kind)


def _name_arg(args: _Args, what: str, index: int = 0) -> tuple[ResourceType, str]:
    """TYPE NAME or TYPE/NAME starting at positional[index]."""
    pos = args.positional[index:]
    if pos and "/" in pos[0]:
        t, _, name = pos[0].partition("/")
        return resolve_type(t), name
    if len(pos) >= 2:
        return resolve_type(pos[0]), pos[1]
    raise KubectlParseError(f"kubectl {what} needs TYPE NAME or TYPE/NAME")


def _pod_arg(args: _Args, what: str) -> str:
    if not args.positional:
        raise KubectlParseError(f"kubectl {what} needs a pod name")
    return args.positional[0].partition("/")[2] if "/" in args.positional[0] else args.positional[0]


def parse_kubectl(argv: list[str], default_namespace: str = "default") -> KubectlRequest:
    """`kubectl delete ns prod` -> the RequestInfo (and object) the gateway would decide on."""
    if argv and Path(argv[0]).name in ("kubectl", "kubectl.exe", "k"):
        argv = argv[1:]
    if not argv:
        raise KubectlParseError("give a kubectl command, for example: -- kubectl get pods -n prod")
    verb, args = argv[0], _split(argv[1:])
    all_ns = args.has("-A", "--all-namespaces")
    ns = "" if all_ns else (args.flag("-n", "--namespace") or default_namespace)
    obj: dict[str, Any] | None = None
    query: list[tuple[str, str]] = []

    def from_file(method: str) -> tuple[str, str]:
        nonlocal obj
        filename = args.flag("-f", "--filename")
        if not filename:
            raise KubectlParseError(f"kubectl {verb} needs -f FILE (or TYPE NAME)")
        obj = _read_object(filename)
        rt = _type_of_object(obj)
        meta = obj.get("metadata") or {}
        obj_ns = args.flag("-n", "--namespace") or meta.get("namespace") or default_namespace
        name = "" if method == "POST" else str(meta.get("name", ""))
        return method, api_path(rt, obj_ns, name)

    if verb in ("get", "describe"):
        raw = args.flag("--raw")
        if raw:
            path, _, qs = raw.partition("?")
            info = parse_request_info("GET", path, qs)
            return KubectlRequest(info, None, "GET", raw)
        if not args.positional:
            raise KubectlParseError(f"kubectl {verb} needs a resource type, for example: kubectl {verb} pods")
        first = args.positional[0].split(",")[0]
        if "/" in first:
            rt, name = _name_arg(args, verb)
        else:
            rt, name = resolve_type(first), (args.positional[1] if len(args.positional) > 1 else "")
        watch = args.has("-w", "--watch", "--watch-only")
        method, path = "GET", api_path(rt, ns, "" if watch else name)
        if watch:
            query.append(("watch", "1"))
            if name:
                query.append(("fieldSelector", f"metadata.name={name}"))
    elif verb in ("create", "apply", "replace") and args.has("-f", "--filename"):
        method, path = from_file("PUT" if verb == "replace" else "POST")
    elif verb == "create":
        pos = [p for p in args.positional if p not in ("generic", "docker-registry", "tls")]
        if len(pos) < 2:
            raise KubectlParseError("kubectl create needs -f FILE or TYPE NAME")
        rt = resolve_type(pos[0])
        obj = {
            "apiVersion": f"{rt.group}/{rt.version}".lstrip("/"),
            "kind": rt.kind,
            "metadata": {"name": pos[1]} | ({"namespace": ns} if rt.namespaced and ns else {}),
        }
        role = args.flag("--clusterrole") or args.flag("--role")
        if rt.plural in ("rolebindings", "clusterrolebindings") and role:
            kind = "ClusterRole" if args.flag("--clusterrole") else "Role"
            obj["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}
        method, path = "POST", api_path(rt, ns)
    elif verb == "run":
        if not args.positional:
            raise KubectlParseError("kubectl run needs a pod name")
        name = args.positional[0]
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": name, "image": args.flag("--image") or ""}]},
        }
        method, path = "POST", api_path(RESOURCE_TYPES["pods"], ns)
    elif verb == "delete":
        if args.has("-f", "--filename"):
            method, path = from_file("DELETE")
        elif args.positional and ("/" in args.positional[0] or len(args.positional) >= 2):
            rt, name = _name_arg(args, verb)
            method, path = "DELETE", api_path(rt, ns, name)
        elif args.positional:
            method, path = "DELETE", api_path(resolve_type(args.positional[0]), ns)
        else:
            raise KubectlParseError("kubectl delete needs TYPE NAME, TYPE/NAME, -f FILE or TYPE --all")
    elif verb in ("patch", "edit", "label", "annotate", "set", "rollout", "cordon", "uncordon", "drain", "taint"):
        index = 1 if verb in ("set", "rollout") else 0
        if verb in ("cordon", "uncordon", "drain"):
            rt, name = RESOURCE_TYPES["nodes"], _pod_arg(args, verb)
        else:
            rt, name = _name_arg(args, verb, index)
        read_only = verb == "rollout" and args.positional[:1] in (["status"], ["history"])
        method, path = ("GET" if read_only else "PATCH"), api_path(rt, ns, name)
    elif verb == "scale":
        rt, name = _name_arg(args, verb)
        method, path = "PATCH", api_path(rt, ns, name, "scale")
    elif verb in ("exec", "attach"):
        pod = _pod_arg(args, verb)
        if verb == "exec" and not args.command:
            raise KubectlParseError("kubectl exec needs the command after --, for example: exec POD -- ls /")
        query = [("command", c) for c in args.command] if verb == "exec" else []
        container = args.flag("-c", "--container")
        if container:
            query.append(("container", container))
        query += [("stdout", "true"), ("stderr", "true")]
        method, path = "POST", api_path(RESOURCE_TYPES["pods"], ns, pod, verb)
    elif verb == "logs":
        method, path = "GET", api_path(RESOURCE_TYPES["pods"], ns, _pod_arg(args, verb), "log")
    elif verb == "port-forward":
        method, path = "POST", api_path(RESOURCE_TYPES["pods"], ns, _pod_arg(args, verb), "portforward")
    elif verb == "cp":
        return _cp(args, ns, default_namespace)
    elif verb == "debug":
        target = args.positional[0] if args.positional else ""
        if target.startswith(("node/", "nodes/", "no/")) or args.has("--copy-to"):
            method, path = "POST", api_path(RESOURCE_TYPES["pods"], ns)
        else:
            method, path = "PATCH", api_path(RESOURCE_TYPES["pods"], ns, _pod_arg(args, verb), "ephemeralcontainers")
    elif verb == "auth":
        sub = args.positional[0] if args.positional else ""
        if sub == "whoami":
            method, path = "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        else:
            method, path = "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    elif verb == "top":
        what = resolve_type(args.positional[0] if args.positional else "pods")
        rt = ResourceType("metrics.k8s.io", "v1beta1", what.plural, what.namespaced, "")
        method, path = "GET", api_path(rt, ns)
    elif verb in ("version", "api-versions", "api-resources"):
        method, path = "GET", "/version" if verb == "version" else "/apis"
    else:
        raise KubectlParseError(
            f"explain does not know `kubectl {verb}`; use --verb, --resource, --namespace and --name instead"
        )
    qs = urlencode(query)
    info = parse_request_info(method, path, qs)
    return KubectlRequest(info, obj, method, path + (f"?{qs}" if qs else ""))


def _cp(args: _Args, ns: str, default_namespace: str) -> KubectlRequest:
    """kubectl cp runs tar in the container: `tar cf - SRC` to copy out, `tar -xmf - -C DIR` to copy in."""
    if len(args.positional) != 2:
        raise KubectlParseError("kubectl cp needs SRC and DEST, one of them [NAMESPACE/]POD:PATH")
    src, dst = args.positional
    remote, download = (src, True) if ":" in src else (dst, False)
    if ":" not in remote:
        raise KubectlParseError("kubectl cp needs one side written [NAMESPACE/]POD:PATH")
    target, _, file = remote.partition(":")
    pod_ns, _, pod = target.rpartition("/")
    namespace = pod_ns or args.flag("-n", "--namespace") or ns or default_namespace
    if download:
        argv = ["tar", "cf", "-", file]
    else:
        parent = str(Path(file).parent)
        argv = ["tar", "-xmf", "-"] + (["-C", parent] if parent else [])
    query = [("command", c) for c in argv] + [("stdout", "true"), ("stderr", "true")]
    container = args.flag("-c", "--container")
    if container:
        query.append(("container", container))
    path = api_path(RESOURCE_TYPES["pods"], namespace, pod, "exec")
    qs = urlencode(query)
    return KubectlRequest(parse_request_info("POST", path, qs), None, "POST", f"{path}?{qs}")
