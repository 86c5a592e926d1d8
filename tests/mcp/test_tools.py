from __future__ import annotations

from mcp import Client

from kubegate.app import Gateway
from kubegate.config import Config
from kubegate.mcp.tools import Tools, build_server, call_line

READS = {
    "list_api_resources",
    "get",
    "describe",
    "pod_logs",
    "rollout_status",
    "approval_status",
    "explain",
    "request_access",
}
WRITES = {"apply", "delete", "scale", "exec"}


async def tool_names(config: Config) -> set[str]:
    server = build_server(Tools(Gateway.from_config(config), lambda: None))
    async with Client(server) as client:
        return {t.name for t in (await client.list_tools()).tools}


async def test_read_only_offers_no_tool_that_writes() -> None:
    assert await tool_names(Config.model_validate({"mcp": {"read_only": True}})) == READS
    assert await tool_names(Config()) == READS | WRITES


async def test_a_call_before_the_gateway_is_up_says_to_retry() -> None:
    server = build_server(
        Tools(
            Gateway.from_config(
                Config.model_validate(
                    {"connections": [{"name": "c", "server": "https://127.0.0.1:1", "auth": {"token": "x"}}]}
                )
            ),
            lambda: None,
        )
    )
    async with Client(server) as client:
        result = await client.call_tool("get", {"resource": "pods"})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "recorder is not running yet, so it runs no tool call; try again" in text


def test_a_tool_call_is_recorded_as_one_short_ascii_line() -> None:
    line = call_line(
        "exec",
        {"pod": "app", "command": ["sh", "-c", "echo é\nx"], "container": "", "manifest": "x" * 200, "note": "a\tb"},
    )
    assert line == 'mcp exec pod=app command=["sh","-c","echo ?\\nx"] manifest=<200 characters> note=a?b'


def test_a_manifest_is_named_by_its_size_however_short() -> None:
    """Its objects may hold a Secret's value; the command line is stored with only credentials-in-text."""
    manifest = "kind: Secret\nstringData: {p: hunter2}"
    assert call_line("apply", {"manifest": manifest}) == f"mcp apply manifest=<{len(manifest)} characters>"
