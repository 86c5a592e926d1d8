"""Request info is parsed as kube-apiserver's RequestInfoFactory would, and ambiguous paths are refused."""

from __future__ import annotations

import pytest

from kubegate.kube.requestinfo import BadPath, parse_request_info

CASES = [
    # method, path, query, verb, group, version, namespace, resource, subresource, name
    ("GET", "/api/v1/namespaces/default/secrets", "", "list", "", "v1", "default", "secrets", "", ""),
    ("GET", "/api/v1/namespaces/default/secrets/db", "", "get", "", "v1", "default", "secrets", "", "db"),
    ("GET", "/api/v1/watch/namespaces/x/pods", "", "watch", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/watch/namespaces/x/pods/p", "", "watch", "", "v1", "x", "pods", "", "p"),
    ("GET", "/api/v1/namespaces/x/pods", "watch=true", "watch", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", "watch=1", "watch", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", "watch=", "watch", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", "watch=FALSE", "list", "", "v1", "x", "pods", "", ""),
    ("GET", "/api/v1/namespaces/x/pods", "watch=0", "list", "", "v1", "x", "pods", "", ""),
    (
        "GET",
        "/api/v1/namespaces/x/pods",
        "fieldSelector=metadata.name%3Dweb&watch=1",
        "watch",
        "",
        "v1",
        "x",
        "pods",
        "",
        "web",
    ),
    (
        "GET",
        "/apis/apps/v1/namespaces/x/deployments/y/scale",
        "",
        "get",
        "apps",
        "v1",
        "x",
        "deployments",
        "scale",
        "y",
    ),
    (
        "PUT",
        "/apis/apps/v1/namespaces/x/deployments/y/scale",
        "",
        "update",
        "apps",
        "v1",
        "x",
        "deployments",
        "scale",
        "y",
    ),
    ("GET", "/api/v1/secrets", "", "list", "", "v1", "", "secrets", "", ""),
    ("GET", "/api/v1/namespaces/default/secrets/", "", "list", "", "v1", "default", "secrets", "", ""),
    ("DELETE", "/api/v1/namespaces/prod", "", "delete", "", "v1", "prod", "namespaces", "", "prod"),
    ("GET", "/api/v1/namespaces/prod/status", "", "get", "", "v1", "prod", "namespaces", "status", "prod"),
    ("PUT", "/api/v1/namespaces/prod/finalize", "", "update", "", "v1", "prod", "namespaces", "finalize", "prod"),
    ("DELETE", "/api/v1/namespaces/x/pods", "", "deletecollection", "", "v1", "x", "pods", "", ""),
    ("POST", "/api/v1/namespaces/x/pods", "", "create", "", "v1", "x", "pods", "", ""),
    (
        "PATCH",
        "/api/v1/namespaces/x/pods/p/ephemeralcontainers",
        "",
        "patch",
        "",
        "v1",
        "x",
        "pods",
        "ephemeralcontainers",
        "p",
    ),
    (
        "GET",
        "/api/v1/namespaces/x/pods/p/exec",
        "command=sh&command=-c&command=id",
        "create",
        "",
        "v1",
        "x",
        "pods",
        "exec",
        "p",
    ),
    ("POST", "/api/v1/namespaces/x/pods/p/attach", "", "create", "", "v1", "x", "pods", "attach", "p"),
    ("GET", "/api/v1/namespaces/x/pods/p/portforward", "ports=80", "create", "", "v1", "x", "pods", "portforward", "p"),
    ("GET", "/api/v1/namespaces/x/pods/p/log", "follow=true", "get", "", "v1", "x", "pods", "log", "p"),
    ("GET", "/api/v1/nodes/n1/proxy/metrics", "", "get", "", "v1", "", "nodes", "proxy", "n1"),
    ("GET", "/api/v1/proxy/namespaces/x/services/s/path", "", "proxy", "", "v1", "x", "services", "", "s"),
    (
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "",
        "create",
        "authorization.k8s.io",
        "v1",
        "",
        "selfsubjectaccessreviews",
        "",
        "",
    ),
    ("GET", "/api/v1/namespaces/a%62c/pods", "", "list", "", "v1", "abc", "pods", "", ""),
]


@pytest.mark.parametrize(
    ("method", "path", "query", "verb", "group", "version", "namespace", "resource", "subresource", "name"), CASES
)
def test_resource_requests(
    method: str,
    path: str,
    query: str,
    verb: str,
    group: str,
    version: str,
    namespace: str,
    resource: str,
    subresource: str,
    name: str,
) -> None:
    info = parse_request_info(method, path, query)
    assert info.is_resource_request
    got = (info.verb, info.api_group, info.api_version, info.namespace, info.resource, info.subresource, info.name)
    assert got == (verb, group, version, namespace, resource, subresource, name)


def test_exec_command_and_container_come_from_the_query() -> None:
    info = parse_request_info(
        "GET", "/api/v1/namespaces/x/pods/p/exec", "command=tar&command=cf&command=-&container=app&stdout=true"
    )
    assert info.command == ("tar", "cf", "-") and info.container == "app"
    assert info.resource_path == "pods/exec"


@pytest.mark.parametrize(
    ("path", "verb"),
    [
        ("/version", "get"),
        ("/api", "get"),
        ("/apis", "get"),
        ("/openapi/v3/apis/apps/v1", "get"),
        ("/healthz", "get"),
        ("/apis/apps", "get"),
        ("/api/v1", "get"),
    ],
)
def test_non_resource_requests(path: str, verb: str) -> None:
    info = parse_request_info("GET", path)
    assert not info.is_resource_request and info.verb == verb and info.path == path


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/default%2Fsecrets",
        "/api/v1/namespaces/default%2fsecrets",
        "/api/v1/../v1/secrets",
        "/api/v1/namespaces/x/./pods",
        "/api/v1//secrets",
        "/api/v1/namespaces/%2e%2e/secrets",
        "/api/v1/namespaces/x%5cy/pods",
        "/api/v1/namespaces/x%00/pods",
        "/api/v1/namespaces/x%zz/pods",
        "api/v1/pods",
        "/api/v1/namespaces/x/pods%",
        "/api/v1/watch",
        "/api/v1/namespaces/x%0a/pods",
    ],
)
def test_ambiguous_paths_are_refused(path: str) -> None:
    with pytest.raises(BadPath):
        parse_request_info("GET", path)


def test_field_selector_with_other_terms_still_names_the_object() -> None:
    info = parse_request_info(
        "GET", "/api/v1/namespaces/x/pods", "fieldSelector=status.phase%3DRunning,metadata.name%3D%3Dweb"
    )
    assert info.name == "web" and info.verb == "list"


def test_field_selector_is_ignored_when_list_options_do_not_parse() -> None:
    info = parse_request_info("GET", "/api/v1/namespaces/x/pods", "fieldSelector=metadata.name%3Dweb&limit=x")
    assert info.name == "" and info.verb == "list"


@pytest.mark.parametrize(
    ("path", "query", "why"),
    [
        # Go keeps '#' in the path; an HTTP library building a URL cuts there: DELETE .../victim#/pods/x
        ("/api/v1/namespaces/victim#/pods/x", "", "'#'"),
        ("/api/v1/namespaces/a/pods", "#&fieldSelector=metadata.name%3Dapp", "'#'"),
        # Go's url.ParseQuery drops a pair holding ';' anywhere: the list would be unfiltered
        ("/api/v1/namespaces/a/pods", "fieldSelector=metadata.name%3Dapp-1;", "';'"),
        ("/api/v1/namespaces/a/pods", "watch;x=1", "';'"),
        # ... and a pair with a bad escape (Python would keep it as text)
        ("/api/v1/namespaces/a/pods", "fieldSelector=metadata.name%3Dapp%zz", "invalid percent-escape"),
        ("/api/v1/namespaces/a/pods", "fieldSelector=metadata.name%3Dapp%", "invalid percent-escape"),
        ("/api/v1/namespaces/a/pods/caf\u00e9", "", "printable ASCII"),
        ("/api/v1/namespaces/a/pods", "labelSelector=a b", "printable ASCII"),
        # which of two selectors counts is not a question to leave to the cluster
        ("/api/v1/namespaces/a/pods", "fieldSelector=metadata.name%3Dapp&fieldSelector=", "more than once"),
        ("/api/v1/namespaces/a/pods", "watch=0&watch=1", "more than once"),
    ],
)
def test_targets_that_read_two_ways_are_refused(path: str, query: str, why: str) -> None:
    with pytest.raises(BadPath, match=why):
        parse_request_info("GET", path, query)


def test_queries_are_read_as_go_reads_them() -> None:
    info = parse_request_info(
        "GET",
        "/api/v1/namespaces/x/pods",
        "%77atch=1&&fieldSelector=metadata.name%3D%3Dweb&x=&y&label+Selector=a+b&command=1&command=2",
    )
    assert info.verb == "watch" and info.name == "web"
    assert info.query == (
        ("watch", "1"),
        ("fieldSelector", "metadata.name==web"),
        ("x", ""),
        ("y", ""),
        ("label Selector", "a b"),
        ("command", "1"),
        ("command", "2"),
    )
    assert parse_request_info("GET", "/api/v1/pods", "a%3Bb=1").query == (("a;b", "1"),)  # Go keeps this one
