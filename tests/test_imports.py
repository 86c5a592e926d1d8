"""No import cycle between kubegate's modules, nor between its packages: each module can be read (and imported)
after what it needs, and each package (kube, identity, policy, masking, recording, upstream, ...) builds on
others without them building on it. kubegate.config gathers each package's own section; none reads it back.

Imports at module level count, including those inside classes, `if` and `try`; `if TYPE_CHECKING:` blocks
and imports inside functions do not (they run later, when every module is loaded). `from pkg import mod`
depends on the module `pkg.mod`, not on the package's `__init__`.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "kubegate"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                subs = {f"{base}.{a.name}" for a in node.names} & modules
                found.update(subs or ({base} & modules))
            elif isinstance(node, ast.ClassDef):
                visit(node.body)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    found.discard(name)
    return found


def module_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {name: imports(path, set(paths)) for name, path in paths.items()}
    assert len(graph) > 150 and sum(map(len, graph.values())) > 300, "the graph was read"
    return graph


def assert_acyclic(graph: dict[str, set[str]]) -> None:
    done: set[str] = set()

    def walk(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(node) :], node]))
        if node in done:
            return
        for dep in sorted(graph[node]):
            walk(dep, [*trail, node])
        done.add(node)

    for name in sorted(graph):
        walk(name, [])


def package_of(module: str) -> str:
    """`kubegate.masking.stage` -> `kubegate.masking`; a top-level module is its own package."""
    return ".".join(module.split(".")[:2])


def test_no_module_imports_itself_back() -> None:
    assert_acyclic(module_graph())


def test_no_package_imports_itself_back() -> None:
    packages: dict[str, set[str]] = {}
    for module, deps in module_graph().items():
        package = package_of(module)
        packages.setdefault(package, set()).update(package_of(d) for d in deps if package_of(d) != package)
    assert {"kubegate.config", "kubegate.masking", "kubegate.upstream"} <= set(packages), "packages were read"
    assert "kubegate.policy" in packages["kubegate.config"], "config gathers the sections of the packages"
    assert_acyclic(packages)
