"""A plugin package adds a task, a config group and a model type of its own from
outside ``src/``.

``tests/plugin_pkg`` is such a package (see its module docstring): an
``annfactory.plugins`` entry point (``axes_demo_plugin-0.1.dist-info``), the module it
names, which registers the ``probe`` task, the ``noise`` group and the ``tower`` model
type, its YAML options in
``axes_demo_plugin/conf``, and a Hydra ``SearchPathPlugin`` that puts them on Hydra's
search path. Nothing in ``src/`` names it. On the command line it is installed by
``PYTHONPATH``; here, by ``sys.path``.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import annfactory
from annfactory import UnknownNameError, plugins
from annfactory.groups import groups, run_keys
from annfactory.tasks import tasks

TESTS = Path(__file__).resolve().parent
PLUGIN_DIR = TESTS / "plugin_pkg"
ENV = {"PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(TESTS.parent / "src")])}
PREFIX = "Error in the overrides: "


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The plugin package on ``sys.path``, loaded on the first miss as in a new
    process; its modules are forgotten afterwards (conftest restores registries)."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    plugins.reset()
    yield
    for name in [name for name in sys.modules if name.startswith("axes_demo")]:
        del sys.modules[name]


@pytest.mark.usefixtures("installed")
def test_a_miss_loads_the_plugin_s_task_and_group() -> None:
    assert "probe" not in tasks
    assert tasks.get("probe").option_names == ("repeats",)
    assert tasks.origin("probe").startswith("axes_demo_plugin.run")
    assert "noise" in groups
    assert "noise" in run_keys()


@pytest.mark.usefixtures("installed")
def test_a_miss_loads_the_plugin_s_model_type() -> None:
    from annfactory.models import model_types  # issue 10's model type registry (P1)

    assert "tower" not in model_types
    spec = annfactory.parse_run(
        {"model": {"type": "tower", "in_features": 8, "out_features": 2}}
    )
    layers = spec.network.layers
    assert [layer.name for layer in layers] == ["floor1", "floor2", "floor3", "out"]
    assert [layer.out_features for layer in layers] == [64, 32, 16, 2]
    assert [layer.activation.name for layer in layers] == [*["relu"] * 3, "identity"]
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.florrs: unknown tower key 'florrs'\. Did you mean 'floors'\?",
    ):
        annfactory.parse_run({"model": {"type": "tower", "florrs": 2}})
    with pytest.raises(
        UnknownNameError,
        match=r"^model\.type: unknown model type 'towr'\. Did you mean 'tower'\?",
    ):
        annfactory.parse_run({"model": {"type": "towr"}})


@pytest.mark.usefixtures("installed")
def test_the_plugin_s_group_is_parsed_into_the_spec_and_round_trips() -> None:
    model = annfactory.to_spec(annfactory.compose(["model=mlp"])).to_dict()["model"]
    spec = annfactory.parse_run({"model": model, "noise": "uniform"})
    assert spec.extras == {"noise": {"name": "uniform", "width": 1.0}}
    assert annfactory.parse_run(spec.to_dict()) == spec
    with pytest.raises(
        UnknownNameError,
        match=r"^noise\.name: unknown noise 'gausian'\. Did you mean 'gaussian'\?",
    ):
        annfactory.parse_run({"model": model, "noise": "gausian"})


@pytest.mark.slow
def test_help_lists_the_plugin_s_group_task_and_model(run_cli: Any) -> None:
    result = run_cli("--help", env=ENV)
    assert result.returncode == 0, result.stderr
    models = "cnn, demo, gru, lstm, mlp, resmlp, tower, transformer"
    assert f"\nmodel: {models}\n" in result.stdout
    assert "\nnoise: gaussian, uniform\n" in result.stdout
    tasks = (
        "activations, diagnose, evaluate, export, forward, init_report, predict, "
        "probe, train"
    )
    assert f"\ntask: {tasks}\n" in result.stdout


BAD = [
    (
        ["model=towr"],
        "model: unknown model 'towr'. Did you mean 'tower'?\n"
        "  Valid models: cnn, demo, gru, lstm, mlp, resmlp, tower, transformer.",
    ),
    (
        ["model=tower", "model.florrs=2"],
        "model.florrs: unknown key 'florrs' in model. Did you mean 'floors'?\n"
        "  Valid keys: floors, in_features, out_features, type, width.",
    ),
    (
        ["task=prbe"],
        "task: unknown task 'prbe'. Did you mean 'probe'?\n"
        "  Valid tasks: activations, diagnose, evaluate, export, forward, "
        "init_report, predict, probe, train.",
    ),
    (
        ["task=probe", "task.repeets=3"],
        "task.repeets: unknown key 'repeets' for task 'probe'. Did you mean "
        "'repeats'?\n  Valid keys: repeats.",
    ),
    (
        ["+noise=gausian"],
        "noise: unknown noise 'gausian'. Did you mean 'gaussian'?\n"
        "  Valid noises: gaussian, uniform.",
    ),
    (
        ["+noise=gaussian", "noise.sdt=1"],
        "noise.sdt: unknown parameter 'sdt' for noise 'gaussian'. Did you mean "
        "'std'?\n  Valid parameters: std.",
    ),
    (
        ["noize=gaussian"],
        "noize: unknown key 'noize' in the config. Did you mean 'noise'?\n"
        "  Valid keys: activation, batch_size, compile, data, device, dtype, init, "
        "model, noise, optimizer, seed, task.",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_the_override_check_knows_the_plugin_s_names_and_keys(
    run_cli: Any, args: list[str], message: str
) -> None:
    result = run_cli(*args, env=ENV)
    assert result.returncode == 1
    assert result.stderr == f"{PREFIX}{message}\n"
    assert not result.run_dir.exists()


@pytest.mark.slow
@pytest.mark.usefixtures("installed")
def test_a_sweep_over_the_plugin_s_group_shows_its_task_s_metrics(
    run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli(
        "-m", "task=probe", "model=tower", "+noise=gaussian,uniform", env=ENV
    )
    assert result.returncode == 0, result.stderr
    sweep = tmp_path / "multirun"
    with (sweep / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["probe.noise"] for row in rows] == ["gaussian", "uniform"]
    assert all(float(row["probe.output_std"]) > 0 for row in rows)
    assert "| probe.noise | probe.output_mean | probe.output_std |" in result.stdout
    # Each job's spec.yaml holds the group's value, which loads back into the spec,
    # and the tower's layers.
    for job, noise in enumerate(
        ({"name": "gaussian", "std": 0.1}, {"name": "uniform", "width": 1.0})
    ):
        spec = annfactory.load_spec(sweep / str(job))
        assert spec.extras == {"noise": noise}
        assert [layer.out_features for layer in spec.network.layers] == [64, 32, 16, 2]
