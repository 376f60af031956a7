"""task=export: model.onnx and model.pt2, run and compared with the eager network.

Each export is made once per module (exporting takes seconds) and checked from the
outside: the ONNX file in onnxruntime (or, for bfloat16, which onnxruntime's CPU
kernels lack, in ONNX's reference evaluator), the ``.pt2`` file through
``torch.export.load``, both on batches of 1 and 7 rows, against the network that
``load_run`` rebuilds from the same run directory. Every bundled model
(``conf/model/*.yaml``) and every registered layer type is exported, so a new one is
tested the day it is added. The command lines run end to end at the bottom (slow).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import annfactory
from annfactory import ConfigError, layers
from annfactory.runs import load_run
from annfactory.seeding import input_ids, random_input
from annfactory.spec import RunSpec
from annfactory.tasks import export as export_task
from annfactory.tasks import run_named_task
from annfactory.tasks.export import (
    DEFAULT_OPSET,
    INPUT_NAME,
    ONNX_FILE,
    OUTPUT_NAME,
    PT2_FILE,
    TOLERANCES,
    ExportOptions,
    export_files,
    parse_options,
    tolerance,
)
from layer_samples import example_node, first_shape

#: Exports take seconds each: the full tier only (`make test`).
pytestmark = pytest.mark.heavy

RunCli = Callable[..., Any]

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
CONF = REPO / "src" / "annfactory" / "conf"
README = REPO / "README.md"
#: Every bundled model, found at test time (model=cnn and the like included).
MODELS = sorted(path.stem for path in (CONF / "model").glob("*.yaml"))
#: The batch sizes the dynamic batch dimension must take.
ROWS = (1, 7)
#: onnx's element type for each dtype of a run.
ONNX_TYPES = {
    "float32": onnx.TensorProto.FLOAT,
    "float64": onnx.TensorProto.DOUBLE,
    "float16": onnx.TensorProto.FLOAT16,
    "bfloat16": onnx.TensorProto.BFLOAT16,
}


def spec_of(overrides: Sequence[str]) -> RunSpec:
    return annfactory.to_spec(annfactory.compose(list(overrides)))


def export(
    spec: RunSpec,
    output_dir: Path | None,
    overrides: Sequence[str] = (),
    out: io.StringIO | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run task=export with ``options`` (``run``, ``opset``); the metrics."""
    return run_named_task(
        {"name": "export", **options},
        spec,
        output_dir,
        out=out or io.StringIO(),
        overrides=overrides,
    )


def batches(spec: RunSpec) -> list[torch.Tensor]:
    """Batches of 1 and 7 rows of the network's input, in its dtype."""
    generator = torch.Generator().manual_seed(7)
    dtype = getattr(torch, spec.dtype)
    ids = input_ids(spec)
    if ids is not None:  # a network that starts with an embedding takes ids
        shape = spec.network.input_shape
        return [
            torch.randint(0, ids, (rows, *shape), generator=generator) for rows in ROWS
        ]
    return [
        torch.randn(rows, *spec.network.input_shape, generator=generator).to(dtype)
        for rows in ROWS
    ]


def to_numpy(x: torch.Tensor) -> np.ndarray:
    if x.dtype == torch.bfloat16:
        import ml_dtypes

        return x.float().numpy().astype(ml_dtypes.bfloat16)
    return x.numpy()


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    """The ONNX file's output for ``x``: onnxruntime, or the reference evaluator for
    bfloat16 (onnxruntime has no CPU kernels for it)."""
    if x.dtype == torch.bfloat16:
        from onnx.reference import ReferenceEvaluator

        (y,) = ReferenceEvaluator(str(path)).run(None, {INPUT_NAME: to_numpy(x)})
    else:
        session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        (y,) = session.run(None, {INPUT_NAME: to_numpy(x)})
    return torch.from_numpy(np.asarray(y).astype(np.float64))


def assert_close_to(exported: torch.Tensor, eager: torch.Tensor, dtype: str) -> float:
    """``exported`` matches ``eager`` within the task's tolerance; the difference."""
    expected = eager.detach().double()
    assert exported.shape == expected.shape
    difference = float((exported.detach().double() - expected).abs().max())
    assert difference <= tolerance(dtype, float(expected.abs().max())), difference
    return difference


def assert_exports_run(directory: Path, spec: RunSpec) -> None:
    """Both files of ``directory`` take batches of 1 and 7 rows and agree with the
    network that load_run rebuilds from the same directory."""
    network = load_run(directory).eval()
    program = torch.export.load(directory / PT2_FILE).module()
    for x in batches(spec):
        with torch.no_grad():
            eager = network(x)
            pt2 = program(x)
        assert pt2.dtype == eager.dtype
        assert_close_to(pt2, eager, spec.dtype)
        assert_close_to(run_onnx(directory / ONNX_FILE, x), eager, spec.dtype)


# ------------------------------------------------------------------------------------
# The demo: the files, the metrics, the graph
# ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    directory = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    metrics = export(spec_of(["model=demo"]), directory, out=out)
    (directory / "printed.txt").write_text(out.getvalue())
    return directory, metrics


def test_the_demo_export_writes_both_files_and_the_run(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    directory, metrics = demo
    for name in (ONNX_FILE, PT2_FILE, "spec.yaml", "weights.safetensors"):
        assert (directory / name).is_file(), name
    assert not list(directory.glob(".staging-*"))
    saved = json.loads((directory / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    assert saved["task"] == "export"
    assert saved["total_params"] == 26
    record = saved["export"]
    assert record["onnx_bytes"] == (directory / ONNX_FILE).stat().st_size
    assert record["pt2_bytes"] == (directory / PT2_FILE).stat().st_size
    assert record["opset"] == DEFAULT_OPSET == 20
    assert record["checked_batch_sizes"] == [5, 1]
    assert record["onnx_runner"] == f"onnxruntime {onnxruntime.__version__}"
    assert record["source"] == "the config's model"
    assert saved["versions"]["torch"] == torch.__version__


def test_the_onnx_graph_has_a_dynamic_batch_and_the_recorded_opset(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    directory, metrics = demo
    model = onnx.load(str(directory / ONNX_FILE))
    onnx.checker.check_model(model)
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    assert opsets[""] == metrics["export"]["opset"]
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert (graph_input.name, graph_output.name) == (INPUT_NAME, OUTPUT_NAME)
    dims = [
        dim.dim_param or dim.dim_value for dim in graph_input.type.tensor_type.shape.dim
    ]
    assert dims == ["batch", 3]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert metrics["export"]["input"] == {"name": "input", "shape": ["batch", 3]}
    assert metrics["export"]["output"] == {"name": "output", "shape": ["batch", 2]}
    # The torch.export-based exporter: aten ops turned into ONNX ones, no
    # TorchScript-era custom domain.
    assert {node.op_type for node in model.graph.node} >= {"Gemm", "Sigmoid", "Relu"}


def test_the_demo_files_run_batches_of_1_and_7_rows(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    directory, _ = demo
    assert_exports_run(directory, spec_of(["model=demo"]))


def test_the_recorded_differences_are_those_of_the_seeded_batch(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    directory, metrics = demo
    spec = spec_of(["model=demo"])
    network = load_run(directory).eval()
    x = random_input(spec, torch.device("cpu"), torch.float32)
    checked = [x, x[:1]]
    with torch.no_grad():
        eager = [network(rows) for rows in checked]
        program = torch.export.load(directory / PT2_FILE).module()
        pt2 = [program(rows) for rows in checked]
    onnx_outputs = [run_onnx(directory / ONNX_FILE, rows) for rows in checked]
    record = metrics["export"]
    assert record["onnx_max_abs_difference"] == max(
        float((a - b.double()).abs().max())
        for a, b in zip(onnx_outputs, eager, strict=True)
    )
    assert record["pt2_max_abs_difference"] == max(
        float((a.double() - b.double()).abs().max())
        for a, b in zip(pt2, eager, strict=True)
    )
    scale = max(float(y.abs().max()) for y in eager)
    assert record["tolerance"] == pytest.approx(tolerance("float32", scale))
    assert record["onnx_max_abs_difference"] <= record["tolerance"]


def test_the_report_names_the_files_and_the_check(
    demo: tuple[Path, dict[str, Any]],
) -> None:
    directory, metrics = demo
    printed = (directory / "printed.txt").read_text()
    record = metrics["export"]
    assert printed.splitlines()[0] == (
        "export: 3 -> linear1(3, sigmoid) -> linear2(2, relu) -> "
        "out(2, softmax(dim=-1))"
    )
    assert (
        f"model.onnx: {record['onnx_bytes']:,} bytes, opset 20, input 'input' "
        "[batch, 3] -> output 'output' [batch, 2]"
    ) in printed
    assert f"model.pt2: {record['pt2_bytes']:,} bytes (torch.export.load)" in printed
    assert "on seeded batches of 5 rows and 1 row:" in printed
    assert f"tolerance for float32: {record['tolerance']:.3g}: ok" in printed


def test_the_readme_onnxruntime_lines_run_on_an_export(
    demo: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
        if "onnxruntime.InferenceSession" in block and "preprocessing.json" not in block
    ]
    code = [
        line for line in block.splitlines() if line and not line.startswith("import")
    ]
    assert len(code) == 5, code
    directory, _ = demo
    monkeypatch.chdir(directory)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec", dont_inherit=True), namespace)
    y = namespace["y"]
    assert y.shape == (7, 2)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)  # softmax rows
    assert namespace["session"].get_inputs()[0].shape == ["batch", 3]


def test_the_readme_shows_what_the_export_of_a_trained_run_prints(
    tmp_path: Path,
) -> None:
    """The README's export of a digits run, as printed (the run's path aside; the
    ONNX difference is onnxruntime's summation order, so its digits may vary)."""
    ((readme_dir, expected),) = [
        (run, shown)
        for run, shown in re.findall(
            r"```\n\$ python scripts/run\.py task=export task\.run=(\S+)\n(.*?)```",
            README.read_text(),
            re.S,
        )
        if "standardize(64" in shown  # the digits run's; a table run's is below
    ]
    cfg = annfactory.compose(["task=train", "model=mlp", "data=digits"])
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(cfg.task, resolve=True)
    run_dir = tmp_path / "trained"
    run_named_task(node, annfactory.to_spec(cfg), run_dir, out=io.StringIO())
    out = io.StringIO()
    export(spec_of(["task=export"]), tmp_path / "exported", out=out, run=str(run_dir))
    printed = out.getvalue().replace(str(run_dir), readme_dir).splitlines()
    lines = expected.splitlines()
    assert len(printed) == len(lines)
    for got, want in zip(printed, lines, strict=True):
        if "model.onnx in onnxruntime" in want:
            assert re.fullmatch(
                r"  model\.onnx in onnxruntime [\d.]+: max \|difference\| = "
                r"[\d.e+-]+",
                got,
            ), got
        else:
            assert got == want


# ------------------------------------------------------------------------------------
# Every bundled model, every layer type, every dtype
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_every_bundled_model_exports_and_runs(model: str, tmp_path: Path) -> None:
    spec = spec_of([f"model={model}"])
    metrics = export(spec, tmp_path)
    assert metrics["export"]["input"]["shape"] == [
        "batch",
        *spec.network.input_shape,
    ]
    assert_exports_run(tmp_path, spec)


#: Input shapes (one sample) to try, in order, for a layer type: the first one it
#: takes is used (a vector for the dense types, an image for a 2-D convolution).
def single_layer_spec(name: str, dtype: str = "float32") -> RunSpec:
    """A network of one layer of type ``name`` with its example options (tests'
    ``layer_samples``, which every registered type must have; a residual block gets
    its example body) on the first sample input shape it takes."""
    model = {
        "input_shape": list(first_shape(name)),
        "layers": {"x": example_node(name)},
    }
    return annfactory.parse_run({"model": model, "dtype": dtype})


def randomize_buffers(network: nn.Module) -> None:
    """Float buffers (running statistics, standardization) away from their
    identity values, so that the export has to carry them."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for buffer in network.buffers():
            if buffer.is_floating_point():
                values = torch.rand(buffer.shape, generator=generator) * 1.5 + 0.5
                buffer.copy_(values.to(buffer.dtype))


@pytest.mark.parametrize("name", layers.names())
def test_every_layer_type_exports_and_runs(name: str, tmp_path: Path) -> None:
    spec = single_layer_spec(name)
    network = annfactory.build_network(spec)
    randomize_buffers(network)
    network.eval()
    record = export_files(network, spec, tmp_path)
    assert record["onnx_max_abs_difference"] <= record["tolerance"]
    assert record["pt2_max_abs_difference"] <= record["tolerance"]
    program = torch.export.load(tmp_path / PT2_FILE).module()
    for x in batches(spec):
        with torch.no_grad():
            eager = network(x)
            assert_close_to(program(x), eager, "float32")
        assert_close_to(run_onnx(tmp_path / ONNX_FILE, x), eager, "float32")


#: The demo with every built-in layer type that carries state after its layers.
STACK = [
    "model=demo",
    "+layer@model.layers.norm=batch_norm",
    "+layer@model.layers.ln=layer_norm",
    "+layer@model.layers.scale=destandardize",
]


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_an_export_keeps_the_dtype(dtype: str, tmp_path: Path) -> None:
    spec = spec_of([*STACK, f"dtype={dtype}"])
    metrics = export(spec, tmp_path)
    record = metrics["export"]
    assert metrics["dtype"] == dtype
    model = onnx.load(str(tmp_path / ONNX_FILE))
    assert model.graph.input[0].type.tensor_type.elem_type == ONNX_TYPES[dtype]
    assert model.graph.output[0].type.tensor_type.elem_type == ONNX_TYPES[dtype]
    program = torch.export.load(tmp_path / PT2_FILE)
    weights = [p.dtype for p in program.state_dict.values() if p.is_floating_point()]
    assert set(weights) == {getattr(torch, dtype)}
    assert record["tolerance"] >= TOLERANCES[dtype][0]
    assert record["onnx_max_abs_difference"] <= record["tolerance"]
    if dtype == "bfloat16":
        assert record["onnx_runner"].startswith("onnx.reference (onnxruntime ")
        assert "has no CPU kernel for Gemm(13) in this dtype" in record["onnx_runner"]
    else:
        assert record["onnx_runner"] == f"onnxruntime {onnxruntime.__version__}"
    assert_exports_run(tmp_path, spec)


def test_the_tolerance_grows_with_the_dtype_and_the_output() -> None:
    assert tolerance("float64", 0.0) == 1e-10
    assert tolerance("float32", 100.0) == pytest.approx(1e-5 + 1e-3)
    ordered = [tolerance(dtype, 1.0) for dtype in ("float64", "float32", "float16")]
    assert ordered == sorted(ordered)
    assert tolerance("bfloat16", 1.0) > tolerance("float16", 1.0)
    assert set(TOLERANCES) == {"float32", "float64", "float16", "bfloat16"}


def test_equal_infinities_and_nans_do_not_count_as_differences() -> None:
    inf, nan = float("inf"), float("nan")
    eager = torch.tensor([[inf, nan, 1.0], [-inf, 2.0, 3.0]])
    assert export_task._difference(eager + 0.0, eager) == 0.0
    shifted = eager + torch.tensor([[0.0, 0.0, 0.5], [0.0, -0.25, 0.0]])
    assert export_task._difference(shifted, eager) == 0.5
    assert math.isnan(export_task._difference(eager.nan_to_num(), eager))
    assert math.isnan(export_task._difference(eager[:1], eager))
    flipped = eager.clone()
    flipped[0, 0] = -inf
    assert export_task._difference(flipped, eager) == inf


def test_an_export_beyond_the_tolerance_fails_and_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = export_task._run_onnx

    def off_by_a_little(path: Path, inputs: Any) -> tuple[list[torch.Tensor], str]:
        outputs, runner = real(path, inputs)
        return [y + 1e-3 for y in outputs], runner

    monkeypatch.setattr(export_task, "_run_onnx", off_by_a_little)
    with pytest.raises(
        ConfigError,
        match=r"^model: model\.onnx disagrees with the eager network: max "
        r"\|difference\| = 0\.001 over \[5, 1\] rows, above the float32 tolerance "
        r"1\.\d+e-05; nothing was saved\.\n  Export in a wider dtype",
    ):
        export(spec_of(["model=demo"]), tmp_path)
    assert not list(tmp_path.iterdir())
    # Called directly, export_files removes the files it wrote.
    spec = spec_of(["model=demo"])
    with pytest.raises(ConfigError, match=r"model\.onnx disagrees"):
        export_files(annfactory.build_network(spec).eval(), spec, tmp_path)
    assert not list(tmp_path.iterdir())


def test_an_export_of_a_single_row_batch_checks_that_row(tmp_path: Path) -> None:
    # torch.export needs two rows to keep the batch dimension dynamic; the check
    # still runs on the one row asked for.
    metrics = export(spec_of(["model=demo", "batch_size=1"]), tmp_path)
    assert metrics["export"]["checked_batch_sizes"] == [1]
    assert_exports_run(tmp_path, spec_of(["model=demo"]))


def test_an_older_opset_is_written_and_recorded(tmp_path: Path) -> None:
    metrics = export(spec_of(["model=demo"]), tmp_path, opset=18)
    assert metrics["export"]["opset"] == 18
    model = onnx.load(str(tmp_path / ONNX_FILE))
    assert {e.domain: e.version for e in model.opset_import}[""] == 18
    assert_exports_run(tmp_path, spec_of(["model=demo"]))


# ------------------------------------------------------------------------------------
# A saved (trained) run
# ------------------------------------------------------------------------------------

IRIS = ["task=train", "model=mlp", "data=iris", "task.epochs=20"]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, Any]]:
    """An iris run of task=train and its export with task.run."""
    run_dir = tmp_path_factory.mktemp("trained")
    cfg = annfactory.compose(IRIS)
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(cfg.task, resolve=True)
    run_named_task(node, annfactory.to_spec(cfg), run_dir, out=io.StringIO())
    export_dir = tmp_path_factory.mktemp("exported")
    metrics = export(spec_of(["task=export"]), export_dir, run=str(run_dir))
    return run_dir, export_dir, metrics


def test_a_trained_run_exports_with_its_standardization(
    trained: tuple[Path, Path, dict[str, Any]],
) -> None:
    run_dir, export_dir, metrics = trained
    assert metrics["export"]["source"] == f"the run {run_dir}"
    # The exported run is the trained one: same spec, same weights, byte for byte.
    for name in ("spec.yaml", "weights.safetensors"):
        assert (export_dir / name).read_bytes() == (run_dir / name).read_bytes()
    spec = annfactory.load_spec(run_dir)
    assert spec.network.layers[0].type == "standardize"
    # Raw iris rows in, the trained network's answers out.
    from sklearn.datasets import load_iris

    raw = torch.tensor(load_iris().data, dtype=torch.float32)
    network = load_run(run_dir).eval()
    with torch.no_grad():
        eager = network(raw)
    onnx_out = run_onnx(export_dir / ONNX_FILE, raw)
    assert_close_to(onnx_out, eager, "float32")
    with torch.no_grad():
        pt2 = torch.export.load(export_dir / PT2_FILE).module()(raw)
    assert_close_to(pt2, eager, "float32")
    accuracy = (onnx_out.argmax(1).numpy() == load_iris().target).mean()
    assert accuracy > 0.8, accuracy
    # Without the standardization the same rows give other answers: the graph
    # carries it.
    standardize = network.get_submodule(spec.network.layers[0].name)
    assert not torch.allclose(standardize.mean, torch.zeros(4))
    assert_exports_run(export_dir, spec)


def test_an_exported_run_records_its_own_spec(
    trained: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, export_dir, metrics = trained
    assert annfactory.load_spec(export_dir).device == "cpu"
    assert metrics["output_shape"] == [5, 3]


@pytest.mark.parametrize(
    "override", ["model=demo", "init=zeros", "activation=tanh", "dtype=float64",
                 "+model.layers.x.type=dropout"],
)  # fmt: skip
def test_task_run_refuses_overrides_of_the_network(
    override: str, trained: tuple[Path, Path, dict[str, Any]], tmp_path: Path
) -> None:
    run_dir, _, _ = trained
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(
        ConfigError,
        match=rf"^{re.escape(key)}: task\.run exports the saved run's network, so "
        rf"{re.escape(override)} would be ignored\.\n  Drop it",
    ):
        export(
            spec_of(["model=demo"]),
            tmp_path,
            overrides=["task=export", f"task.run={run_dir}", override, "seed=3"],
            run=str(run_dir),
        )
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------
# Refusals: a missing or tampered run, meta, the opset, missing packages
# ------------------------------------------------------------------------------------


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    """A copy of a saved demo run (tests/fixtures/runs/demo), free to tamper with."""
    directory = tmp_path / "saved"
    shutil.copytree(TESTS / "fixtures" / "runs" / "demo", directory)
    return directory


def test_a_missing_run_directory_names_task_run(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(
        ConfigError,
        match=rf"^task\.run: '{re.escape(str(missing))}' does not exist\.\n  Give "
        r"the directory of a saved run \(it holds spec\.yaml and "
        r"weights\.safetensors\)",
    ):
        export(spec_of(["model=demo"]), tmp_path / "out", run=str(missing))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_file_is_not_a_run_directory(saved_run: Path, tmp_path: Path) -> None:
    file = saved_run / "spec.yaml"
    with pytest.raises(ConfigError, match=r"^task\.run: '.*spec\.yaml' is a file"):
        export(spec_of(["model=demo"]), None, run=str(file))


def test_an_empty_task_run_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^task\.run: is empty\."):
        parse_options({"run": " "}, "task")


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda d: (d / "spec.yaml").write_text("model: [unclosed"),
         r"spec\.yaml: is not valid YAML"),
        (lambda d: (d / "spec.yaml").unlink(), r"spec\.yaml: no saved spec here"),
        (lambda d: (d / "weights.safetensors").unlink(),
         r"weights\.safetensors: no saved weights here"),
        (lambda d: (d / "weights.safetensors").write_bytes(b"\x00" * 12),
         r"weights\.safetensors: cannot be read"),
        (lambda d: (d / "spec.yaml").write_text(
            (d / "spec.yaml").read_text().replace("type: linear", "type: lineer", 1)),
         r"model\.layers\.\w+\.type: unknown layer type 'lineer'"),
    ],
    ids=["spec-not-yaml", "spec-missing", "weights-missing", "weights-garbage",
         "spec-unknown-type"],
)  # fmt: skip
def test_a_tampered_run_names_task_run_and_the_reason(
    saved_run: Path,
    tmp_path: Path,
    tamper: Callable[[Path], Any],
    reason: str,
) -> None:
    tamper(saved_run)
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("{}\n")  # an earlier run's, kept
    with pytest.raises(ConfigError) as info:
        export(spec_of(["model=demo"]), out, run=str(saved_run))
    lines = str(info.value).splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert re.match(
        rf"^task\.run: the run '{re.escape(str(saved_run))}' does not load: .*{reason}",
        lines[0],
    ), lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json"]
    assert (out / "metrics.json").read_text() == "{}\n"


def test_the_untampered_fixture_run_exports(saved_run: Path, tmp_path: Path) -> None:
    metrics = export(spec_of(["model=demo"]), tmp_path, run=str(saved_run))
    assert metrics["export"]["source"] == f"the run {saved_run}"
    assert_exports_run(tmp_path, annfactory.load_spec(saved_run))


def test_meta_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^device: export traces the network and checks its outputs, and "
        r"device=meta allocates no values\.\n  Use device=cpu",
    ):
        export(spec_of(["model=demo", "device=meta"]), tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_opset_is_checked() -> None:
    assert parse_options({}, "task") == ExportOptions(run=None, opset=20)
    with pytest.raises(ConfigError, match=r"^task\.opset: 17 is out of range"):
        parse_options({"opset": 17}, "task")
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(
        ConfigError,
        match=rf"^task\.opset: {newest + 1} is out of range: onnx .* knows opsets up "
        rf"to {newest}\.\n  Allowed: an integer from 18 to {newest}\.",
    ):
        export(spec_of(["model=demo"]), None, opset=newest + 1)


@pytest.mark.parametrize("missing", ["onnxruntime", "onnxscript"])
def test_a_missing_package_says_how_to_install_it(
    missing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    with pytest.raises(
        ConfigError,
        match=rf"^task: task=export needs {missing} for .*, and it is not installed\."
        r"\n  Install it: pip install onnxruntime onnxscript \(or pip install "
        r"'annfactory\[export\]'\)\.$",
    ):
        export(spec_of(["model=demo"]), tmp_path)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------
# Layers and activations that cannot be exported
# ------------------------------------------------------------------------------------


class SignFlip(nn.Module):
    """Branches in Python on a tensor's value: torch.export cannot trace it."""

    def __init__(self, in_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


class ScaleByMax(nn.Module):
    """Reads a tensor's value as a Python float."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.max())


def _plugin_spec(**layer: Any) -> RunSpec:
    first = {"type": "linear", "out_features": 4}
    return annfactory.parse_run(
        {"model": {"in_features": 3, "layers": {"fc": first, "odd": layer}}}
    )


def test_a_layer_that_cannot_be_traced_is_named_with_the_reason(
    tmp_path: Path,
) -> None:
    layers.register("sign_flip")(SignFlip)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"an earlier export")
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.odd: layer type 'sign_flip' cannot be exported: "
        r"torch\.export says: GuardOnDataDependentSymNode: Could not guard on "
        r"data-dependent expression.*\n  Make its forward traceable by torch\.export "
        r"\(no Python branch on tensor values",
    ) as info:
        export(_plugin_spec(type="sign_flip"), out)
    assert len(str(info.value).splitlines()) == 2
    assert (out / "model.onnx").read_bytes() == b"an earlier export"
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]


def test_an_activation_that_cannot_be_traced_is_named(tmp_path: Path) -> None:
    annfactory.activations.register("scale_by_max")(ScaleByMax)
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.odd\.activation: activation 'scale_by_max' cannot "
        r"be exported: torch\.export says: ",
    ):
        export(
            _plugin_spec(type="linear", out_features=2, activation="scale_by_max"),
            tmp_path,
        )


@torch.library.custom_op("annfactory_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    """An operator of its own: torch.export keeps it, ONNX has no translation."""
    return x * 2


@twice.register_fake
def _twice_shape(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Twice(nn.Module):
    def __init__(self, in_features: int) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return twice(x)  # type: ignore[no-any-return]


def test_a_layer_without_an_onnx_translation_is_named(tmp_path: Path) -> None:
    layers.register("twice")(Twice)
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.odd: layer type 'twice' cannot be exported: the "
        r"ONNX exporter says: .*annfactory_test\.twice.*\n  Build it from operators "
        r"that ONNX has",
    ):
        export(_plugin_spec(type="twice"), tmp_path)


# ------------------------------------------------------------------------------------
# The command line (slow: subprocesses)
# ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_export_of_the_demo_on_the_command_line(run_cli: RunCli) -> None:
    result = run_cli("task=export", "model=demo")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # The exporters' own logging stays quiet.
    assert "onnx_ir" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("export: 3 -> linear1(3, sigmoid)")
    assert lines[-1] == f"  tolerance for float32: {_tolerance_of(result.run_dir)}: ok"
    assert_exports_run(result.run_dir, spec_of(["model=demo"]))
    assert (result.run_dir / "run.log").read_text() == result.stdout


def _tolerance_of(run_dir: Path) -> str:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return f"{metrics['export']['tolerance']:.3g}"


@pytest.mark.slow
def test_export_of_a_trained_run_on_the_command_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    trained = run_cli("task=train", "model=mlp", "data=iris", "task.epochs=5")
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / "trained"
    trained.run_dir.rename(run_dir)
    # A path relative to the directory the command runs in, as a user types it.
    result = run_cli("task=export", "task.run=trained")
    assert result.returncode == 0, result.stderr
    assert "from the run trained (seed=0 device=cpu dtype=float32)" in result.stdout
    assert (result.run_dir / "weights.safetensors").read_bytes() == (
        run_dir / "weights.safetensors"
    ).read_bytes()
    assert_exports_run(result.run_dir, annfactory.load_spec(run_dir))


@pytest.mark.slow
def test_a_missing_onnxruntime_says_how_to_install_it_on_the_command_line(
    run_cli: RunCli, tmp_path: Path
) -> None:
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "onnxruntime.py").write_text(
        "raise ImportError(\"No module named 'onnxruntime'\")\n"
    )
    path = [str(stub), *filter(None, [os.environ.get("PYTHONPATH")])]
    result = run_cli("task=export", env={"PYTHONPATH": ":".join(path)})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert (
        "task: task=export needs onnxruntime for the check of model.onnx, and it is "
        "not installed." in result.stderr
    )
    assert "pip install onnxruntime onnxscript" in result.stderr
    assert not (result.run_dir / "model.onnx").exists()


def test_the_files_name_no_path_of_this_machine(tmp_path: Path) -> None:
    # The exporters record each node's Python stack (file paths); the same network
    # must give the same files on every machine, and a shared file must not show
    # where it was made.
    export(spec_of(["model=demo"]), tmp_path)
    source = str(Path(annfactory.__file__).resolve().parent.parent)
    for name in ("model.onnx", "model.pt2"):
        data = (tmp_path / name).read_bytes()
        if name.endswith(".pt2"):
            import zipfile

            with zipfile.ZipFile(tmp_path / name) as archive:
                data = b"".join(archive.read(item) for item in archive.namelist())
        assert source.encode() not in data, name
        assert b"site-packages" not in data, name


# ------------------------------------------------------------------------------------
# A run trained on a user's table: codes in, preprocessing.json beside model.onnx
# ------------------------------------------------------------------------------------

PENGUINS = TESTS / "data" / "tables" / "penguins.csv"
#: A few penguins as a user has them: text, numbers, "NA" cells; row 4 of the
#: file has every measurement and its sex missing, and the last row comes from an
#: island the training file never had.
RAW_ROWS = [
    {"island": "Torgersen", "bill_length_mm": "39.1", "bill_depth_mm": "18.7",
     "flipper_length_mm": "181", "body_mass_g": "3750", "sex": "male",
     "year": "2007"},
    {"island": "Torgersen", "bill_length_mm": "NA", "bill_depth_mm": "NA",
     "flipper_length_mm": "NA", "body_mass_g": "NA", "sex": "NA", "year": "2007"},
    {"island": "Biscoe", "bill_length_mm": "46.1", "bill_depth_mm": "13.2",
     "flipper_length_mm": "211", "body_mass_g": "4500", "sex": "female",
     "year": "2007"},
    {"island": "Dream", "bill_length_mm": "46.5", "bill_depth_mm": "17.9",
     "flipper_length_mm": "192", "body_mass_g": "3500", "sex": "", "year": "2007"},
    {"island": "Atlantis", "bill_length_mm": "50.0", "bill_depth_mm": "15.2",
     "flipper_length_mm": "218", "body_mass_g": "5700", "sex": "male",
     "year": "2009"},
]  # fmt: skip


@pytest.fixture(scope="module")
def penguins(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, dict[str, Any], str]:
    """A penguins `species` run of task=train (a few epochs) and its export with
    task.run: (run, export, export metrics, what the export printed)."""
    from omegaconf import OmegaConf

    run_dir = tmp_path_factory.mktemp("penguins")
    cfg = annfactory.compose(
        ["task=train", "model=mlp", "data=csv", f"data.path={PENGUINS}",
         "data.target=species", "task.epochs=10"]
    )  # fmt: skip
    node = OmegaConf.to_container(cfg.task, resolve=True)
    run_named_task(node, annfactory.to_spec(cfg), run_dir, out=io.StringIO())
    export_dir = tmp_path_factory.mktemp("penguins_exported")
    out = io.StringIO()
    metrics = export(spec_of(["task=export"]), export_dir, out=out, run=str(run_dir))
    return run_dir, export_dir, metrics, out.getvalue()


def codes_from_preprocessing(
    record: dict[str, Any], rows: Sequence[dict[str, str]]
) -> np.ndarray:
    """The network's input built as a user of onnxruntime would, from
    preprocessing.json alone: no annfactory."""
    missing = set(record["reading"]["na_values"]) | {""}
    codes = np.empty((len(rows), len(record["columns"])), dtype=np.float32)
    for row_index, row in enumerate(rows):
        for column in record["columns"]:
            cell = row[column["name"]]
            if cell in missing:
                value = float(column["missing_code"])
            elif column["type"] == "numeric":
                value = float(cell)
            elif cell in column["vocabulary"]:
                value = float(column["vocabulary"].index(cell))
            elif column["other"] and cell in column["other"]["folded"]:
                value = float(column["other"]["code"])
            else:
                value = float(column["unseen_code"])
            codes[row_index, column["position"]] = value
    return codes


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def test_a_table_export_writes_preprocessing_json_beside_model_onnx(
    penguins: tuple[Path, Path, dict[str, Any], str],
) -> None:
    _, export_dir, metrics, printed = penguins
    text = (export_dir / "preprocessing.json").read_text(encoding="utf-8")
    # Plain JSON: no NaN or Infinity literal, which strict parsers refuse.
    record = json.loads(text, parse_constant=_refuse_constant)
    assert record["format"] == "annfactory-preprocessing-1"
    assert record["input"] == {
        "name": INPUT_NAME,
        "shape": ["batch", 7],
        "dtype": "float32",
        "row": record["input"]["row"],
        "missing_code": "NaN",
        "unseen_code": -1,
    }
    names = [column["name"] for column in record["columns"]]
    assert names == ["island", "bill_length_mm", "bill_depth_mm",
                     "flipper_length_mm", "body_mass_g", "sex", "year"]  # fmt: skip
    island, bill = record["columns"][0], record["columns"][1]
    assert island["vocabulary"] == ["Biscoe", "Dream", "Torgersen"]
    assert island["encoding"] == "onehot"
    assert island["other"] is None
    assert (island["missing_code"], island["unseen_code"]) == ("NaN", -1)
    assert bill["value"] == "raw value, NaN if missing"
    assert record["columns"][5]["missing"].startswith("its own level")
    assert record["target"] == {
        "name": "species",
        "kind": "classification",
        "class_names": ["Adelie", "Chinstrap", "Gentoo"],
    }
    assert record["output"]["name"] == OUTPUT_NAME
    assert record["output"]["shape"] == ["batch", 3]
    assert record["output"]["values"] == "logits"
    assert metrics["export"]["preprocessing_file"] == "preprocessing.json"
    assert "preprocessing.json: each column's codes" in printed


def test_onnxruntime_on_codes_from_preprocessing_json_equals_the_saved_network(
    penguins: tuple[Path, Path, dict[str, Any], str],
) -> None:
    import pyarrow as pa

    from annfactory.columns import TableColumns
    from annfactory.table_fitting import encode_cells

    run_dir, export_dir, _, _ = penguins
    record = json.loads((export_dir / "preprocessing.json").read_text())
    codes = codes_from_preprocessing(record, RAW_ROWS)
    # The same codes as annfactory's own lookup (NaN where missing, -1 unseen).
    spec = annfactory.load_spec(run_dir)
    columns = TableColumns.from_dict(spec.network.layers[0].options["columns"], "c")
    numeric = {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"}
    cells: dict[str, Any] = {}
    for name in columns.names:
        values = [None if row[name] in ("NA", "") else row[name] for row in RAW_ROWS]
        if name in numeric:
            cells[name] = pa.array([None if v is None else float(v) for v in values])
        elif name == "year":
            cells[name] = pa.array([int(v) for v in values])
        else:
            cells[name] = pa.array(values, pa.string())
    table = pa.table(cells)
    ours, unseen = encode_cells(table, columns)
    np.testing.assert_array_equal(codes, ours)
    assert unseen == {"island": 1, "sex": 0}
    assert np.isnan(codes[1, 1:6]).all()
    assert codes[4, 0] == -1
    network = load_run(run_dir).eval()
    with torch.no_grad():
        eager = network(torch.from_numpy(codes))
    session = onnxruntime.InferenceSession(
        str(export_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    (logits,) = session.run(
        [record["output"]["name"]], {record["input"]["name"]: codes}
    )
    assert np.isfinite(logits).all()
    assert_close_to(torch.from_numpy(logits).double(), eager, "float32")
    # The first row is the file's first penguin, an Adelie.
    classes = record["target"]["class_names"]
    assert classes[int(logits[0].argmax())] == "Adelie"


def test_nan_and_unseen_inputs_give_finite_outputs_in_onnxruntime(
    penguins: tuple[Path, Path, dict[str, Any], str],
) -> None:
    run_dir, export_dir, _, _ = penguins
    rows = np.array(
        [[np.nan] * 7, [-1, np.nan, np.nan, np.nan, np.nan, -1, np.nan],
         [np.inf, np.inf, -np.inf, 1e30, -1e30, 2.6, 1e9]],
        dtype=np.float32,
    )  # fmt: skip
    session = onnxruntime.InferenceSession(
        str(export_dir / ONNX_FILE), providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {INPUT_NAME: rows})
    assert np.isfinite(y[:2]).all()
    network = load_run(run_dir).eval()
    with torch.no_grad():
        eager = network(torch.from_numpy(rows))
    assert_close_to(torch.from_numpy(y[:2]).double(), eager[:2], "float32")


def test_a_table_export_is_checked_on_valid_codes_not_random_normals(
    penguins: tuple[Path, Path, dict[str, Any], str],
) -> None:
    from annfactory.tasks.export_table import table_batch, table_columns

    run_dir, export_dir, metrics, printed = penguins
    spec = annfactory.load_spec(run_dir)
    columns = table_columns(spec)
    assert columns is not None
    x = table_batch(columns, spec.batch_size, spec.seed, torch.device("cpu"),
                    torch.float32)  # fmt: skip
    assert x.shape == (5, 7)
    for index, column in enumerate(columns.features):
        cells = x[:, index]
        if column.type == "categorical":
            known = cells[(cells >= 0) & ~cells.isnan()]
            assert (known == known.round()).all()
            assert (known < len(column.vocabulary)).all()
            assert cells[2] == -1
            assert cells[1].isnan()
        else:
            assert cells[1].isnan()
            # Raw units: around the column's mean, not N(0, 1).
            assert abs(float(cells[0]) - column.mean) < 5 * column.scale
    assert not x[0].isnan().any()
    # The recorded difference is that of these rows.
    network = load_run(run_dir).eval()
    checked = [x, x[:1]]
    with torch.no_grad():
        eager = [network(rows) for rows in checked]
    onnx_outputs = [run_onnx(export_dir / ONNX_FILE, rows) for rows in checked]
    record = metrics["export"]
    assert record["onnx_max_abs_difference"] == max(
        float((a - b.double()).abs().max())
        for a, b in zip(onnx_outputs, eager, strict=True)
    )
    scale = max(float(y.abs().max()) for y in eager)
    assert record["tolerance"] == pytest.approx(tolerance("float32", scale))
    assert record["checked_on"].startswith("valid table rows")
    assert "on seeded table rows (missing and unseen cells among them)" in printed


def test_a_network_without_encode_table_writes_no_preprocessing_json(
    trained: tuple[Path, Path, dict[str, Any]],
) -> None:
    _, export_dir, metrics = trained
    assert not (export_dir / "preprocessing.json").exists()
    assert "preprocessing_file" not in metrics["export"]
    assert metrics["export"]["checked_on"] == "random normal rows"


def test_the_readme_s_table_export_snippet_runs_on_preprocessing_json_alone(
    penguins: tuple[Path, Path, dict[str, Any], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (block,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
        if "preprocessing.json" in block and "onnxruntime.InferenceSession" in block
    ]
    run_dir, export_dir, _, printed = penguins
    monkeypatch.chdir(export_dir)
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec", dont_inherit=True), namespace)
    logits = namespace["logits"]
    assert logits.shape == (2, 3)
    # What the saved network gives on the codes annfactory's own lookup makes.
    import pyarrow as pa

    from annfactory.columns import TableColumns
    from annfactory.table_fitting import encode_cells

    spec = annfactory.load_spec(run_dir / "spec.yaml")
    columns = TableColumns.from_dict(spec.extras["data"].fitted["columns"], "columns")
    rows = namespace["rows"]
    missing = {"NA", None}
    table = pa.table(
        {
            name: [None if row[name] in missing else row[name] for row in rows]
            for name in columns.names
        }
    )
    codes, unseen = encode_cells(table, columns)
    assert unseen["island"] == 1  # "Atlantis"
    np.testing.assert_array_equal(codes, namespace["x"])
    with torch.no_grad():
        expected = annfactory.load_run(run_dir)(torch.from_numpy(codes)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # The README's export printout is this run's, its path and digits aside.
    shown = re.search(
        r"\$ python scripts/run\.py task=export task\.run=\S+\n(.*?)```",
        README.read_text()[README.read_text().index("### A table run's export") :],
        re.S,
    )
    assert shown is not None
    assert shown.group(1).splitlines()[0] == printed.splitlines()[0]
