"""How long one policy decision takes over 500 rules: p50/p99 per decision, printed, never asserted.

Run: .venv/bin/python bench/policy_decide.py [--rules 500] [--decisions 20000]
The rule set mixes what real policies hold: per-team namespace globs, verb and resource lists, names,
exec command rules, denies and reviews, and a few CEL conditions on pod creation. CEL (a compiled
program per condition) is reported separately: it runs only when everything else about a rule matched.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo, parse_request_info
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.model import PolicyRule

VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
RESOURCES = ["pods", "services", "configmaps", "secrets", "deployments", "jobs", "ingresses", "pods/log"]


def make_rules(n: int, rng: random.Random) -> list[PolicyRule]:
    rules: list[dict[str, Any]] = []
    for i in range(n):
        team = f"team-{i % 50}"
        kind = i % 10
        r: dict[str, Any] = {
            "name": f"rule-{i}",
            "subjects": {"groups": [team]},
            "action": "allow",
            "match": {"namespaces": [f"{team}-*"]},
        }
        if kind in (1, 2):
            r["match"]["verbs"] = rng.sample(VERBS, 3)
            r["match"]["resources"] = rng.sample(RESOURCES, 2)
        elif kind == 3:
            r.update(action="deny", message="protected")
            r["match"]["names"] = [f"{team}-db-*", "aws-auth"]
        elif kind == 4:
            r.update(action="review", reviewers={"groups": ["oncall"]})
            r["match"]["verbs"] = ["delete"]
        elif kind == 5:
            r.update(action="deny", message="no cp")
            r["match"]["exec"] = {"regex": "^tar( |$)"}
        elif kind == 6:
            r["subjects"] = {"claims": {"repository": f"acme/{team}-*"}}
            r["connections"] = ["eks-*"]
        elif kind == 7 and i < 100:
            r.update(
                action="deny",
                message="no privileged pods",
                condition="object.spec.containers.exists(c, has(c.securityContext) && "
                "has(c.securityContext.privileged) && c.securityContext.privileged)",
            )
            r["match"].update(verbs=["create"], resources=["pods"])
        rules.append(r)
    return [PolicyRule.model_validate(r) for r in rules]


def make_requests(n: int, rng: random.Random) -> list[tuple[Identity, RequestInfo, Any]]:
    out = []
    for _ in range(n):
        team = f"team-{rng.randrange(60)}"
        ident = Identity("https://issuer", "u", "u", (team, "developers"), {"repository": f"acme/{team}-app"})
        ns = rng.choice([f"{team}-dev", f"{team}-prod", "kube-system", "default"])
        res = rng.choice(["pods", "secrets", "configmaps", "services"])
        method, path, query = rng.choice(
            [
                ("GET", f"/api/v1/namespaces/{ns}/{res}", ""),
                ("GET", f"/api/v1/namespaces/{ns}/{res}/x-{rng.randrange(9)}", ""),
                ("GET", f"/api/v1/namespaces/{ns}/{res}", "watch=1"),
                ("DELETE", f"/api/v1/namespaces/{ns}/{res}/{team}-db-1", ""),
                ("POST", f"/api/v1/namespaces/{ns}/pods/web/exec", "command=ls&command=/"),
                ("GET", "/api/v1/secrets", ""),
            ]
        )
        out.append((ident, parse_request_info(method, path, query), None))
    return out


def measure(engine: PolicyEngine, requests: list[tuple[Identity, RequestInfo, Any]], connection: str) -> list[float]:
    times = []
    for ident, info, obj in requests:
        start = time.perf_counter_ns()
        engine.decide(ident, info, connection, obj)
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def report(label: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=100)
    print(f"{label:<44} p50 {q[49]:8.1f} us   p99 {q[98]:8.1f} us   mean {statistics.fmean(times):8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args()
    rng = random.Random(7)
    start = time.perf_counter()
    engine = PolicyEngine.from_rules(make_rules(args.rules, rng))
    print(f"compiled {args.rules} rules in {(time.perf_counter() - start) * 1000:.1f} ms")
    requests = make_requests(args.decisions, rng)
    measure(engine, requests[:1000], "eks-dev")  # warm the candidate cache
    report(f"decide over {args.rules} rules", measure(engine, requests, "eks-dev"))
    pod = {"spec": {"containers": [{"name": "a", "image": "x", "securityContext": {"privileged": False}}]}}
    creates = [
        (Identity("i", "u", "u", ("team-7",)), parse_request_info("POST", "/api/v1/namespaces/team-7-dev/pods"), pod)
    ] * 500
    report("pod create evaluating one CEL condition", measure(engine, creates, "eks-dev"))


if __name__ == "__main__":
    main()
