"""Policy rules as they appear in kubegate.yaml and policy files."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Subjects(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    users: list[str] = []
    groups: list[str] = []
    issuers: list[str] = []
    claims: dict[str, str] = {}


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    verbs: list[str] = []
    api_groups: list[str] = []
    resources: list[str] = []
    subresources: list[str] = []
    namespaces: list[str] = []
    names: list[str] = []


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    subjects: Subjects = Subjects()
    connections: list[str] = []
    match: Match = Match()
    action: Literal["allow", "deny", "review"]
    message: str = ""
    role: str | None = None
    mask: list[str] = []
