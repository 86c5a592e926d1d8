"""`kubegate policy check|explain`: validate policy files, and show how a request would be decided."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kubegate.approvals.config import ApprovalsConfig
from kubegate.cli.client import Format, OutputOpt, print_structured
from kubegate.cli.groups import command_group
from kubegate.config import Config, load_config, policy_sources
from kubegate.configbase import ConfigError, load_yaml
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.masking.config import MaskingConfig
from kubegate.policy.decision import Decision
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.explain import ExplainError, identity_for, request_from_flags, request_from_kubectl

policy_app = command_group("Check policy files and explain decisions.")

_COLORS = {"allow": "green", "deny": "red", "review": "yellow"}
EXIT_CODES = {"allow": 0, "deny": 3, "review": 4}
"""`policy explain` exits with these, so a CI step can gate on a decision (1 and 2 stay errors)."""

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="KUBEGATE_CONFIG", help="kubegate.yaml (its policies and policy_dirs)"),
]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _engine(config_path: Path | None, paths: list[Path]) -> tuple[PolicyEngine, Config | None]:
    """An engine over kubegate.yaml and/or policy files and folders; ConfigError lists every problem."""
    config = load_config(config_path) if config_path else None
    dirs = [p for p in paths if p.is_dir()]
    files = [p for p in paths if not p.is_dir()]
    rules = config.policies if config else []
    dirs = (list(config.policy_dirs) if config else []) + dirs
    engine = PolicyEngine(rules, dirs, files, user_prefixes=policy_sources(config).user_prefixes if config else ())
    return engine, config


@policy_app.command("check")
def check(
    paths: Annotated[list[Path] | None, typer.Argument(help="policy files or folders")] = None,
    config: ConfigOpt = None,
) -> None:
    """Validate policy files (and the policies of kubegate.yaml), their mask names included (against the
    config's masking section, else the built-in profiles); exit 1 listing every problem."""
    paths = paths or []
    if config is None and not paths:
        raise _fail("give policy files or folders, or --config kubegate.yaml", 2)
    try:
        engine, cfg = _engine(config, paths)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    problems = engine.unknown_masks((cfg.masking if cfg else MaskingConfig()).known())
    if problems:
        raise _fail("\n".join(problems))
    typer.echo(f"ok: {len(engine.rules)} rules")


def _claims(values: list[str]) -> dict[str, str]:
    claims = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise _fail(f"--claim {value!r}: write NAME=VALUE, for example --claim repository=acme/app", 2)
        claims[key] = val
    return claims


def _human(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _print(
    decision: Decision, identity: Identity, info: RequestInfo, connection: str, show_all: bool, timeout: float | None
) -> None:
    # Piped (a CI log, grep): one line per item at any length, never wrapped at 80 columns.
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 10_000)
    color = _COLORS[decision.action]
    console.print(f"[bold {color}]{decision.action.upper()}[/]  ", end="")
    console.print(decision.message, markup=False, soft_wrap=True)
    who = f"{identity.username} groups={list(identity.groups)}" + (
        f" claims={dict(identity.claims)}" if identity.claims else ""
    )
    what = (
        f"{info.verb} {info.api_group + '/' if info.api_group else ''}{info.resource_path}"
        f"{' ' + repr(info.name) if info.name else ''} namespace={info.namespace!r}"
        if info.is_resource_request
        else f"{info.verb} {info.path}"
    )
    if info.command:
        what += f" command={list(info.command)}"
    console.print(f"request: {who} -> {what} connection={connection!r}", markup=False, soft_wrap=True)
    if decision.masks:
        console.print(f"masks: {', '.join(decision.masks)}", markup=False)
    if decision.role:
        console.print(f"role: {decision.role} ({decision.role_scope})", markup=False)
    if decision.reviewers:
        r = decision.reviewers
        console.print(
            f"reviewers: groups={list(r.groups)} users={list(r.users)} min_approvals={r.min_approvals} "
            f"mode={r.mode} timeout={_human(timeout or r.timeout)}",
            markup=False,
        )
    if decision.matches:
        table = Table(title="matching rules", title_justify="left")
        for col in ("rule", "action", "why", "source"):
            table.add_column(col, overflow="fold")
        for m in decision.matches:
            table.add_row(m.rule, f"[{_COLORS.get(m.action, 'white')}]{m.action}[/]", "\n".join(m.why), m.source)
        console.print(table)
    else:
        console.print("no rule matched", markup=False)
    if show_all and decision.misses:
        table = Table(title="rules that did not match", title_justify="left")
        for col in ("rule", "action", "why not", "source"):
            table.add_column(col, overflow="fold")
        for miss in decision.misses:
            table.add_row(miss.rule, miss.action, miss.why_not, miss.source)
        console.print(table)


@policy_app.command("explain", context_settings={"allow_interspersed_args": False})
def explain(
    kubectl: Annotated[list[str] | None, typer.Argument(help="after --: a kubectl command line")] = None,
    config: ConfigOpt = None,
    policy: Annotated[list[Path] | None, typer.Option("--policy", "-p", help="policy file or folder")] = None,
    sub: Annotated[str, typer.Option("--sub", help="token subject")] = "",
    user: Annotated[
        str | None, typer.Option("--user", help="Kubernetes username (default: issuer prefix + sub)")
    ] = None,
    group: Annotated[list[str] | None, typer.Option("--group", "-g")] = None,
    claim: Annotated[list[str] | None, typer.Option("--claim", help="NAME=VALUE")] = None,
    issuer: Annotated[str, typer.Option("--issuer")] = "",
    connection: Annotated[str | None, typer.Option("--connection")] = None,
    verb: Annotated[str | None, typer.Option("--verb")] = None,
    resource: Annotated[str, typer.Option("--resource", help="pods, deploy, pods/exec, ...")] = "",
    subresource: Annotated[str, typer.Option("--subresource")] = "",
    api_group: Annotated[str | None, typer.Option("--api-group")] = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "",
    name: Annotated[str, typer.Option("--name")] = "",
    command: Annotated[str, typer.Option("--command", help="exec argv as one shell-quoted string")] = "",
    object_file: Annotated[Path | None, typer.Option("--object", help="JSON/YAML body for create/update/patch")] = None,
    output: OutputOpt = Format.table,
    show_all: Annotated[bool, typer.Option("--all", "-a", help="also list rules that did not match")] = False,
) -> None:
    """Show the decision for one request, every rule that matched and why. Exit 0 allow, 3 deny, 4 review
    (1 and 2: the request or the policy could not be read), so a CI step can gate on it.

    kubegate policy explain --policy examples/policies --sub bot --group ci-agents -- kubectl delete ns prod
    """
    if config is None and not policy:
        raise _fail("give --config kubegate.yaml or --policy FILE (or folder)", 2)
    try:
        engine, cfg = _engine(config, list(policy or []))
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    if connection is None:
        names = [c.name for c in cfg.connections] if cfg else []
        connection = names[0] if len(names) == 1 else ""
    obj: Any = None
    if object_file is not None:
        try:
            obj = load_yaml(object_file)
        except ConfigError as exc:
            raise _fail(str(exc), 2) from exc
    try:
        if kubectl:
            info, parsed = request_from_kubectl(kubectl)
            obj = obj if obj is not None else parsed
        elif verb and resource:
            info = request_from_flags(verb, resource, subresource, api_group, namespace, name, command)
        else:
            raise _fail(
                "describe the request: --verb V --resource R [--namespace N --name X], or -- kubectl COMMAND", 2
            )
    except ExplainError as exc:
        raise _fail(str(exc), 2) from exc
    identity = identity_for(cfg, sub, user, issuer, list(group or []), _claims(list(claim or [])))
    decision = engine.explain(identity, info, connection, obj)
    timeout = None
    if decision.reviewers is not None:
        by_name = {r.name: r for r in reversed(engine.rules)}
        timeout = (cfg.approvals if cfg else ApprovalsConfig()).timeout_for(
            by_name.get(m.rule) for m in decision.matches if m.action == "review"
        )
    body: dict[str, Any] = {
        "identity": identity.as_dict(),
        "connection": connection,
        "request": info.as_dict(),
        "decision": decision.as_dict() if show_all else {k: v for k, v in decision.as_dict().items() if k != "misses"},
    }
    if timeout is not None:
        body["decision"]["reviewers"]["timeout"] = timeout  # what the gateway applies, default included
    if not print_structured(body, output):
        _print(decision, identity, info, connection, show_all, timeout)
    raise typer.Exit(EXIT_CODES[decision.action])


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
