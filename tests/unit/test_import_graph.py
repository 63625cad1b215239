"""The package's import graph: no cycles, no private names across modules.

Every import inside djtasks/ counts, those inside functions too: a cycle
hidden behind a function-level import is still two modules that need each
other, and the next refactor turns it into an ImportError at start.
"""

import ast
from pathlib import Path

import djtasks

PACKAGE = Path(djtasks.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    }


MODULES = package_modules()


def imports_of(name: str, path: Path) -> list[tuple[str, str]]:
    """(imported djtasks module, imported name or "") for each import in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                # "from djtasks.worker import rescue" imports the module rescue.
                found.append((submodule, "") if submodule in MODULES else (base, alias.name))
    return [(target, what) for target, what in found if target in MODULES]


def import_graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _ in imports_of(name, path) if target != name}
        for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_walk_sees_the_package():
    graph = import_graph()
    assert "djtasks.worker.claim_thread" in graph
    # A function-level import is seen (djtasks.workflows.canvas imports the
    # backend inside Workflow.enqueue).
    assert "djtasks.backend" in graph["djtasks.workflows.canvas"]
    assert "djtasks.worker.claim" in graph["djtasks.worker.claim_thread"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_inside_djtasks():
    assert cycles(import_graph()) == []


def test_no_module_imports_a_private_name_of_another():
    private = [
        f"{name} imports {target}.{what}"
        for name, path in MODULES.items()
        for target, what in imports_of(name, path)
        if what.startswith("_") and target != name
    ]
    assert private == []
