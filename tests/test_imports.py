"""The package's import structure: imports point downward, privates stay private."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "annfactory"


def imported_modules(path: Path) -> set[str]:
    """The modules a source file imports from (at any depth: lazy imports too)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_runs_imports_nothing_from_tasks() -> None:
    # Training checkpoints and export save runs too: saving must not need a task.
    imported = imported_modules(PACKAGE / "runs.py")
    assert "annfactory" in {name.partition(".")[0] for name in imported}
    assert not [name for name in imported if name.startswith("annfactory.tasks")]


def defined_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_require_mapping_is_defined_once() -> None:
    defining = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if {"require_mapping", "_require_mapping"} & defined_functions(path)
    )
    assert defining == ["params.py"]


#: Private names still imported across modules, as (importing file, module, name).
#: P1 makes ``spec._parse_choice`` public in issue 10: delete this entry then (the
#: test below fails while an entry here is no longer imported).
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


def private_imports(path: Path) -> set[tuple[str, str, str]]:
    """The private names of annfactory modules that ``path`` imports or reads
    (``from annfactory.x import _y``, or ``x._y`` of an imported annfactory module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = str(path.relative_to(PACKAGE))
    found: set[tuple[str, str, str]] = set()
    modules: dict[str, str] = {}  # local name -> annfactory module
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "annfactory"
        ):
            module = node.module or ""
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((where, module, alias.name))
                modules[alias.asname or alias.name] = f"{module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("annfactory"):
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.add((where, modules[node.value.id], node.attr))
    return found


def test_no_module_imports_another_s_private_name() -> None:
    found = set().union(*(private_imports(path) for path in PACKAGE.rglob("*.py")))
    assert found == KNOWN_PRIVATE_IMPORTS


def test_the_errors_import_no_hydra() -> None:
    # Hydra's errors are a concern of the edge where Hydra calls annfactory
    # (annfactory.hydra_report), not of the bottom of the stack (issue 20).
    imported = imported_modules(PACKAGE / "errors.py")
    assert not {name.partition(".")[0] for name in imported} & {"hydra", "omegaconf"}


def test_hydra_prints_an_annfactory_error_as_its_message_alone() -> None:
    from hydra.errors import CompactHydraException

    from annfactory.errors import ConfigError
    from annfactory.hydra_report import reported

    @reported
    def task(seed: int) -> int:
        raise ConfigError("seed", f"{seed} is out of range.", "Allowed: >= 0.")

    message = r"^seed: -1 is out of range\.\n  Allowed: >= 0\.$"
    with pytest.raises(CompactHydraException, match=message) as caught:
        task(-1)
    assert isinstance(caught.value.__cause__, ConfigError)


def test_the_layers_contract_holds(capsys: pytest.CaptureFixture[str]) -> None:
    # pyproject.toml's [tool.importlinter]: imports point downward, deferred ones
    # too (`make lint` runs the same contracts as lint-imports).
    cli = pytest.importorskip("importlinter.cli")
    config = PACKAGE.parents[1] / "pyproject.toml"
    assert cli.lint_imports(config_filename=str(config), no_cache=True) == 0, (
        capsys.readouterr().out
    )


def test_the_groups_import_the_task_declarations_not_the_tasks() -> None:
    # The task group's options are the tasks registry, below the groups; the tasks
    # package (runs, factory, the built-in tasks) sits above the spec (issue 20).
    imported = imported_modules(PACKAGE / "groups.py")
    assert "annfactory.task_registry" in imported
    assert not [name for name in imported if name.startswith("annfactory.tasks")]
    registry = imported_modules(PACKAGE / "task_registry.py")
    assert not [name for name in registry if name.startswith("annfactory.tasks")]


def test_the_layers_contract_ignores_no_import() -> None:
    import tomllib

    config = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        assert not contract.get("ignore_imports"), contract["name"]


def test_no_import_cycle_but_a_package_registering_its_own_modules() -> None:
    grimp = pytest.importorskip("grimp")
    import importlib.util

    script = PACKAGE.parents[1] / "scripts" / "import_cycles.py"
    loaded = importlib.util.spec_from_file_location("import_cycles", script)
    assert loaded is not None
    assert loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    graph = grimp.build_graph(
        "annfactory", cache_dir=None, exclude_type_checking_imports=True
    )
    assert module._components(graph, skip_registration=True) == []
    # Counting registration imports, the one cycle is the tasks package's own.
    cycles = module._components(graph, skip_registration=False)
    assert [
        {name.partition(".")[2].partition(".")[0] for name in c} for c in cycles
    ] == [{"tasks"}]


@pytest.mark.slow
def test_the_task_group_lists_the_built_in_tasks_without_importing_them_first() -> None:
    # groups imports the task registry only; the built-in tasks register when the
    # task group's options are asked for (a fresh process: nothing imported yet).
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from annfactory.groups import groups\n"
        "assert 'annfactory.tasks' not in sys.modules\n"
        "print(' '.join(groups.get('task').options().names()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [
        "activations", "diagnose", "evaluate", "export", "forward", "init_report",
        "predict", "train",
    ]  # fmt: skip


#: The dependencies whose internals src/ must not use (issue 20): Hydra's
#: ``hydra._internal`` and any name starting with ``_`` of Hydra, OmegaConf or torch.
DEPENDENCIES = ("hydra", "omegaconf", "torch")
SOURCES = PACKAGE.parent


def _private(name: str) -> bool:
    """``_x``, but not a dunder (``__version__``, ``__call__``: public protocol)."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def dependency_privates(path: Path) -> set[str]:
    """What ``path`` uses of a dependency's private names: a private module or name
    imported (``from hydra._internal.x import y``, ``from omegaconf import _y``), or
    a private attribute read from an imported dependency (``torch._C``,
    ``Singleton._instances`` where ``Singleton`` came from Hydra)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    from_dependency: set[str] = set()  # local names bound to a dependency's object
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.partition(".")[0] not in DEPENDENCIES:
                continue
            private_module = any(p.startswith("_") for p in node.module.split("."))
            for alias in node.names:
                if private_module or _private(alias.name):
                    found.add(f"{node.module}.{alias.name}")
                from_dependency.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] in DEPENDENCIES:
                    if any(p.startswith("_") for p in alias.name.split(".")):
                        found.add(alias.name)
                    from_dependency.add((alias.asname or alias.name).partition(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in from_dependency:
                found.add(f"{ast.unparse(node)}")
    return found


def test_src_uses_no_private_name_of_hydra_omegaconf_or_torch() -> None:
    found = {
        f"{path.relative_to(SOURCES)}: {name}"
        for path in sorted(SOURCES.rglob("*.py"))
        for name in dependency_privates(path)
    }
    assert sorted(found) == []


def test_the_private_name_check_finds_each_kind(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from hydra._internal.utils import get_args_parser\n"
        "from omegaconf._utils import get_omega_conf_dumper\n"
        "from hydra.core.singleton import Singleton\n"
        "import torch\n"
        "from omegaconf import OmegaConf, _private\n"
        "Singleton._instances.pop(None)\n"
        "torch._C._get_tracing_state()\n"
        "torch.nn.modules.module._global_forward_hooks\n"
        "OmegaConf.to_yaml({})\n"
        "torch.__version__\n"
        "from hydra import __version__\n",
        encoding="utf-8",
    )
    assert dependency_privates(probe) == {
        "hydra._internal.utils.get_args_parser",
        "omegaconf._utils.get_omega_conf_dumper",
        "omegaconf._private",
        "Singleton._instances",
        "torch._C._get_tracing_state",
        "torch._C",
        "torch.nn.modules.module._global_forward_hooks",
    }


def test_the_done_when_grep_finds_nothing() -> None:
    # Issue 20's own words: grep -rn "_internal\|_apply_overrides\|_get_node\|
    # omegaconf._\|_global_forward_hooks" src/
    import re

    pattern = re.compile(
        r"_internal|_apply_overrides|_get_node|omegaconf\._|_global_forward_hooks"
    )
    hits = [
        f"{path.relative_to(SOURCES)}:{number}: {line.strip()}"
        for path in sorted(SOURCES.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
