"""Policy rules as written in kubegate.yaml and policy files, validated so a bad rule names its field.

Everything a rule can say is checked here, at load time: unknown verbs, malformed resources,
globs, exec regexes and CEL syntax. A rule that loads is a rule the engine can compile.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import PositiveDuration, Strict
from kubegate.policy.cel import CelSyntaxError, parse_condition

RESOURCE_VERBS = frozenset(
    {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
        "proxy",
    }
)
# Non-resource requests (/version, /api, /openapi/...) carry the lower-cased HTTP method as verb.
NON_RESOURCE_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options"})
KNOWN_VERBS = RESOURCE_VERBS | NON_RESOURCE_VERBS

_RULE_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$"
_MASK_NAME = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"

NonEmpty = Annotated[str, Field(min_length=1)]


def _as_list(value: object) -> object:
    """Let a single value stand for a one-element list, as people write YAML."""
    return [value] if isinstance(value, str) else value


class Subjects(Strict):
    """Who a rule is about. Fields combine with AND; values inside one field with OR; globs allowed.

    `users` matches the identity's Kubernetes user name, the issuer's username_prefix + the token's
    subject (`github:repo:acme/app:ref:refs/heads/main`), so it names the issuer too; with one issuer a
    bare subject is read as that issuer's (policy/subjects.py). Every listed claim must be present and match.
    """

    users: list[NonEmpty] = []
    groups: list[NonEmpty] = []
    issuers: list[NonEmpty] = []
    claims: dict[NonEmpty, list[NonEmpty]] = {}

    _lists = field_validator("users", "groups", "issuers", mode="before")(_as_list)

    @field_validator("claims", mode="before")
    @classmethod
    def _claim_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _as_list(v) for k, v in value.items()}
        return value


class ExecMatch(Strict):
    """The exec command (argv) a rule applies to: exactly one of `command` or `regex`.

    `command` is a list of globs compared element by element with argv, so ["sh", "-c", "*"] is
    `sh -c <anything>` and nothing longer; a last element "**" matches any remaining arguments
    (zero or more). `regex` is searched in argv joined as a shell would quote it (shlex.join),
    so anchor it: "^tar( |$)" is any tar invocation, which is what `kubectl cp` runs.
    """

    command: list[str] | None = None
    regex: str | None = None

    @field_validator("command")
    @classmethod
    def _argv(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("must name at least the program, for example [tar, '**']")
            if "**" in value[:-1]:
                raise ValueError("'**' (any remaining arguments) may only be the last element")
        return value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one(self) -> ExecMatch:
        if (self.command is None) == (self.regex is None):
            raise ValueError("give exactly one of command (argv globs) or regex")
        return self


class Match(Strict):
    """What a request must look like. Fields combine with AND; values inside one field with OR.

    An omitted field matches anything. Globs (`*`, `?`, `[..]`) never match an empty value: the
    literal "" names it, so `namespaces: ["pr-*"]` does not match a cluster-wide request and
    `namespaces: [""]` matches only cluster-scoped or all-namespaces requests.
    `resources` follow RBAC: "pods" is the pod itself, "pods/exec" one subresource, "pods/*" every
    subresource, "*" everything. With `subresources` set, plain entries in `resources` are
    combined with each listed subresource ("" = the resource itself).
    """

    verbs: list[NonEmpty] = []
    api_groups: list[str] = []
    resources: list[NonEmpty] = []
    subresources: list[str] = []
    namespaces: list[str] = []
    names: list[str] = []
    exec: list[ExecMatch] = []
    non_resource_urls: list[NonEmpty] = []

    _lists = field_validator(
        "verbs", "api_groups", "resources", "subresources", "namespaces", "names", "non_resource_urls", mode="before"
    )(_as_list)

    @field_validator("exec", mode="before")
    @classmethod
    def _exec_list(cls, value: object) -> object:
        return [value] if isinstance(value, dict) else value

    @field_validator("verbs")
    @classmethod
    def _known_verbs(cls, value: list[str]) -> list[str]:
        for verb in value:
            if verb != "*" and verb not in KNOWN_VERBS:
                raise ValueError(
                    f"{verb!r} is not a request verb; use * or one of {', '.join(sorted(KNOWN_VERBS))}"
                    " (exec, attach and portforward are verb create on pods/exec, ...)"
                )
        return value

    @field_validator("resources")
    @classmethod
    def _resource_form(cls, value: list[str]) -> list[str]:
        from kubegate.policy.kubectl import RESOURCE_TYPES  # here: it imports request info, a heavier module

        for entry in value:
            parts = entry.split("/")
            if len(parts) > 2 or not all(parts):
                raise ValueError(f"{entry!r} is not RESOURCE or RESOURCE/SUBRESOURCE (for example pods/exec)")
            # A request names the API's plural ("pods"); kubectl's short, singular or capitalised spellings
            # would never match one, so a rule written with them silently matches nothing.
            known = RESOURCE_TYPES.get(parts[0].lower())
            if parts[0] != parts[0].lower() or (known is not None and known.plural != parts[0]):
                plural = known.plural if known is not None else parts[0].lower()
                fixed = "/".join([plural, *parts[1:]])
                raise ValueError(
                    f"{entry!r} never matches a request: resources are the API's lower-case plural "
                    f"names (kubectl api-resources, NAME column); write {fixed!r}"
                )
        return value

    @field_validator("non_resource_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith("/"):
                raise ValueError(f"{url!r} must be a path starting with '/', such as /version or /apis/*")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Match:
        resource_fields = [
            n for n in ("api_groups", "resources", "subresources", "namespaces", "names", "exec") if getattr(self, n)
        ]
        if self.non_resource_urls and resource_fields:
            raise ValueError(
                "non_resource_urls cannot be combined with "
                + ", ".join(resource_fields)
                + ": a request is either a resource request or a non-resource URL"
            )
        return self


class Reviewers(Strict):
    """Who may approve a request a `review` rule catches, and how kubectl waits for them. `users` are
    Kubernetes user names, issuer-qualified as in Subjects.users."""

    groups: list[NonEmpty] = []
    users: list[NonEmpty] = []
    min_approvals: int = Field(default=1, ge=1, le=10)
    mode: Literal["wait", "async"] = "wait"
    timeout: PositiveDuration = Field(default="15m", validate_default=True)

    _lists = field_validator("groups", "users", mode="before")(_as_list)

    @model_validator(mode="after")
    def _someone(self) -> Reviewers:
        if not self.groups and not self.users:
            raise ValueError("name at least one reviewer group or user")
        return self


class PolicyRule(Strict):
    """One rule: who (`subjects`), where (`connections`), what (`match`, `condition`) and the outcome.

    `condition` is a CEL expression over `identity`, `request` and `object` (the parsed body of a
    create/update/patch, else null) that must be true for the rule to match. If it cannot be
    evaluated, deny and review rules match and allow rules do not (fail closed).
    """

    name: Annotated[str, Field(pattern=_RULE_NAME, max_length=253)]
    description: str = ""
    subjects: Subjects = Subjects()
    connections: list[NonEmpty] = []
    match: Match = Match()
    condition: str | None = None
    action: Literal["allow", "deny", "review"]
    message: str = ""
    reviewers: Reviewers | None = None
    role: NonEmpty | None = None
    role_scope: Literal["namespace", "cluster"] | None = None
    mask: list[Annotated[str, Field(pattern=_MASK_NAME)]] = []

    _lists = field_validator("connections", "mask", mode="before")(_as_list)

    @field_validator("condition")
    @classmethod
    def _cel(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_condition(value)
            except CelSyntaxError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _outcome(self) -> PolicyRule:
        if self.action == "review" and self.reviewers is None:
            raise ValueError("a review rule needs reviewers: {groups: [...]} or {users: [...]}")
        if self.action != "review" and self.reviewers is not None:
            raise ValueError(f"reviewers only apply to action review, not {self.action}")
        if self.action == "deny" and (self.role or self.role_scope):
            raise ValueError("role and role_scope only apply to allow and review rules")
        if self.role_scope and not self.role:
            raise ValueError("role_scope needs a role")
        return self

    @property
    def scope(self) -> Literal["namespace", "cluster"]:
        return self.role_scope or "namespace"


class PolicyFile(Strict):
    """A policy file: `{policies: [...]}` (a bare list of rules is read as this too)."""

    policies: list[PolicyRule] = []
