"""The sandbox cluster reads Kubernetes protobuf request bodies, because kubectl's typed clients send them
(`kubectl create configmap|secret|deployment|namespace|role|...`, `auth can-i`, `auth whoami`, `create token`).

Only the sandbox uses this: the gateway never decodes protobuf itself, it asks the cluster what a write
would store (kubegate/upstream/dryrun.py). A body is the `k8s\\x00` magic, then a runtime.Unknown
{typeMeta, raw}; `raw` is the object's message. Field numbers come from k8s.io/api's generated.proto files
(stable by protobuf's compatibility rules). This table is a subset, enough for what kubectl sends the
sandbox: fields outside it are skipped; zero values of non-pointer Go fields are dropped as their JSON
`omitempty` would.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """The body is not a protobuf object the sandbox can read."""


class UnknownKind(ProtobufError):
    """The body is protobuf of a kind outside the table."""


PROTOBUF = "application/vnd.kubernetes.protobuf"

# field number -> (json name, type). Types: scalar names, "map:<value type>", a message name; "[]" prefix
# marks repeated fields, "!" suffix pointer fields whose zero value is still meaningful.
Field = tuple[str, str]
S, I32, I64, B = "string", "int32", "int64", "bool"
MESSAGES: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: ("apiVersion", S), 2: ("kind", S)},
    "ObjectMeta": {
        1: ("name", S),
        2: ("generateName", S),
        3: ("namespace", S),
        5: ("uid", S),
        6: ("resourceVersion", S),
        7: ("generation", I64),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "[]OwnerReference"),
        14: ("finalizers", "[]string"),
    },
    "OwnerReference": {
        1: ("kind", S),
        3: ("name", S),
        4: ("uid", S),
        5: ("apiVersion", S),
        6: ("controller", B + "!"),
        7: ("blockOwnerDeletion", B + "!"),
    },
    "LabelSelector": {1: ("matchLabels", "map:string"), 2: ("matchExpressions", "[]LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", S), 2: ("operator", S), 3: ("values", "[]string")},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", I64 + "!"),
        2: ("preconditions", "Preconditions"),
        3: ("orphanDependents", B + "!"),
        4: ("propagationPolicy", S + "!"),
        5: ("dryRun", "[]string"),
    },
    "Preconditions": {1: ("uid", S + "!"), 2: ("resourceVersion", S + "!")},
    # core/v1
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", B + "!"),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", S),
        4: ("stringData", "map:string"),
        5: ("immutable", B + "!"),
    },
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", "[]ObjectReference"),
        3: ("imagePullSecrets", "[]LocalObjectReference"),
        4: ("automountServiceAccountToken", B + "!"),
    },
    "ObjectReference": {
        1: ("kind", S),
        2: ("namespace", S),
        3: ("name", S),
        4: ("uid", S),
        5: ("apiVersion", S),
        6: ("resourceVersion", S),
        7: ("fieldPath", S),
    },
    "LocalObjectReference": {1: ("name", S)},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec")},
    "ServiceSpec": {
        1: ("ports", "[]ServicePort"),
        2: ("selector", "map:string"),
        3: ("clusterIP", S),
        4: ("type", S),
        5: ("externalIPs", "[]string"),
        7: ("sessionAffinity", S),
        8: ("loadBalancerIP", S),
        9: ("loadBalancerSourceRanges", "[]string"),
        10: ("externalName", S),
        11: ("externalTrafficPolicy", S),
        12: ("healthCheckNodePort", I32),
        13: ("publishNotReadyAddresses", B),
        17: ("ipFamilyPolicy", S + "!"),
        18: ("clusterIPs", "[]string"),
        19: ("ipFamilies", "[]string"),
        20: ("allocateLoadBalancerNodePorts", B + "!"),
        21: ("loadBalancerClass", S + "!"),
        22: ("internalTrafficPolicy", S + "!"),
    },
    "ServicePort": {
        1: ("name", S),
        2: ("protocol", S),
        3: ("port", I32 + "!"),
        4: ("targetPort", "IntOrString"),
        5: ("nodePort", I32),
        6: ("appProtocol", S + "!"),
    },
    "Pod": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {
        2: ("containers", "[]Container"),
        3: ("restartPolicy", S),
        4: ("terminationGracePeriodSeconds", I64 + "!"),
        5: ("activeDeadlineSeconds", I64 + "!"),
        6: ("dnsPolicy", S),
        7: ("nodeSelector", "map:string"),
        8: ("serviceAccountName", S),
        9: ("serviceAccount", S),
        10: ("nodeName", S),
        11: ("hostNetwork", B),
        12: ("hostPID", B),
        13: ("hostIPC", B),
        15: ("imagePullSecrets", "[]LocalObjectReference"),
        16: ("hostname", S),
        17: ("subdomain", S),
        19: ("schedulerName", S),
        20: ("initContainers", "[]Container"),
        21: ("automountServiceAccountToken", B + "!"),
        22: ("tolerations", "[]Toleration"),
        24: ("priorityClassName", S),
        25: ("priority", I32 + "!"),
        27: ("shareProcessNamespace", B + "!"),
        29: ("runtimeClassName", S + "!"),
        30: ("enableServiceLinks", B + "!"),
    },
    "Container": {
        1: ("name", S),
        2: ("image", S),
        3: ("command", "[]string"),
        4: ("args", "[]string"),
        5: ("workingDir", S),
        6: ("ports", "[]ContainerPort"),
        7: ("env", "[]EnvVar"),
        8: ("resources", "ResourceRequirements"),
        9: ("volumeMounts", "[]VolumeMount"),
        13: ("terminationMessagePath", S),
        14: ("imagePullPolicy", S),
        16: ("stdin", B),
        17: ("stdinOnce", B),
        18: ("tty", B),
        20: ("terminationMessagePolicy", S),
        24: ("restartPolicy", S + "!"),
    },
    "ContainerPort": {
        1: ("name", S),
        2: ("hostPort", I32),
        3: ("containerPort", I32 + "!"),
        4: ("protocol", S),
        5: ("hostIP", S),
    },
    "EnvVar": {1: ("name", S), 2: ("value", S)},
    "ResourceRequirements": {1: ("limits", "map:Quantity"), 2: ("requests", "map:Quantity")},
    "VolumeMount": {
        1: ("name", S),
        2: ("readOnly", B),
        3: ("mountPath", S),
        4: ("subPath", S),
        5: ("mountPropagation", S + "!"),
        6: ("subPathExpr", S),
    },
    "Toleration": {
        1: ("key", S),
        2: ("operator", S),
        3: ("value", S),
        4: ("effect", S),
        5: ("tolerationSeconds", I64 + "!"),
    },
    # apps/v1
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec")},
    "DeploymentSpec": {
        1: ("replicas", I32 + "!"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "DeploymentStrategy"),
        5: ("minReadySeconds", I32),
        6: ("revisionHistoryLimit", I32 + "!"),
        7: ("paused", B),
        9: ("progressDeadlineSeconds", I32 + "!"),
    },
    "DeploymentStrategy": {1: ("type", S), 2: ("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "IntOrString"), 2: ("maxSurge", "IntOrString")},
    # rbac.authorization.k8s.io/v1
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "ClusterRole": {
        1: ("metadata", "ObjectMeta"),
        2: ("rules", "[]PolicyRule"),
        3: ("aggregationRule", "AggregationRule"),
    },
    "AggregationRule": {1: ("clusterRoleSelectors", "[]LabelSelector")},
    "PolicyRule": {
        1: ("verbs", "[]string"),
        2: ("apiGroups", "[]string"),
        3: ("resources", "[]string"),
        4: ("resourceNames", "[]string"),
        5: ("nonResourceURLs", "[]string"),
    },
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "Subject": {1: ("kind", S), 2: ("apiGroup", S), 3: ("name", S), 4: ("namespace", S)},
    "RoleRef": {1: ("apiGroup", S), 2: ("kind", S), 3: ("name", S)},
    # authorization.k8s.io/v1, authentication.k8s.io/v1
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes"),
        2: ("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", S),
        2: ("verb", S),
        3: ("group", S),
        4: ("version", S),
        5: ("resource", S),
        6: ("subresource", S),
        7: ("name", S),
    },
    "NonResourceAttributes": {1: ("path", S), 2: ("verb", S)},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", S)},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta")},
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {
        1: ("audiences", "[]string"),
        3: ("boundObjectRef", "BoundObjectReference"),
        4: ("expirationSeconds", I64 + "!"),
    },
    "BoundObjectReference": {1: ("kind", S), 2: ("apiVersion", S), 3: ("name", S), 4: ("uid", S)},
}
TOP_LEVEL = {
    "ConfigMap": "ConfigMap",
    "Secret": "Secret",
    "Namespace": "Namespace",
    "ServiceAccount": "ServiceAccount",
    "Service": "Service",
    "Pod": "Pod",
    "Deployment": "Deployment",
    "Role": "Role",
    "ClusterRole": "ClusterRole",
    "RoleBinding": "RoleBinding",
    "ClusterRoleBinding": "RoleBinding",
    "SelfSubjectAccessReview": "SelfSubjectAccessReview",
    "SelfSubjectReview": "SelfSubjectReview",
    "SelfSubjectRulesReview": "SelfSubjectRulesReview",
    "TokenRequest": "TokenRequest",
    "DeleteOptions": "DeleteOptions",
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("protobuf body is truncated")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def wire_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint and fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(data, pos)
            out.append((number, data[pos : pos + size]))
            pos += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, int.from_bytes(data[pos : pos + width], "little")))
            pos += width
        else:
            raise ProtobufError(f"protobuf wire type {wire} is not supported")
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    return value if bits == 64 else max(min(value, 2**31 - 1), -(2**31))


def _bytes(value: int | bytes) -> bytes:
    return value if isinstance(value, bytes) else b""


def _parts(value: int | bytes) -> dict[int, int | bytes]:
    return dict(wire_fields(_bytes(value)))


def _scalar(kind: str, value: int | bytes) -> Any:
    if kind == "string":
        return _bytes(value).decode()
    if kind == "Quantity":
        return _bytes(_parts(value).get(1, b"")).decode()
    if kind == "bytes":
        return base64.b64encode(_bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    if kind in ("int32", "int64"):
        return _signed(value if isinstance(value, int) else 0, 32 if kind == "int32" else 64)
    if kind == "IntOrString":
        parts = _parts(value)
        if parts.get(1, 0) == 1:
            return _bytes(parts.get(3, b"")).decode()
        number = parts.get(2, 0)
        return _signed(number if isinstance(number, int) else 0, 32)
    return decode_message(_bytes(value), kind)


def _zero(value: Any) -> bool:
    return value in ("", 0, False, None) and not isinstance(value, dict)


def decode_message(data: bytes, message: str) -> dict[str, Any]:
    schema = MESSAGES[message]
    out: dict[str, Any] = {}
    for number, value in wire_fields(data):
        field = schema.get(number)
        if field is None:
            continue
        name, kind = field
        keep_zero = kind.endswith("!")
        kind = kind.rstrip("!")
        if kind.startswith("map:"):
            entry = dict(wire_fields(value if isinstance(value, bytes) else b""))
            key = _scalar("string", entry.get(1, b""))
            out.setdefault(name, {})[key] = _scalar(kind[4:], entry.get(2, b""))
        elif kind.startswith("[]"):
            out.setdefault(name, []).append(_scalar(kind[2:], value))
        else:
            decoded = _scalar(kind, value)
            if keep_zero or not _zero(decoded):
                out[name] = decoded
    return out


def decode_body(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as the JSON object it stands for (fields outside the table skipped)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the protobuf body does not start with the Kubernetes magic number")
    envelope = wire_fields(body[len(MAGIC) :])
    type_meta = decode_message(_bytes(next((v for n, v in envelope if n == 1), b"")), "TypeMeta")
    kind = type_meta.get("kind", "")
    if kind not in TOP_LEVEL:
        raise UnknownKind(f"protobuf bodies of kind {kind or '(none)'} are not understood")
    obj = decode_message(_bytes(next((v for n, v in envelope if n == 2), b"")), TOP_LEVEL[kind])
    if type_meta.get("apiVersion"):
        obj["apiVersion"] = type_meta["apiVersion"]
    obj["kind"] = kind
    return obj
