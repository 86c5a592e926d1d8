from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from kubegate.mcp.discovery import parse, resolve

CORE = {
    "kind": "APIGroupDiscoveryList",
    "items": [
        {
            "metadata": {"name": ""},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "pods",
                            "responseKind": {"kind": "Pod"},
                            "scope": "Namespaced",
                            "singularResource": "pod",
                            "shortNames": ["po"],
                            "verbs": ["get", "list"],
                            "subresources": [{"subresource": "log"}],
                        },
                        {
                            "resource": "namespaces",
                            "responseKind": {"kind": "Namespace"},
                            "scope": "Cluster",
                            "singularResource": "namespace",
                            "shortNames": ["ns"],
                            "verbs": ["get"],
                        },
                    ],
                }
            ],
        }
    ],
}
APPS = {
    "kind": "APIGroupDiscoveryList",
    "items": [
        {
            "metadata": {"name": "apps"},
            "versions": [
                {
                    "version": "v1",
                    "resources": [
                        {
                            "resource": "deployments",
                            "responseKind": {"kind": "Deployment"},
                            "scope": "Namespaced",
                            "singularResource": "deployment",
                            "shortNames": ["deploy"],
                            "verbs": ["get"],
                        }
                    ],
                }
            ],
        }
    ],
}


@pytest.mark.parametrize("name", ["pods", "pod", "Pod", "po"])
def test_every_name_kubectl_accepts_finds_the_resource(name: str) -> None:
    found = resolve(parse([CORE, APPS]), name)
    assert found.path("ns1", "web", "log") == "/api/v1/namespaces/ns1/pods/web/log"


def test_group_qualified_names_and_cluster_scope() -> None:
    resources = parse([CORE, APPS])
    assert resolve(resources, "deployments.apps").path("a") == "/apis/apps/v1/namespaces/a/deployments"
    assert resolve(resources, "Deployment", "apps/v1").group_version == "apps/v1"
    assert resolve(resources, "ns").path("ignored", "x") == "/api/v1/namespaces/x"


def test_an_unknown_name_says_where_to_look() -> None:
    with pytest.raises(ToolError, match="list_api_resources"):
        resolve(parse([CORE]), "deploy")
    with pytest.raises(ToolError, match="in apps/v2"):
        resolve(parse([APPS]), "deploy", "apps/v2")
