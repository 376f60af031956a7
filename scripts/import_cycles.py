"""List the import cycles between annfactory's modules, deferred imports included.

Uses grimp (import-linter's graph library), which reads every import statement, also
those inside functions. Imports under ``if TYPE_CHECKING:`` are left out: they never
run. A package importing its own submodules (to register them) is left out with
``--skip-registration``, as the issue's "done when" allows.

    .venv/bin/python scripts/import_cycles.py [--skip-registration]
"""

from __future__ import annotations

import argparse
import sys

import grimp


def _components(graph: grimp.ImportGraph, skip_registration: bool) -> list[list[str]]:
    """Strongly connected components of two or more modules (Tarjan's algorithm)."""
    modules = sorted(graph.modules)
    edges: dict[str, list[str]] = {}
    for module in modules:
        targets = []
        for target in sorted(graph.find_modules_directly_imported_by(module)):
            if skip_registration and target.startswith(module + "."):
                continue
            targets.append(target)
        edges[module] = targets
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for target in edges[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for module in modules:
        if module not in index:
            visit(module)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-registration",
        action="store_true",
        help="leave out a package's imports of its own submodules",
    )
    args = parser.parse_args()
    graph = grimp.build_graph(
        "annfactory", cache_dir=None, exclude_type_checking_imports=True
    )
    components = _components(graph, args.skip_registration)
    for component in components:
        print(f"cycle of {len(component)} modules:")
        inside = set(component)
        for module in component:
            imported = graph.find_modules_directly_imported_by(module)
            targets = sorted(t for t in imported if t in inside)
            if args.skip_registration:
                targets = [t for t in targets if not t.startswith(module + ".")]
            print(f"  {module} -> {', '.join(targets)}")
    print(f"{len(components)} cycle(s), {sum(map(len, components))} modules in them")
    return 1 if components else 0


if __name__ == "__main__":
    raise SystemExit(main())
