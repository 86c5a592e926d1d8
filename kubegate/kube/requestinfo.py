"""Parse a request path the way kube-apiserver's RequestInfoFactory does, refusing ambiguous encodings.

kubegate decides on this parse and forwards the very bytes it parsed (upstream/client.py), so the
upstream can never read the request differently from the policy. Go's net/http reads the target with
url.ParseRequestURI (a `#` is part of the path, not a fragment) and the query with url.ParseQuery (a pair
holding a `;` or a bad escape is dropped silently). kubegate refuses what either of those, or an HTTP
client library, could read another way: a `#`, a `;` in the query, bad escapes, bytes that are not
printable ASCII, encoded slashes, dot or empty segments (kube-apiserver's mux would clean or redirect
them), and a repeated parameter that decides what the request does. exec/attach/portforward are verb
`create` whatever the method (kube-apiserver authorizes a WebSocket GET exec as `create`, see
kubernetes#78741).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_plus

API_PREFIXES = frozenset({"api", "apis"})
GROUPLESS_PREFIXES = frozenset({"api"})
SPECIAL_VERBS = frozenset({"proxy", "watch"})
SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")
# Parameters that decide what a request does (RequestInfo, streams, masking): given twice, which one counts
# is a question kubegate will not answer for the cluster.
SINGLE_VALUED = frozenset(
    {
        "watch",
        "fieldSelector",
        "labelSelector",
        "limit",
        "timeoutSeconds",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "container",
        "follow",
        "previous",
        "tty",
        "stdin",
        "stdout",
        "stderr",
        "includeObject",
        "as",
        "fieldManager",
        "fieldValidation",
        "force",
        "propagationPolicy",
        "gracePeriodSeconds",
    }
)
_ENCODED_SEPARATOR = re.compile(r"%(2[Ff]|5[Cc]|00)")
_BACKSLASH_OR_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
_EMPTY_OR_DOT_SEGMENT = re.compile(r"(?:^|/)\.{0,2}(?:/|$)")
_INT = re.compile(r"[+-]?\d+")
_SELECTOR_TERMS = re.compile(r"(?<!\\),")
_NAME_TERM = re.compile(r"\s*metadata\.name\s*(==|=)\s*(.*?)\s*")


class BadPath(ValueError):
    """The path is one kubegate will not interpret (and so will not forward)."""


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a request does, in kube-apiserver's terms: the input to policy, recording and approvals."""

    verb: str
    path: str
    is_resource_request: bool = False
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    container: str = ""
    query: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def resource_path(self) -> str:
        """`resource` or `resource/subresource`, as RBAC and policy rules name it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def as_dict(self) -> dict[str, object]:
        return {
            "verb": self.verb,
            "path": self.path,
            "is_resource_request": self.is_resource_request,
            "api_group": self.api_group,
            "api_version": self.api_version,
            "namespace": self.namespace,
            "resource": self.resource,
            "subresource": self.subresource,
            "name": self.name,
            "command": list(self.command),
            "container": self.container,
        }


def decode_path(raw_path: str) -> str:
    """Percent-decode a raw path, refusing anything that could be read two ways."""
    if not raw_path.startswith("/"):
        raise BadPath("the path must start with '/'")
    decoded = raw_path
    if "%" in raw_path:
        if _BAD_ESCAPE.search(raw_path):
            raise BadPath("the path has an invalid percent-escape")
        if _ENCODED_SEPARATOR.search(raw_path):
            raise BadPath("the path has an encoded '/', '\\' or NUL")
        decoded = unquote(raw_path, errors="strict")
    if _BACKSLASH_OR_CONTROL.search(decoded):
        raise BadPath("the path has a backslash or a control character")
    body = decoded[1:].removesuffix("/")
    if body and _EMPTY_OR_DOT_SEGMENT.search(body):
        raise BadPath("the path has an empty, '.' or '..' segment")
    return decoded


def check_target(raw_path: str, query_string: str) -> None:
    """Refuse target bytes whose meaning differs between Go's net/http and other readers (see above)."""
    target = raw_path + "?" + query_string
    if "#" in target:
        raise BadPath(
            "the request target has a '#': Go reads it as part of the path or query, other "
            "HTTP stacks as the start of a fragment; percent-encode it as %23"
        )
    if _NOT_PRINTABLE_ASCII.search(target):
        raise BadPath("the request target has a byte that is not printable ASCII; percent-encode it")
    if ";" in query_string:
        raise BadPath(
            "the query has a ';': Go drops every parameter that holds one (since Go 1.17); percent-encode it as %3B"
        )
    if _BAD_ESCAPE.search(query_string):
        raise BadPath("the query has an invalid percent-escape: Go drops that parameter")


def parse_query(query_string: str) -> tuple[tuple[str, str], ...]:
    """Parse a query string as Go's url.ParseQuery does, once check_target accepted it: pairs split at
    '&', empty ones skipped, key and value split at the first '=', '+' read as a space."""
    pairs: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key, errors="strict"), unquote_plus(value, errors="strict")))
    seen: set[str] = set()
    for key, _ in pairs:
        if key in SINGLE_VALUED and key in seen:
            raise BadPath(f"the query gives {key!r} more than once; send it once")
        seen.add(key)
    return tuple(pairs)


def _first(query: tuple[tuple[str, str], ...], key: str) -> str | None:
    return next((v for k, v in query if k == key), None)


def _query_bool(value: str | None) -> bool:
    # apimachinery's Convert_Slice_string_To_bool: only absent, "0" and "false" (any case) are false.
    return value is not None and value != "0" and value.lower() != "false"


def _valid_int(value: str | None) -> bool:
    return value is None or _INT.fullmatch(value) is not None


def _exact_name_from_field_selector(selector: str) -> str | None:
    """metadata.name=X (or ==X) in a field selector narrows a list/watch to one name."""
    for term in _SELECTOR_TERMS.split(selector):
        m = _NAME_TERM.fullmatch(term)
        if m:
            name = m.group(2).replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\")
            if name not in ("", ".", "..") and "/" not in name and "%" not in name:
                return name
    return None


def parse_request_info(method: str, raw_path: str, query_string: str = "") -> RequestInfo:
    """Build the RequestInfo kube-apiserver would, or raise BadPath."""
    check_target(raw_path, query_string)
    path = decode_path(raw_path)
    try:
        query = parse_query(query_string)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadPath(f"the query string is not valid: {exc}") from exc
    method = method.upper()
    parts = [p for p in path.strip("/").split("/")] if path.strip("/") else []
    non_resource = RequestInfo(verb=method.lower(), path=path, query=query)
    if len(parts) < 3 or parts[0] not in API_PREFIXES:
        return non_resource
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix not in GROUPLESS_PREFIXES:
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]

    if rest[0] in SPECIAL_VERBS:
        if len(rest) < 2:
            raise BadPath("unable to determine kind and namespace from the path")
        verb, rest = rest[0], rest[1:]
    else:
        verb = METHOD_VERBS.get(method, "")

    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
            rest = rest[2:]

    resource = name = subresource = ""
    if len(rest) >= 3 and verb not in SPECIAL_VERBS_NO_SUBRESOURCES:
        subresource = rest[2]
    if len(rest) >= 2:
        name = rest[1]
    if len(rest) >= 1:
        resource = rest[0]

    if not name and verb == "get":
        limit_ok = _valid_int(_first(query, "limit")) and _valid_int(_first(query, "timeoutSeconds"))
        verb = "watch" if _query_bool(_first(query, "watch")) else "list"
        selector = _first(query, "fieldSelector") if limit_ok else None
        if selector:
            name = _exact_name_from_field_selector(selector) or ""
    if not name and verb == "delete":
        verb = "deletecollection"
    if subresource in CONNECT_SUBRESOURCES and resource in ("pods", "nodes", "services"):
        verb = "create"

    command: tuple[str, ...] = ()
    container = ""
    if subresource in ("exec", "attach"):
        command = tuple(v for k, v in query if k == "command")
        container = _first(query, "container") or ""

    return RequestInfo(
        verb=verb,
        path=path,
        is_resource_request=True,
        api_prefix=prefix,
        api_group=group,
        api_version=version,
        namespace=namespace,
        resource=resource,
        subresource=subresource,
        name=name,
        parts=tuple(rest),
        command=command,
        container=container,
        query=query,
    )
