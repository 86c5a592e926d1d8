"""Policy `users:` and reviewer `users:` name Kubernetes users, which kubegate makes issuer-qualified
(the issuer's username_prefix + the token's subject), so a subject from one trusted issuer never matches
a rule written for another.

An entry that begins with no issuer's prefix is a bare subject: with one issuer it can only mean that
issuer's subject and is qualified so; with several it is ambiguous and a config error.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubegate.policy.model import PolicyRule


def _qualify(entries: Sequence[str], prefixes: Sequence[str], field: str, errors: list[tuple[str, str]]) -> list[str]:
    out = []
    for i, entry in enumerate(entries):
        if any(entry.startswith(p) for p in prefixes):
            out.append(entry)
        elif len(prefixes) == 1:
            out.append(prefixes[0] + entry)
        else:
            choices = " or ".join(repr(p + entry) for p in prefixes)
            errors.append(
                (
                    f"{field}[{i}]",
                    f"{entry!r} names no issuer, and a bare subject would match the same "
                    f"subject from any trusted issuer: write the Kubernetes user name, {choices}",
                )
            )
    return out


def qualify_users(rule: PolicyRule, prefixes: Sequence[str]) -> tuple[PolicyRule, list[tuple[str, str]]]:
    """The rule with every user entry issuer-qualified, and (field path, problem) for each that cannot be.
    Without issuers (checking policy files alone) the rule is left as written."""
    if not prefixes:
        return rule, []
    errors: list[tuple[str, str]] = []
    subjects = rule.subjects.model_copy(
        update={"users": _qualify(rule.subjects.users, prefixes, "subjects.users", errors)}
    )
    update: dict[str, object] = {"subjects": subjects}
    if rule.reviewers is not None:
        update["reviewers"] = rule.reviewers.model_copy(
            update={"users": _qualify(rule.reviewers.users, prefixes, "reviewers.users", errors)}
        )
    return rule.model_copy(update=update), errors
