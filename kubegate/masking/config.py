"""The `masking:` section of kubegate.yaml: what each mask profile hides, and user-defined profiles.

Policy rules name profiles in `mask:`. Six profiles are built in; users add detectors (a name and
a regex), field rules (a kind and a path) and profiles that combine any of these by name:

```yaml
masking:
  env_name_patterns: ["*PASSWORD*", "*TOKEN*", "DATABASE_URL"]   # replaces the defaults below
  detectors:
    - {name: acme-api-key, pattern: "acme_[A-Za-z0-9]{32}"}
  field_rules:
    - {name: worker-args, kind: Deployment, path: "spec.template.spec.containers[*].args", action: detect}
  profiles:
    strict: [secret-values, last-applied, env-credentials, credentials-in-text, worker-args]
```

User detectors always join `credentials-in-text`; named alone in a profile they run by themselves.
A field rule's `action` is `replace` (the whole value becomes the marker) or `detect` (only what
the text detectors find is masked).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import Strict
from kubegate.masking.detectors import BUILTIN_PATTERNS, PEM_DETECTOR, compile_detector
from kubegate.masking.paths import parse_path

SECRET_VALUES = "secret-values"
LAST_APPLIED = "last-applied"
ENV_CREDENTIALS = "env-credentials"
CONFIGMAP_KEYS = "configmap-keys"
SERVICEACCOUNT_TOKENS = "serviceaccount-tokens"
CREDENTIALS_IN_TEXT = "credentials-in-text"
BUILTIN_PROFILES = (
    SECRET_VALUES,
    LAST_APPLIED,
    ENV_CREDENTIALS,
    CONFIGMAP_KEYS,
    SERVICEACCOUNT_TOKENS,
    CREDENTIALS_IN_TEXT,
)
# Built-in detector names are reserved too, so a profile can name one of them alone.
BUILTIN_DETECTOR_NAMES = (*BUILTIN_PATTERNS, PEM_DETECTOR)

DEFAULT_ENV_NAME_PATTERNS = (
    "*PASSWORD*",
    "*PASSWD*",
    "*TOKEN*",
    "*SECRET*",
    "*_KEY",
    "*-KEY",
    "*APIKEY*",
    "*API_KEY*",
    "*PRIVATE_KEY*",
    "*ACCESS_KEY*",
    "*CREDENTIAL*",
    "*AUTH_KEY*",
    "*_DSN",
    "*CONNECTION_STRING*",
    "DATABASE_URL",
)
DEFAULT_CONFIGMAP_KEY_PATTERNS = (
    "*password*",
    "*passwd*",
    "*token*",
    "*secret*",
    "*credential*",
    "*_key",
    "*-key",
    "*.key",
    "*apikey*",
    "*api_key*",
    "*api-key*",
    "*private*key*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
)

Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", max_length=63)]
Glob = Annotated[str, Field(min_length=1)]


class DetectorConfig(Strict):
    """A regex over text; with a group named `secret`, only that group is masked."""

    name: Name
    pattern: str

    @model_validator(mode="after")
    def _compiles(self) -> DetectorConfig:
        compile_detector(self.name, self.pattern)
        return self


class FieldRuleConfig(Strict):
    """Mask what `path` reaches in objects of `kind` (`*` for every kind)."""

    name: Name
    kind: Annotated[str, Field(pattern=r"^(\*|[A-Za-z][A-Za-z0-9]*)$")]
    path: str
    action: Literal["replace", "detect"] = "replace"

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        parse_path(v)
        return v


class UnknownProfile(ValueError):
    """A policy names a mask profile the masking config does not define."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(
            f"mask profile(s) {', '.join(self.names)} not defined: use one of the built-in "
            f"profiles ({', '.join(BUILTIN_PROFILES)}) or define it under masking.profiles"
        )


class MaskingConfig(Strict):
    env_name_patterns: list[Glob] = list(DEFAULT_ENV_NAME_PATTERNS)
    configmap_key_patterns: list[Glob] = list(DEFAULT_CONFIGMAP_KEY_PATTERNS)
    detectors: list[DetectorConfig] = []
    field_rules: list[FieldRuleConfig] = []
    profiles: dict[Name, list[Name]] = {}

    @model_validator(mode="after")
    def _names(self) -> MaskingConfig:
        seen: dict[str, str] = {n: "a built-in profile" for n in BUILTIN_PROFILES}
        seen.update({n: "a built-in detector" for n in BUILTIN_DETECTOR_NAMES})
        for what, names in (
            ("detector", [d.name for d in self.detectors]),
            ("field rule", [r.name for r in self.field_rules]),
            ("profile", list(self.profiles)),
        ):
            for name in names:
                if name in seen:
                    raise ValueError(f"{what} name {name!r} is already {seen[name]}; names must be unique")
                seen[name] = f"a {what}"
        for profile, members in self.profiles.items():
            unknown = [m for m in members if m not in seen]
            if unknown:
                raise ValueError(
                    f"profile {profile!r} names {', '.join(map(repr, unknown))}, which is not a "
                    "built-in profile or detector, nor a detector, field rule or profile defined here"
                )
        for profile in self.profiles:
            self._expand_one(profile, ())
        return self

    def _expand_one(self, name: str, stack: tuple[str, ...]) -> set[str]:
        if name in stack:
            raise ValueError(f"profile {name!r} includes itself: {' -> '.join((*stack, name))}")
        if name not in self.profiles:
            return {name}
        atoms: set[str] = set()
        for member in self.profiles[name]:
            atoms |= self._expand_one(member, (*stack, name))
        return atoms

    def known(self) -> frozenset[str]:
        """Every name a policy rule's `mask:` may use."""
        return frozenset(
            (
                *BUILTIN_PROFILES,
                *BUILTIN_DETECTOR_NAMES,
                *(d.name for d in self.detectors),
                *(r.name for r in self.field_rules),
                *self.profiles,
            )
        )

    def expand(self, names: Iterable[str]) -> frozenset[str]:
        """Profiles -> the built-in profiles, detectors and field rules they stand for."""
        names = list(names)
        unknown = set(names) - self.known()
        if unknown:
            raise UnknownProfile(unknown)
        atoms: set[str] = set()
        for name in names:
            atoms |= self._expand_one(name, ())
        return frozenset(atoms)
