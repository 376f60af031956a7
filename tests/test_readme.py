"""The README's Python examples run as written, and its task examples print what the
README shows."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import annfactory
from annfactory.tasks import run_named_task

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
#: Blocks that build a model at top level (the others are a plugin module and an
#: application's task function, exercised below and in test_user_app.py).
MODEL_BLOCKS = [block for block in BLOCKS if re.search(r"^model = ", block, re.M)]
#: Output blocks of the task examples: ``$ python scripts/run.py task=...`` and then
#: what it prints, where a line ``...`` stands for any lines and ``...`` inside a line
#: for any text.
TASK_OUTPUTS = re.findall(
    r"```\n\$ python scripts/run\.py "
    r"(task=(?:activations|init_report|diagnose|train)\b.*?)"
    r"\n(.*?)```",
    README.read_text(),
    flags=re.DOTALL,
)
JSON_BLOCKS = re.findall(r"```json\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _exec(block: str, name: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": name}
    # As a file of its own: without this module's "from __future__" import.
    exec(compile(block, f"README.md {name}", "exec", dont_inherit=True), namespace)
    return namespace


def test_readme_has_python_examples() -> None:
    assert len(MODEL_BLOCKS) >= 2
    assert any("annfactory_plugin.py" in block for block in BLOCKS)
    assert any("@hydra.main" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(MODEL_BLOCKS)))
def test_readme_model_block_runs(index: int) -> None:
    namespace = _exec(MODEL_BLOCKS[index], f"block_{index}")
    model = namespace["model"]
    assert isinstance(model, annfactory.network.Network)
    # The network the block's config describes, built and initialized.
    spec = annfactory.to_spec(namespace["cfg"]).network  # type: ignore[arg-type]
    assert model.spec == spec
    assert sum(p.numel() for p in model.parameters()) == spec.num_params
    output = model(torch.randn(4, spec.in_features))
    assert output.shape == (4, spec.out_features)
    assert torch.isfinite(output).all()


def test_readme_registration_example_builds_what_it_says() -> None:
    block = next(b for b in MODEL_BLOCKS if "scaled_linear" in b)
    model = _exec(block, "registration")["model"]
    assert isinstance(model, torch.nn.Module)
    layer = model.get_submodule("linear1")
    assert type(layer).__name__ == "ScaledLinear"
    assert type(model.get_submodule("linear1_act")).__name__ == "Swish"
    assert model.spec.layers[0].parameters[0].init.name == "scaled_normal"  # type: ignore[union-attr]
    assert torch.equal(layer.bias, torch.zeros(3))  # default_inits: bias zeros


def test_readme_plugin_module_registers_what_the_command_uses() -> None:
    block = next(b for b in BLOCKS if "annfactory_plugin.py" in b)
    _exec(block, "my_extras.annfactory_plugin")
    cfg = annfactory.compose(
        [
            "model.layers.linear1.weight_init=scaled_constant",
            "model.layers.linear1.activation=clip",
        ]
    )
    model = annfactory.build_model(cfg)
    assert torch.equal(model.linear1.weight, torch.full((3, 3), 0.25))
    assert type(model.get_submodule("linear1_act")).__name__ == "Clip"


def test_readme_task_example_runs_by_name_with_its_options(tmp_path: Path) -> None:
    block = next(b for b in BLOCKS if '@tasks.register("count"' in b)
    _exec(block, "my_tasks")
    spec = annfactory.to_spec(annfactory.compose(["model=demo"]))
    out = io.StringIO()
    metrics = run_named_task(
        {"name": "count", "per_layer": True}, spec, tmp_path, out=out
    )
    assert metrics == {
        "task": "count",
        "count": {"linear1": 12, "linear2": 8, "out": 6},
    }
    assert out.getvalue() == "26 parameters\n"
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert run_named_task({"name": "count"}, spec, None, out=out)["count"] == 26
    with pytest.raises(
        annfactory.UnknownNameError,
        match=r"^task\.per_layr: unknown key 'per_layr' for task 'count'\. "
        r"Did you mean 'per_layer'\?",
    ):
        run_named_task({"name": "count", "per_layr": True}, spec, None)


def test_readme_model_type_example_builds_its_layers() -> None:
    block = next(b for b in BLOCKS if '@model_types.register("pyramid"' in b)
    _exec(block, "my_models")  # the block asserts the sizes it shows
    spec = annfactory.parse_run({"model": {"type": "pyramid", "in_features": 3}})
    network = annfactory.build_network(spec)
    assert [name for name, _ in network.named_children()] == [
        "fc1", "fc1_act", "fc2", "fc2_act", "fc3", "fc3_act", "out"
    ]  # fmt: skip
    assert network(torch.randn(5, 3)).shape == (5, 2)
    with pytest.raises(
        annfactory.UnknownNameError,
        match=r"^model\.flors: unknown pyramid key 'flors'\. Did you mean 'floors'\?",
    ):
        annfactory.parse_run({"model": {"type": "pyramid", "flors": 2}})


def test_readme_group_example_puts_its_value_in_the_spec() -> None:
    block = next(b for b in BLOCKS if 'groups.register("noise"' in b)
    spec = _exec(block, "my_noise")["spec"]  # the block asserts what it shows
    assert isinstance(spec, annfactory.RunSpec)
    assert annfactory.parse_run(spec.to_dict()) == spec
    data = {**spec.to_dict(), "noise": {"name": "gaussian", "std": -1}}
    with pytest.raises(annfactory.ConfigError, match=r"^noise\.std: -1\.0 is out of"):
        annfactory.parse_run(data)
    with pytest.raises(
        annfactory.UnknownNameError,
        match=r"^noise\.name: unknown noise 'gausian'\. Did you mean 'gaussian'\?",
    ):
        annfactory.parse_run({**data, "noise": "gausian"})


@pytest.fixture(scope="module")
def task_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[str, Path]]:
    """Each task example of the README, run once: command -> (printed, run dir)."""
    runs = {}
    # The examples run where the user's files are: penguins.csv, as the README's
    # "Your own data" names it.
    here = tmp_path_factory.mktemp("cwd")
    shutil.copy(Path(__file__).parent / "data" / "tables" / "penguins.csv", here)
    cwd = os.getcwd()
    os.chdir(here)
    try:
        for command, _ in TASK_OUTPUTS:
            cfg = annfactory.compose(shlex.split(command))
            node = OmegaConf.to_container(cfg.task, resolve=True)
            out = io.StringIO()
            run_dir = tmp_path_factory.mktemp("run")
            run_named_task(node, annfactory.to_spec(cfg), run_dir, out=out)
            runs[command] = (out.getvalue(), run_dir)
    finally:
        os.chdir(cwd)
    return runs


def _output_pattern(shown: str) -> str:
    parts = []
    for line in shown.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = (re.escape(piece) for piece in line.split("..."))
            parts.append("[^\n]*".join(pieces) + r"\n")
    return "".join(parts)


def test_the_readme_shows_the_task_examples() -> None:
    commands = [command for command, _ in TASK_OUTPUTS]
    for task in ("activations", "init_report", "diagnose", "train"):
        assert any(command.startswith(f"task={task} ") or command == f"task={task}"
                   for command in commands), task  # fmt: skip


@pytest.mark.heavy  # task_runs runs every task example
@pytest.mark.parametrize(
    ("command", "shown"), TASK_OUTPUTS, ids=[c for c, _ in TASK_OUTPUTS]
)
def test_a_task_example_prints_what_the_readme_shows(
    command: str, shown: str, task_runs: dict[str, tuple[str, Path]]
) -> None:
    printed, _ = task_runs[command]
    assert re.fullmatch(_output_pattern(shown), printed), printed


@pytest.mark.heavy  # task_runs runs every task example
def test_the_init_report_metrics_are_keyed_as_the_readme_shows(
    task_runs: dict[str, tuple[str, Path]],
) -> None:
    (shown,) = (json.loads(b) for b in JSON_BLOCKS if '"task": "init_report"' in b)
    command = next(c for c, _ in TASK_OUTPUTS if c.startswith("task=init_report"))
    saved = json.loads((task_runs[command][1] / "metrics.json").read_text())
    # Keyed by the state_dict key, "hidden1.weight", not nested by layer.
    assert "hidden1" not in saved["init_report"]
    assert list(saved["init_report"])[:2] == ["hidden1.weight", "hidden1.bias"]
    assert shown["init_report"]["hidden1.bias"] == {"...": "..."}
    # Every other value shown is the real one.
    shown["init_report"]["hidden1.bias"] = saved["init_report"]["hidden1.bias"]
    for key in list(saved["init_report"])[2:]:
        shown["init_report"][key] = saved["init_report"][key]
    assert shown == saved
