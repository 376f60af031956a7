"""Saved runs and determinism.

A run directory holds ``spec.yaml`` and ``weights.safetensors``; ``load_run`` rebuilds
the model from them (identical state dict, identical outputs), validates the spec like
a fresh config, and never unpickles. A failed run leaves an earlier run's files as they
were. The same config and seed give bit-identical weights and outputs in every process
and on every build path: a fresh build, ``load_run``, and a meta build materialized.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
import yaml
from safetensors.torch import load_file, save_file

import annfactory
from annfactory import ConfigError, RunSpec, load_run, load_spec
from annfactory.factory import build_network, materialize
from annfactory.runs import (
    FORMAT_VERSION,
    METRICS_FILE,
    SPEC_FILE,
    WEIGHTS_FILE,
    save_run,
)
from annfactory.tasks import TaskContext, run_named_task, save_model
from annfactory.tasks.forward import random_input

RunCli = Callable[..., Any]

#: A sequential network with both norm layers (batch_norm has buffers) and dropout.
NORMS = {
    "model": {
        "type": "sequential",
        "in_features": 6,
        "layers": {
            "fc1": {"type": "linear", "out_features": 8, "activation": "tanh"},
            "bn1": {"type": "batch_norm"},
            "drop1": {"type": "dropout", "p": 0.1},
            "fc2": {
                "type": "linear",
                "out_features": 5,
                "activation": "gelu",
                "weight_init": "orthogonal",
            },
            "ln2": {"type": "layer_norm"},
            "out": {"type": "linear", "out_features": 3, "activation": "log_softmax"},
        },
    },
    "seed": 7,
    "batch_size": 4,
}

#: Specs to run through every build path, by id.
SPECS: dict[str, Callable[[], RunSpec]] = {
    "demo": lambda: annfactory.to_spec(annfactory.compose(["model=demo"])),
    "mlp-seed-3": lambda: annfactory.to_spec(
        annfactory.compose(["model=mlp", "seed=3", "init=kaiming_uniform"])
    ),
    "demo-batch-norm": lambda: annfactory.to_spec(
        annfactory.compose(["+layer@model.layers.norm=batch_norm"])
    ),
    "norms": lambda: annfactory.parse_run(NORMS),
    "norms-float64": lambda: annfactory.parse_run({**NORMS, "dtype": "float64"}),
    "norms-bfloat16": lambda: annfactory.parse_run({**NORMS, "dtype": "bfloat16"}),
}


def make_run(directory: Path, spec: RunSpec) -> Path:
    """Run the forward task of ``spec`` into ``directory``, as the command line does."""
    directory.mkdir(parents=True, exist_ok=True)
    run_named_task(None, spec, directory, out=io.StringIO())
    return directory


def assert_identical(
    first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]
) -> None:
    """Same keys in the same order, same dtypes, same bits."""
    assert list(first) == list(second)
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].shape == second[name].shape, name
        assert torch.equal(first[name], second[name]), name


def outputs(model: torch.nn.Module, spec: RunSpec) -> torch.Tensor:
    x = random_input(spec, torch.device(spec.device), getattr(torch, spec.dtype))
    model.eval()
    with torch.no_grad():
        return model(x)


def edit_spec(run: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load((run / SPEC_FILE).read_text())
    edit(data)
    (run / SPEC_FILE).write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def demo_spec() -> RunSpec:
    return SPECS["demo"]()


@pytest.fixture
def demo_run(tmp_path: Path, demo_spec: RunSpec) -> Path:
    return make_run(tmp_path / "run", demo_spec)


# ------------------------------------------------------------------------------------
# load_run: a round trip
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_load_run_rebuilds_the_same_state_and_outputs(
    tmp_path: Path, name: str
) -> None:
    spec = SPECS[name]()
    run = make_run(tmp_path / name, spec)
    fresh = build_network(spec)
    loaded = load_run(run)

    assert loaded.spec == spec.network
    assert annfactory.load_spec(run) == spec
    assert_identical(fresh.state_dict(), loaded.state_dict())
    assert torch.equal(outputs(fresh, spec), outputs(loaded, spec))
    # requires_grad and the module tree are those of a fresh build; a loaded run
    # is for inference, so it is in eval mode.
    assert [p.requires_grad for p in loaded.parameters()] == [
        p.requires_grad for p in fresh.parameters()
    ]
    assert not any(module.training for module in loaded.modules())
    assert [n for n, _ in loaded.named_modules()] == [
        n for n, _ in fresh.named_modules()
    ]


def test_load_run_keeps_trained_buffers(tmp_path: Path) -> None:
    spec = annfactory.parse_run(NORMS)
    model = build_network(spec)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 6, generator=torch.Generator().manual_seed(1)))
        model.get_submodule("fc2").weight.add_(1.0)
    context = TaskContext(spec=spec, options=None, output_dir=tmp_path)
    save_model(context, model)
    assert context.commit() == [SPEC_FILE, WEIGHTS_FILE]

    loaded = load_run(tmp_path)
    assert_identical(model.state_dict(), loaded.state_dict())
    norm = loaded.get_submodule("bn1")
    assert int(norm.num_batches_tracked) == 1
    assert not torch.equal(norm.running_mean, torch.zeros(8))
    assert torch.equal(outputs(model, spec), outputs(loaded, spec))


def test_a_loaded_run_is_in_eval_mode_and_train_fine_tunes_it(
    tmp_path: Path,
) -> None:
    """A forward pass of a loaded run changes nothing in it (issue 19): its batch
    norm uses the saved running statistics; ``.train()`` makes it trainable again."""
    spec = annfactory.parse_run(NORMS)
    model = build_network(spec)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 6, generator=torch.Generator().manual_seed(1)))
    save_run(tmp_path, spec, model)
    loaded = load_run(tmp_path)
    saved = {name: tensor.clone() for name, tensor in loaded.state_dict().items()}
    row = torch.randn(1, 6, generator=torch.Generator().manual_seed(2))

    with torch.no_grad():
        first, second = loaded(row), loaded(row)

    assert not loaded.training
    assert torch.equal(first, second)
    assert_identical(saved, loaded.state_dict())
    model.eval()
    with torch.no_grad():
        assert torch.equal(first, model(row))
    # Fine-tuning: .train() turns batch statistics and dropout back on.
    loaded.train()
    assert all(module.training for module in loaded.modules())
    loaded(torch.randn(4, 6))
    assert int(loaded.get_submodule("bn1").num_batches_tracked) == 2


# ------------------------------------------------------------------------------------
# save_run: saving is a function of a directory, not of a task
# ------------------------------------------------------------------------------------


def test_save_run_writes_what_the_forward_task_saves(
    tmp_path: Path, demo_spec: RunSpec, demo_run: Path
) -> None:
    model = build_network(demo_spec)
    directory = tmp_path / "checkpoints" / "step-1"  # created by save_run
    written = save_run(directory, demo_spec, model)

    assert written == [directory / SPEC_FILE, directory / WEIGHTS_FILE]
    assert sorted(p.name for p in directory.iterdir()) == [SPEC_FILE, WEIGHTS_FILE]
    for name in (SPEC_FILE, WEIGHTS_FILE):
        assert (directory / name).read_bytes() == (demo_run / name).read_bytes()
    assert load_spec(directory) == demo_spec
    assert_identical(model.state_dict(), load_run(directory).state_dict())


def test_save_run_of_a_trained_model_loads_back_its_values(
    tmp_path: Path, demo_spec: RunSpec
) -> None:
    model = build_network(demo_spec)
    with torch.no_grad():
        model.get_submodule("linear1").weight.mul_(3.0)
    save_run(tmp_path, demo_spec, model)
    loaded = load_run(tmp_path)
    assert_identical(model.state_dict(), loaded.state_dict())
    assert torch.equal(outputs(model, demo_spec), outputs(loaded, demo_spec))


def test_save_run_writes_metrics_with_null_for_non_finite_numbers(
    tmp_path: Path, demo_spec: RunSpec
) -> None:
    metrics = {"loss": float("nan"), "steps": [1, 2], "best": {"gap": -math.inf}}
    written = save_run(tmp_path, demo_spec, build_network(demo_spec), metrics)
    assert written[-1] == tmp_path / METRICS_FILE
    assert json.loads((tmp_path / METRICS_FILE).read_text()) == {
        "loss": None,
        "steps": [1, 2],
        "best": {"gap": None},
    }


def test_save_run_on_meta_writes_the_spec_only(
    tmp_path: Path, demo_spec: RunSpec
) -> None:
    spec = replace(demo_spec, device="meta")
    written = save_run(tmp_path, spec, build_network(spec))
    assert written == [tmp_path / SPEC_FILE]
    assert not (tmp_path / WEIGHTS_FILE).exists()
    assert load_spec(tmp_path) == spec


def test_a_failed_save_run_leaves_the_saved_weights_intact(
    tmp_path: Path, demo_spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_run(tmp_path, demo_spec, build_network(demo_spec))
    before = (tmp_path / WEIGHTS_FILE).read_bytes()

    def fail_half_way(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"half written")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", fail_half_way)
    trained = build_network(demo_spec)
    with torch.no_grad():
        trained.get_submodule("linear1").weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_run(tmp_path, demo_spec, trained)
    # The saved weights are intact (the new ones were written beside them), and
    # the half-written file is gone.
    assert (tmp_path / WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPEC_FILE, WEIGHTS_FILE]
    fresh = build_network(demo_spec).state_dict()
    assert_identical(fresh, load_run(tmp_path).state_dict())
    monkeypatch.undo()
    save_run(tmp_path, demo_spec, trained)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPEC_FILE, WEIGHTS_FILE]
    assert_identical(trained.state_dict(), load_run(tmp_path).state_dict())


def test_load_run_onto_the_meta_device(demo_run: Path, demo_spec: RunSpec) -> None:
    model = load_run(demo_run, device="meta")
    state = model.state_dict()
    fresh = build_network(demo_spec).state_dict()
    assert all(tensor.is_meta for tensor in state.values())
    assert {k: v.shape for k, v in state.items()} == {
        k: v.shape for k, v in fresh.items()
    }
    y = model(torch.empty(5, 3, device="meta"))
    assert y.is_meta
    assert y.shape == (5, 2)


def test_load_run_takes_the_spec_file_too(demo_run: Path) -> None:
    assert_identical(
        load_run(demo_run / SPEC_FILE).state_dict(), load_run(demo_run).state_dict()
    )


def test_load_run_takes_the_weights_file_too(demo_run: Path) -> None:
    weights = demo_run / WEIGHTS_FILE
    assert annfactory.load_spec(weights) == annfactory.load_spec(demo_run)
    assert_identical(load_run(weights).state_dict(), load_run(demo_run).state_dict())
    # Another name: those weights, with the spec of the directory they are in.
    model = load_run(demo_run)
    with torch.no_grad():
        model.linear1.weight.add_(1.0)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(demo_run / "tuned.safetensors"),
    )
    assert_identical(
        load_run(demo_run / "tuned.safetensors").state_dict(), model.state_dict()
    )


@pytest.mark.parametrize("name", ["metrics.json", "summary.txt"])
def test_load_run_of_another_file_of_a_run_asks_for_the_directory(
    demo_run: Path, name: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_run(demo_run / name)
    assert str(info.value) == (
        f"{demo_run / name}: is not a run directory, nor its spec.yaml or "
        f"weights.safetensors.\n  Pass the run directory: load_run({str(demo_run)!r})."
    )
    with pytest.raises(ConfigError, match=r"is not a run directory"):
        annfactory.load_spec(demo_run / name)


def test_a_spec_file_that_is_not_text_is_refused(demo_run: Path) -> None:
    (demo_run / SPEC_FILE).write_bytes((demo_run / WEIGHTS_FILE).read_bytes())
    with pytest.raises(
        ConfigError, match=r"spec\.yaml: is not a spec: it is not UTF-8"
    ):
        load_run(demo_run)


def test_a_run_made_on_meta_loads_onto_meta(tmp_path: Path, demo_spec: RunSpec) -> None:
    run = make_run(tmp_path / "run", replace(demo_spec, device="meta"))
    assert not (run / WEIGHTS_FILE).exists()
    fresh = build_network(demo_spec).state_dict()
    for model in (load_run(run, device="meta"), load_run(run)):
        state = model.state_dict()
        assert all(tensor.is_meta for tensor in state.values())
        assert {k: (v.shape, v.dtype) for k, v in state.items()} == {
            k: (v.shape, v.dtype) for k, v in fresh.items()
        }
        assert model(torch.empty(5, 3, device="meta")).shape == (5, 2)
    # There are no values to load onto a real device.
    with pytest.raises(ConfigError, match=r"no saved weights here.*\n.*device='meta'"):
        load_run(run, device="cpu")


@pytest.mark.slow
def test_load_run_gives_the_same_outputs_in_another_process(
    tmp_path: Path,
) -> None:
    spec = annfactory.parse_run(NORMS)
    run = make_run(tmp_path / "run", spec)
    code = (
        "import sys, torch, annfactory\n"
        "from annfactory.tasks.forward import random_input\n"
        "model = annfactory.load_run(sys.argv[1]).eval()\n"
        "spec = annfactory.load_spec(sys.argv[1])\n"
        "x = random_input(spec, torch.device('cpu'), torch.float32)\n"
        "with torch.no_grad():\n"
        "    y = model(x)\n"
        "print(repr([float(t.double().sum()) for t in model.state_dict().values()]))\n"
        "print(repr([float(v) for v in y.double().flatten()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    model = build_network(spec)
    state_sums = [float(t.double().sum()) for t in model.state_dict().values()]
    values = [float(v) for v in outputs(model, spec).double().flatten()]
    assert done.stdout.splitlines() == [repr(state_sums), repr(values)]


# ------------------------------------------------------------------------------------
# load_run: what it refuses
# ------------------------------------------------------------------------------------

CANARY_MODULE = """\
from pathlib import Path

Path(__file__).with_name("canary_imported").write_text("imported")


def boom(*args, **kwargs):
    Path(__file__).with_name("canary_called").write_text("called")
"""


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module ``canary_mod`` on sys.path that leaves a file when imported (and
    another when ``canary_mod.boom`` is called); returns its folder."""
    folder = tmp_path / "canary"
    folder.mkdir()
    (folder / "canary_mod.py").write_text(CANARY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "canary_mod", raising=False)
    return folder


def _layer(data: dict[str, Any], name: str = "linear1") -> dict[str, Any]:
    layer: dict[str, Any] = data["model"]["layers"][name]
    return layer


TAMPERED: list[Any] = [
    pytest.param(
        lambda d: _layer(d).update(activation="canary_mod.boom"),
        r"^model\.layers\.linear1\.activation: unknown activation 'canary_mod\.boom'",
        id="activation-dotted-path",
    ),
    pytest.param(
        lambda d: _layer(d).update(activation={"name": "os.system"}),
        r"^model\.layers\.linear1\.activation\.name: unknown activation 'os\.system'",
        id="activation-os-system",
    ),
    pytest.param(
        lambda d: _layer(d).update(type="canary_mod.boom"),
        r"^model\.layers\.linear1\.type: unknown layer type 'canary_mod\.boom'",
        id="layer-type-dotted-path",
    ),
    pytest.param(
        lambda d: _layer(d).update(weight_init={"name": "canary_mod.boom"}),
        r"^model\.layers\.linear1\.weight_init\.name: unknown init 'canary_mod\.boom'",
        id="init-dotted-path",
    ),
    pytest.param(
        lambda d: _layer(d)["activation"].update(_target_="canary_mod.boom"),
        r"^model\.layers\.linear1\.activation\._target_: .*never imported or called",
        id="target-in-activation",
    ),
    pytest.param(
        lambda d: _layer(d).update(_target_="canary_mod.boom"),
        r"^model\.layers\.linear1\._target_: .*never imported or called",
        id="target-in-layer",
    ),
    pytest.param(
        lambda d: d.update(_target_="canary_mod.boom"),
        r"^_target_: .*never imported or called",
        id="target-at-the-top",
    ),
    pytest.param(
        lambda d: d["model"].update(type="canary_mod.boom"),
        r"^model\.type: unknown model type 'canary_mod\.boom'",
        id="model-type",
    ),
    pytest.param(
        lambda d: d.update(device="canary_mod"),
        r"^device: unknown device 'canary_mod'",
        id="device",
    ),
]


@pytest.mark.parametrize(("edit", "pattern"), TAMPERED)
def test_a_tampered_spec_is_refused_without_importing_anything(
    demo_run: Path,
    canary: Path,
    edit: Callable[[dict[str, Any]], None],
    pattern: str,
) -> None:
    # Control: the canary fires when the module is imported.
    done = subprocess.run(
        [sys.executable, "-c", "import canary_mod"],
        cwd=canary,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0
    assert (canary / "canary_imported").exists()
    (canary / "canary_imported").unlink()

    edit_spec(demo_run, edit)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_run(demo_run)
    assert len(str(info.value).splitlines()) <= 3
    assert "canary_mod" not in sys.modules
    assert not (canary / "canary_imported").exists()
    assert not (canary / "canary_called").exists()


# ------------------------------------------------------------------------------------
# Format versions
# ------------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"


def test_a_saved_spec_records_its_format_version(demo_run: Path) -> None:
    text = (demo_run / SPEC_FILE).read_text()
    assert text.startswith(f"format_version: {FORMAT_VERSION}\nmodel:\n")
    assert FORMAT_VERSION == 1
    # The data of a saved spec.yaml is still a spec that parse_run reads as it is.
    assert annfactory.parse_run(yaml.safe_load(text)) == load_spec(demo_run)


def test_runs_saved_before_format_versions_still_load(
    demo_run: Path, demo_spec: RunSpec
) -> None:
    # tests/fixtures/runs/ holds runs saved by the release before versions
    # (test_run_fixtures.py checks their outputs); they must stay unversioned.
    fixtures = sorted(FIXTURES.glob(f"*/{SPEC_FILE}"))
    assert len(fixtures) == 4
    for spec_file in fixtures:
        assert "format_version" not in yaml.safe_load(spec_file.read_text())
    versioned = load_run(demo_run)
    edit_spec(demo_run, lambda data: data.pop("format_version"))
    assert "format_version" not in (demo_run / SPEC_FILE).read_text()
    assert load_spec(demo_run) == demo_spec
    unversioned = load_run(demo_run)
    assert_identical(versioned.state_dict(), unversioned.state_dict())
    assert torch.equal(outputs(versioned, demo_spec), outputs(unversioned, demo_spec))


def test_a_spec_of_a_newer_format_is_refused(demo_run: Path) -> None:
    newer = FORMAT_VERSION + 1
    # A newer format may hold keys this release does not know: the version is
    # what the message names.
    edit_spec(
        demo_run, lambda data: data.update(format_version=newer, optimizer="adam")
    )
    expected = (
        f"{demo_run / SPEC_FILE}: format_version {newer} is newer than annfactory "
        f"{annfactory.__version__} reads format_version {FORMAT_VERSION}.\n"
        "  Load the run with the newer annfactory that saved it."
    )
    for load in (load_run, load_spec):
        with pytest.raises(ConfigError) as info:
            load(demo_run)
        assert str(info.value) == expected


def test_the_readme_shows_the_newer_format_message(
    tmp_path: Path, demo_spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run(tmp_path / "runs" / "old", demo_spec)
    edit_spec(run, lambda data: data.update(format_version=2))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_run("runs/old")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    shown = '>>> annfactory.load_run("runs/old")\nannfactory.errors.ConfigError: '
    assert shown + str(info.value) + "\n```" in readme


@pytest.mark.parametrize("version", [0, -1, "1", "two", True, 1.0, None, [1]])
def test_a_format_version_that_is_no_version_is_refused(
    demo_run: Path, version: Any
) -> None:
    edit_spec(demo_run, lambda data: data.update(format_version=version))
    with pytest.raises(
        ConfigError,
        match=rf"spec\.yaml: format_version {re.escape(repr(version))} is not a "
        r"format version \(annfactory .* reads format_version 1\)\.\n  Restore",
    ):
        load_run(demo_run)


def test_a_spec_that_is_not_yaml_is_refused(demo_run: Path) -> None:
    (demo_run / SPEC_FILE).write_text("model: {layers: [\n")
    with pytest.raises(ConfigError, match=r"spec\.yaml: is not valid YAML"):
        load_run(demo_run)


def test_a_yaml_object_tag_in_the_spec_is_never_constructed(
    demo_run: Path, canary: Path
) -> None:
    text = (demo_run / SPEC_FILE).read_text()
    (demo_run / SPEC_FILE).write_text(
        text.replace("seed: 0", "seed: !!python/object/apply:canary_mod.boom []")
    )
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_run(demo_run)
    assert "canary_mod" not in sys.modules
    assert not (canary / "canary_called").exists()


def _resize_linear1(data: dict[str, Any]) -> None:
    _layer(data)["out_features"] = 4


MISMATCHES: list[Any] = [
    pytest.param(
        "spec",
        _resize_linear1,
        r"linear1\.weight is F32 \[3, 3\]; the spec says F32 \[4, 3\]",
        id="other-shape",
    ),
    pytest.param(
        "weights",
        lambda w: w.update(extra=torch.zeros(2)),
        r"holds tensors the spec's network lacks: \['extra'\]",
        id="extra-tensor",
    ),
    pytest.param(
        "weights",
        lambda w: w.pop("out.bias"),
        r"has no tensor 'out\.bias'",
        id="missing-tensor",
    ),
    pytest.param(
        "weights",
        lambda w: w.update({"linear1.weight": w["linear1.weight"].double()}),
        r"linear1\.weight is F64 \[3, 3\]; the spec says F32 \[3, 3\]",
        id="other-dtype",
    ),
]


@pytest.mark.parametrize(("what", "edit", "pattern"), MISMATCHES)
def test_weights_that_do_not_match_the_spec_are_refused(
    demo_run: Path, what: str, edit: Callable[[Any], None], pattern: str
) -> None:
    if what == "spec":
        edit_spec(demo_run, edit)
    else:
        weights = load_file(str(demo_run / WEIGHTS_FILE))
        edit(weights)
        save_file(weights, str(demo_run / WEIGHTS_FILE))
    with pytest.raises(ConfigError, match=pattern) as info:
        load_run(demo_run)
    message = str(info.value)
    assert message.startswith(f"{demo_run / WEIGHTS_FILE}: ")
    assert "belong to another spec" in message
    assert len(message.splitlines()) <= 3


class Canary:
    """Leaves a file when unpickled: pickle calls what ``__reduce__`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (_write_canary, (str(self.path), "unpickled"))


def _write_canary(path: str, text: str) -> str:
    Path(path).write_text(text)
    return text


@pytest.mark.parametrize("protocol", ["torch.save", "pickle"])
def test_a_pickled_weights_file_is_refused_without_unpickling(
    demo_run: Path, tmp_path: Path, protocol: str
) -> None:
    fired = tmp_path / "canary_unpickled"
    weights = demo_run / WEIGHTS_FILE
    payload = {"linear1.weight": torch.zeros(3, 3), "canary": Canary(fired)}
    if protocol == "torch.save":
        torch.save(payload, weights)
    else:
        weights.write_bytes(pickle.dumps(payload, protocol=4))
    # Control: unpickling the file does fire the canary.
    if protocol == "torch.save":
        # From bytes: torch.load hands a path ending in .safetensors to safetensors.
        torch.load(io.BytesIO(weights.read_bytes()), weights_only=False)
    else:
        pickle.loads(weights.read_bytes())
    assert fired.read_text() == "unpickled"
    fired.unlink()

    with pytest.raises(ConfigError, match=r"is a pickle .* never unpickles") as info:
        load_run(demo_run)
    assert str(info.value).startswith(f"{weights}: ")
    assert not fired.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"not a safetensors file", b"\x10\x00\x00\x00\x00\x00\x00\x00{broken"],
    ids=["empty", "text", "broken-header"],
)
def test_a_weights_file_that_is_not_safetensors_is_refused(
    demo_run: Path, content: bytes
) -> None:
    (demo_run / WEIGHTS_FILE).write_bytes(content)
    with pytest.raises(ConfigError, match=r"weights\.safetensors: cannot be read"):
        load_run(demo_run)


def test_a_truncated_weights_file_is_refused(demo_run: Path) -> None:
    weights = demo_run / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ConfigError, match=r"weights\.safetensors: cannot be read"):
        load_run(demo_run)


def test_missing_files_are_named(tmp_path: Path, demo_run: Path) -> None:
    with pytest.raises(ConfigError, match=r"no saved spec here"):
        load_run(tmp_path / "nowhere")
    (demo_run / WEIGHTS_FILE).unlink()
    with pytest.raises(ConfigError, match=r"no saved weights here.*\n.*device=meta"):
        load_run(demo_run)


def test_a_loaded_model_is_checked_against_this_machine_s_memory(
    demo_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annfactory import factory

    monkeypatch.setattr(factory, "available_bytes", lambda device: 100)
    with pytest.raises(annfactory.errors.MemoryLimitError, match="device=meta"):
        load_run(demo_run)
    assert load_run(demo_run, device="meta").linear1.weight.is_meta


# ------------------------------------------------------------------------------------
# A failed run never overwrites or deletes what an earlier run saved
# ------------------------------------------------------------------------------------

SAVED = ("metrics.json", "summary.txt", SPEC_FILE, WEIGHTS_FILE)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in SAVED}


def test_a_task_that_fails_after_writing_leaves_earlier_files(
    demo_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annfactory.tasks import forward

    before = snapshot(demo_run)

    def fail_while_saving(context: TaskContext, model: Any) -> None:
        context.write_text(SPEC_FILE, "half written\n")
        raise RuntimeError("disk full")

    monkeypatch.setattr(forward, "save_model", fail_while_saving)
    other = annfactory.to_spec(annfactory.compose(["model=mlp"]))
    with pytest.raises(RuntimeError, match="disk full"):
        run_named_task(None, other, demo_run, out=io.StringIO())
    assert snapshot(demo_run) == before
    assert not list(demo_run.glob(".staging-*"))
    assert not list(demo_run.parent.glob(".staging-*"))  # failed: not kept


FAILING_RUNS = [
    pytest.param(["seed=-1"], "seed: ", id="validation"),
    pytest.param(
        ["model=mlp", "model.width=200000", "model.depth=8"],
        "model: the run needs",
        id="build-memory-guard",
    ),
    pytest.param(
        ["device=cuda"],
        "device: 'cuda' is not available",
        id="build-no-cuda",
        marks=pytest.mark.skipif(
            torch.cuda.is_available(), reason="this machine has CUDA"
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), FAILING_RUNS)
def test_a_failed_run_leaves_the_earlier_run_s_files(
    run_cli: RunCli, args: list[str], message: str
) -> None:
    first = run_cli("model=demo")
    assert first.returncode == 0, first.stderr
    before = snapshot(first.run_dir)
    # A later, different run into the same directory fails.
    failed = run_cli(*args)
    assert failed.returncode != 0
    assert message in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert snapshot(failed.run_dir) == before
    assert not list(failed.run_dir.glob(".staging-*"))
    assert not list(failed.run_dir.parent.glob(".staging-*"))
    assert_identical(
        load_run(first.run_dir).state_dict(),
        build_network(annfactory.to_spec(annfactory.compose([]))).state_dict(),
    )


@pytest.mark.slow
def test_a_failed_run_leaves_the_earlier_run_s_hydra_record(run_cli: RunCli) -> None:
    first = run_cli("model=demo")
    assert first.returncode == 0, first.stderr
    record = sorted((first.run_dir / ".hydra").glob("*.yaml"))
    assert [path.name for path in record] == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]
    assert "model=demo" in (first.run_dir / ".hydra" / "overrides.yaml").read_text()
    before = {path.name: path.read_bytes() for path in record}
    failed = run_cli("seed=-1")
    assert failed.returncode != 0
    after = {path.name: path.read_bytes() for path in record}
    assert after == before


# ------------------------------------------------------------------------------------
# Determinism: every process, every build path
# ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["model=demo", "seed=4"],
        ["model=mlp", "seed=11", "activation=tanh", "init=xavier_uniform"],
        ["+layer@model.layers.norm=batch_norm", "dtype=float64"],
    ],
    ids=["demo", "mlp", "batch-norm-float64"],
)
def test_two_processes_write_identical_files(
    run_cli: RunCli, tmp_path: Path, args: Sequence[str]
) -> None:
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    kept = tmp_path / "first"
    first.run_dir.rename(kept)
    second = run_cli(*args, fresh=True)  # another interpreter, another hash seed
    assert second.returncode == 0, second.stderr

    assert (kept / WEIGHTS_FILE).read_bytes() == (
        second.run_dir / WEIGHTS_FILE
    ).read_bytes()
    assert (kept / SPEC_FILE).read_bytes() == (second.run_dir / SPEC_FILE).read_bytes()
    assert json.loads((kept / "metrics.json").read_text()) == json.loads(
        (second.run_dir / "metrics.json").read_text()
    )
    assert first.stdout == second.stdout  # the printed output tensor included
    # And this process builds the same bits.
    spec = annfactory.to_spec(annfactory.compose(list(args)))
    saved = load_file(str(kept / WEIGHTS_FILE))  # sorted by name
    built = build_network(spec).state_dict()
    assert_identical({name: saved[name] for name in built}, dict(built))


@pytest.mark.parametrize("name", list(SPECS))
def test_a_meta_build_materialized_equals_a_fresh_build(name: str) -> None:
    spec = SPECS[name]()
    fresh = build_network(spec)
    meta = build_network(replace(spec, device="meta"))
    assert all(tensor.is_meta for tensor in meta.state_dict().values())

    materialized = materialize(meta, spec)
    assert materialized is meta
    assert_identical(fresh.state_dict(), materialized.state_dict())
    assert torch.equal(outputs(fresh, spec), outputs(materialized, spec))
    # The network's forward uses the materialized modules themselves.
    assert not any(t.is_meta for t in materialized.parameters())


@pytest.mark.parametrize("name", list(SPECS))
def test_every_build_path_gives_the_same_bits(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]()
    run = make_run(tmp_path / "run", spec)
    paths = {
        "fresh": build_network(spec),
        "again": build_network(spec),
        "load_run": load_run(run),
        "meta-then-materialize": materialize(
            build_network(replace(spec, device="meta")), spec
        ),
    }
    reference = paths["fresh"].state_dict()
    expected = outputs(paths["fresh"], spec)
    for path, model in paths.items():
        assert_identical(reference, model.state_dict())
        assert torch.equal(expected, outputs(model, spec)), path


def test_materialize_refuses_what_it_cannot_do(demo_spec: RunSpec) -> None:
    meta_spec = replace(demo_spec, device="meta")
    with pytest.raises(ConfigError, match=r"^device: cannot materialize on the meta"):
        materialize(build_network(meta_spec), meta_spec)
    with pytest.raises(ConfigError, match=r"^device: the network is not on the meta"):
        materialize(build_network(demo_spec), demo_spec)
    other = annfactory.to_spec(annfactory.compose(["model=mlp"]))
    with pytest.raises(ConfigError, match=r"^model: the spec describes another"):
        materialize(build_network(meta_spec), other)


def test_materialize_runs_the_memory_guard_first(
    demo_spec: RunSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annfactory import factory

    meta = build_network(replace(demo_spec, device="meta"))
    monkeypatch.setattr(factory, "available_bytes", lambda device: 10)
    with pytest.raises(annfactory.errors.MemoryLimitError):
        materialize(meta, demo_spec)
    assert all(tensor.is_meta for tensor in meta.state_dict().values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_is_refused_on_every_path_without_a_cuda_device(
    tmp_path: Path, demo_spec: RunSpec
) -> None:
    on_cuda = replace(demo_spec, device="cuda")
    # Every path refuses it up front, before allocating anything.
    with pytest.raises(annfactory.DeviceError, match=r"^device: 'cuda' is not"):
        build_network(on_cuda)
    with pytest.raises(annfactory.DeviceError, match=r"^device: 'cuda' is not"):
        materialize(build_network(replace(demo_spec, device="meta")), on_cuda)
    # In Python the fix is load_run's argument, not the command line's device=cpu.
    run = make_run(tmp_path / "run", demo_spec)
    with pytest.raises(
        annfactory.DeviceError,
        match=r"^device: 'cuda' is not available on this machine .*\.\n"
        r'  Pass device="cpu": load_run\(".*run", device="cpu"\)\.$',
    ):
        load_run(run, device="cuda")
    # A run saved on cuda names the device it used.
    edit_spec(run, lambda data: data.update(device="cuda"))
    with pytest.raises(
        annfactory.DeviceError, match=r"\(the device the run used\)\.\n.*device="
    ):
        load_run(run)
    assert load_run(run, device="cpu").spec == demo_spec.network


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["demo", "norms", "norms-float64"])
def test_cuda_builds_the_cpu_bits_on_every_path(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]()
    on_cuda = replace(spec, device="cuda")
    cpu_state = build_network(spec).state_dict()
    for model in (
        build_network(on_cuda),
        materialize(build_network(replace(spec, device="meta")), on_cuda),
        load_run(make_run(tmp_path / "run", spec), device="cuda"),
    ):
        assert all(t.device.type == "cuda" for t in model.state_dict().values())
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        assert_identical(cpu_state, state)


def test_no_file_descriptors_are_left_open(demo_run: Path) -> None:
    before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else 0
    for _ in range(5):
        load_run(demo_run)
    after = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else 0
    assert after <= before


def test_runs_of_one_process_share_a_staging_folder_removed_at_exit(
    tmp_path: Path,
) -> None:
    # In a sweep every job would otherwise make and remove its own staging folder;
    # removing a folder is slow on some file systems.
    script = f"""
import io, pathlib, annfactory
from annfactory.tasks import run_named_task
spec = annfactory.to_spec(annfactory.compose([]))
root = pathlib.Path({str(tmp_path)!r})
for job in range(3):
    run_named_task(None, spec, root / str(job), out=io.StringIO())
    print(sorted(p.name for p in root.glob(".staging-*")))
"""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert len(set(lines)) == 1  # one folder, the same for every run
    assert lines[0].startswith("['.staging-")
    assert not list(tmp_path.glob(".staging-*"))  # gone with the process
    for job in range(3):
        assert (tmp_path / str(job) / SPEC_FILE).is_file()
