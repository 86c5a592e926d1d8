"""`kubegate policy check` and `kubegate policy explain`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from kubegate.cli import policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
GITHUB = "https://token.actions.githubusercontent.com"


def run(*args: str) -> Result:
    app = typer.Typer()
    policy.register(app)

    @app.callback()
    def _root() -> None:
        """Keeps `policy` a sub-command."""

    return CliRunner().invoke(app, ["policy", *args], env={"COLUMNS": "200"})


def test_check_examples_ok() -> None:
    result = run("check", str(EXAMPLES))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ") and "rules" in result.output


def test_check_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - {name: a, action: allow}\n  - {name: b, action: allow, match: {verbs: [nope]}}\n")
    good = tmp_path / "good.yaml"
    good.write_text("- {name: a, action: allow}\n")
    dup = tmp_path / "dup.yaml"
    dup.write_text("- {name: a, action: deny}\n")
    result = run("check", str(bad), str(good), str(dup))
    assert result.exit_code == 1
    assert f"{bad}: policies[1].match.verbs: 'nope' is not a request verb" in result.output
    assert f"{dup}: policies[0].name: rule name 'a' is already used by {good} policies[0]" in result.output


def test_check_refuses_a_singular_resource_naming_the_field(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {name: a, action: allow, match: {resources: [pod]}}\n")
    result = run("check", str(rules))
    assert result.exit_code == 1
    assert f"{rules}: policies[0].match.resources: 'pod' never matches a request" in result.output
    assert "write 'pods'" in result.output


def test_check_refuses_mask_names_nothing_defines(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    rules = tmp_path / "policies" / "rules.yaml"
    rules.write_text("- {name: a, action: allow, mask: [secret-values, no-such-mask]}\n")
    result = run("check", str(rules))
    assert result.exit_code == 1
    assert result.output.startswith(f"{rules}: policies[0].mask: 'no-such-mask' is not a mask profile or detector")
    config = tmp_path / "kubegate.yaml"
    config.write_text("policy_dirs: [policies]\nmasking: {profiles: {no-such-mask: [secret-values]}}\n")
    result = run("check", "--config", str(config))
    assert result.exit_code == 0, result.output  # the config defines it


def test_check_with_config(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text("- {name: from-dir, action: allow}\n")
    config = tmp_path / "kubegate.yaml"
    config.write_text("policy_dirs: [policies]\npolicies:\n  - {name: inline, action: deny}\n")
    result = run("check", "--config", str(config))
    assert (result.exit_code, result.output.strip()) == (0, "ok: 2 rules")
    config.write_text("policies:\n  - {name: inline, action: deny, match: {resources: [a/b/c]}}\n")
    result = run("check", "--config", str(config))
    assert result.exit_code == 1 and f"{config}: policies[0].match.resources" in result.output


def test_check_needs_something_to_check() -> None:
    assert run("check").exit_code == 2


def test_explain_kubectl_command_as_table() -> None:
    result = run(
        "explain",
        "--policy",
        str(EXAMPLES),
        "--sub",
        "alice",
        "--group",
        "developers",
        "--connection",
        "eks-dev",
        "--",
        "kubectl",
        "delete",
        "ns",
        "prod",
    )
    assert result.exit_code == 4, result.output
    assert result.output.startswith(
        "REVIEW  kubegate holds this request for approval by rule namespace-deletion-needs-a-human"
    )
    assert "delete namespaces 'prod' namespace='prod' connection='eks-dev'" in result.output
    assert "namespace-deletion-needs-a-human" in result.output and "verb 'delete' is in" in result.output
    assert "reviewers: groups=['platform-oncall']" in result.output


def test_explain_exec_command_json() -> None:
    result = run(
        "explain",
        "-p",
        str(EXAMPLES),
        "--sub",
        "repo:acme/app",
        "--issuer",
        GITHUB,
        "--claim",
        "repository=acme/app",
        "-o",
        "json",
        "--",
        "kubectl",
        "exec",
        "web",
        "-n",
        "pr-1",
        "--",
        "bash",
    )
    assert result.exit_code == 3, result.output
    out = json.loads(result.output)
    assert out["request"]["command"] == ["bash"] and out["identity"]["claims"] == {"repository": "acme/app"}
    decision = out["decision"]
    assert decision["action"] == "deny"
    assert decision["message"].startswith("kubegate denied this request by rule agents-no-exec-shells")
    assert [m["rule"] for m in decision["matches"]] == ["agents-in-pr-namespaces", "agents-no-exec-shells"]
    assert "misses" not in decision


def test_explain_from_flags_with_object_and_misses(tmp_path: Path) -> None:
    pod = tmp_path / "pod.json"
    pod.write_text(
        json.dumps(
            {
                "spec": {
                    "containers": [
                        {"name": "a", "image": "registry.example.com/a", "securityContext": {"privileged": True}}
                    ]
                }
            }
        )
    )
    result = run(
        "explain",
        "-p",
        str(EXAMPLES),
        "--sub",
        "alice",
        "--verb",
        "create",
        "--resource",
        "po",
        "-n",
        "pr-1",
        "--object",
        str(pod),
        "-o",
        "json",
        "--all",
    )
    out = json.loads(result.output)
    assert out["request"]["resource"] == "pods" and out["request"]["namespace"] == "pr-1"
    assert out["decision"]["message"].startswith("kubegate denied this request by rule no-privileged-pods")
    assert {m["rule"] for m in out["decision"]["misses"]} >= {"discovery", "developers-read"}


def test_explain_default_deny_and_flag_forms() -> None:
    result = run(
        "explain",
        "-p",
        str(EXAMPLES),
        "--sub",
        "nobody",
        "--verb",
        "get",
        "--resource",
        "secrets",
        "--namespace",
        "prod",
        "--name",
        "db",
        "--all",
    )
    assert result.exit_code == 3
    assert (
        "DENY  kubegate denied this request: no policy rule allows 'nobody' to get secrets 'db' in namespace 'prod'"
    ) in result.output
    assert "no rule matched" in result.output and "rules that did not match" in result.output
    exec_flags = run(
        "explain",
        "-p",
        str(EXAMPLES),
        "--sub",
        "alice",
        "--group",
        "developers",
        "-o",
        "json",
        "--verb",
        "create",
        "--resource",
        "pods/exec",
        "-n",
        "prod",
        "--name",
        "web",
        "--command",
        "tar cf - /etc",
    )
    message = json.loads(exec_flags.output)["decision"]["message"]
    assert message.startswith("kubegate denied this request by rule production-no-kubectl-cp")


def test_explain_usage_errors() -> None:
    assert run("explain", "--sub", "x", "--", "kubectl", "get", "pods").exit_code == 2  # no policy
    result = run("explain", "-p", str(EXAMPLES), "--sub", "x", "--", "kubectl", "frobnicate")
    assert result.exit_code == 2 and "explain does not know `kubectl frobnicate`" in result.output
    assert run("explain", "-p", str(EXAMPLES), "--sub", "x").exit_code == 2
    assert run("explain", "-p", str(EXAMPLES), "--verb", "exec", "--resource", "pods").exit_code == 2
    assert run("explain", "-p", str(EXAMPLES), "--claim", "novalue", "--", "kubectl", "get", "po").exit_code == 2


def test_explain_exit_codes_gate_ci_and_the_timeout_is_the_applied_one(tmp_path: Path) -> None:
    config = tmp_path / "kubegate.yaml"
    config.write_text(
        "approvals: {default_timeout: 7m}\npolicies:\n"
        "  - {name: read, action: allow, match: {verbs: [get]}}\n"
        "  - {name: wipe, action: review, match: {verbs: [delete]}, reviewers: {groups: [oncall]}}\n"
        "  - {name: wipe-fast, action: review, match: {verbs: [delete], namespaces: [tmp]},\n"
        "     reviewers: {groups: [oncall], timeout: 2m}}\n"
    )
    assert run("explain", "-c", str(config), "--sub", "a", "--", "kubectl", "get", "pod", "x").exit_code == 0
    held = run("explain", "-c", str(config), "--sub", "a", "--", "kubectl", "delete", "pod", "x", "-n", "prod")
    assert held.exit_code == 4 and "timeout=7m" in held.output  # the approvals default, not the rule model's
    out = json.loads(
        run(
            "explain", "-c", str(config), "--sub", "a", "-o", "json", "--", "kubectl", "delete", "pod", "x", "-n", "tmp"
        ).output
    )
    assert out["decision"]["reviewers"]["timeout"] == 120  # the shortest of the rules that apply
    assert run("explain", "-c", str(config), "--sub", "a", "--", "kubectl", "create", "ns", "x").exit_code == 3


def test_explain_piped_wraps_nothing() -> None:
    app = typer.Typer()
    policy.register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "explain",
            "-p",
            str(EXAMPLES),
            "--sub",
            "nobody",
            "--verb",
            "get",
            "--resource",
            "secrets",
            "--namespace",
            "a-long-namespace-name-for-wrapping",
            "--name",
            "a-long-secret-name-that-goes-past-eighty-columns",
        ],
        env={"COLUMNS": ""},
    )
    first = result.output.splitlines()[0]
    assert first.startswith("DENY  kubegate denied this request: no policy rule allows 'nobody'")
    assert "in namespace 'a-long-namespace-name-for-wrapping'" in first and first.endswith("why none matched")
