"""The export task: the network as ``model.onnx`` and ``model.pt2``, checked.

``task=export`` traces the network once with ``torch.export`` (the batch dimension
dynamic, so any number of rows runs) and writes:

- ``model.pt2``: the exported program, ``torch.export.save``; ``torch.export.load``
  reads it back;
- ``model.onnx``: the same program through PyTorch's ``torch.export``-based ONNX
  exporter (it needs ``onnxscript``), opset ``task.opset`` (20 by default); one input
  ``input`` of shape ``[batch, *input_shape]``, one output ``output``;
- ``spec.yaml``, ``weights.safetensors`` and ``metrics.json`` as every task does.

The export counts only once it is checked: the ONNX file runs in onnxruntime, the
``.pt2`` program runs as loaded, each on the run's seeded batch (``batch_size`` rows)
and on its first row alone, and both are compared with the eager network. The largest
absolute differences, the files' sizes and the opset go to ``metrics.json`` under
``export``; a difference above the dtype's tolerance fails the run, and nothing is
saved. onnxruntime has no CPU kernels for bfloat16, so a bfloat16 ONNX file is run by
the ONNX reference evaluator (``onnx.reference``) instead, and the metrics say so.

``task.run=<dir>`` exports a saved run instead of the config's model: the network is
rebuilt with :func:`annfactory.load_run`, preprocessing layers included (a run of
``task=train`` starts with ``standardize``), so the exported graph takes raw rows.
A run trained on a user's table (``data=csv`` or ``data=parquet``) starts with
``encode_table``: its graph takes one number per feature column (a raw value or a
category's code, NaN where missing), it is checked on valid codes rather than random
normals, and ``preprocessing.json`` beside ``model.onnx`` holds the codes of each
column and what the output is (:mod:`annfactory.tasks.export_table`).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, cast

from annfactory.errors import ConfigError
from annfactory.params import Param, validate_params
from annfactory.tasks import TaskContext, refuse_group_overrides, save_model, tasks
from annfactory.tasks.export_steps import (
    BATCH_DIM,
    INPUT_NAME,
    OUTPUT_NAME,
    TORCH_EXPORT,
    drop_stack_traces,
    exported,
    failure_reason,
    name_batch_dimension,
    onnx_step,
    quiet_exporter,
)
from annfactory.tasks.export_table import (
    PREPROCESSING_FILE,
    table_batch,
    table_columns,
    write_preprocessing,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from annfactory.spec import RunSpec

# torch, onnxruntime and the exporter are imported inside the functions that use them:
# the override check and --help import this module for the task's schema.

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "INSTALL_HINT",
    "MIN_OPSET",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "PT2_FILE",
    "TOLERANCES",
    "ExportOptions",
    "export_files",
    "parse_options",
    "run",
    "tolerance",
]

ONNX_FILE: Final = "model.onnx"
PT2_FILE: Final = "model.pt2"
#: torch 2.13's own default; onnxruntime runs it from version 1.17.
DEFAULT_OPSET: Final = 20
#: The oldest opset the torch.export-based exporter writes natively.
MIN_OPSET: Final = 18
#: (atol, rtol) per dtype: an export passes if max |exported - eager| <= atol + rtol *
#: max |eager|. A few units in the last place of the dtype: onnxruntime sums a matrix
#: product in another order than torch, and half-precision kernels round between ops.
TOLERANCES: Final = {
    "float64": (1e-10, 1e-10),
    "float32": (1e-5, 1e-5),
    "float16": (1e-2, 1e-2),
    "bfloat16": (5e-2, 5e-2),
}
INSTALL_HINT: Final = (
    "Install it: pip install onnxruntime onnxscript (or pip install "
    "'annfactory[export]')."
)

_OPTIONS: Final = {
    "run": Param(
        str,
        None,
        "a saved run's directory to export; null: the model this config builds",
    ),
    "opset": Param(int, DEFAULT_OPSET, "the ONNX opset of model.onnx", low=MIN_OPSET),
}
#: Top-level keys and groups that define the network; with ``task.run`` the saved
#: run defines it, so overriding them is refused rather than silently ignored.
_NETWORK_KEYS: Final = ("model", "init", "activation", "dtype")
#: What a table network's export is checked on (see export_table.table_batch).
TABLE_ROWS: Final = (
    "valid table rows: numbers around each column's mean, codes from each "
    "vocabulary, rows all missing (NaN) and rows of unseen categories (-1)"
)


@dataclass(frozen=True)
class ExportOptions:
    """The validated options of the export task (``task.*``).

    Attributes:
        run: A saved run's directory; None: export the model the config builds.
        opset: The ONNX opset of ``model.onnx``.
    """

    run: str | None = None
    opset: int = DEFAULT_OPSET


def parse_options(given: Mapping[str, Any], key: str) -> ExportOptions:
    """Validate the task's options (the ``task`` node without ``name``).

    Raises:
        ConfigError: An unknown option (names the closest one), a value of the wrong
            type, an opset out of range or an empty ``run``; the message names
            ``<key>.<option>``.
    """
    options = validate_params(given, _OPTIONS, key, "task 'export'")
    if options["run"] is not None and not options["run"].strip():
        raise ConfigError(
            f"{key}.run",
            "is empty.",
            "Give a saved run's directory, e.g. task.run=outputs/2026-11-30/12-00-00, "
            "or leave task.run out to export the config's model.",
        )
    return ExportOptions(run=options["run"], opset=options["opset"])


def tolerance(dtype: str, output_scale: float) -> float:
    """The largest absolute difference allowed between an export and the eager
    network, for outputs of ``dtype`` whose largest magnitude is ``output_scale``."""
    atol, rtol = TOLERANCES[dtype]
    return atol + rtol * output_scale


@tasks.register("export", params=_OPTIONS, parse_options=parse_options)
def run(context: TaskContext) -> dict[str, Any]:
    """Export the network, check the files against it, and save them.

    Raises:
        ConfigError: ``device=meta``; onnxruntime or onnxscript is not installed;
            ``task.run`` is no loadable run, or comes with overrides of the network;
            a layer cannot be exported (names it and the exporter's reason); or an
            exported file disagrees with the eager network beyond the tolerance.
    """
    import torch

    spec, options = context.spec, context.options
    assert isinstance(options, ExportOptions)
    if spec.device == "meta":
        raise ConfigError(
            "device",
            "export traces the network and checks its outputs, and device=meta "
            "allocates no values.",
            "Use device=cpu (or cuda).",
        )
    _check_opset(options.opset)
    _require_runtime()
    model: nn.Module
    if options.run is None:
        from annfactory.factory import build_network

        model = build_network(spec)
        source = "the config's model"
    else:
        _refuse_network_overrides(context.own_overrides)
        spec, model = _load(options.run, spec.device)
        source = f"the run {options.run}"
    model.eval()
    folder = context.path(ONNX_FILE)
    with tempfile.TemporaryDirectory(prefix="annfactory-export-") as scratch:
        directory = Path(scratch) if folder is None else folder.parent
        result = export_files(model, spec, directory, opset=options.opset)
    _print_report(context.out, spec, source, result)
    if options.run is None:
        save_model(context, model)
    else:
        spec_path = context.path("spec.yaml")
        if spec_path is not None:
            from annfactory.runs import save_run

            save_run(spec_path.parent, spec, model)
    result["source"] = source
    return {
        "total_params": sum(p.numel() for p in model.parameters()),
        "output_shape": [spec.batch_size, *spec.network.output_shape],
        "dtype": spec.dtype,
        "export": result,
        "versions": {"torch": torch.__version__, **_runtime_versions()},
    }


def export_files(
    model: nn.Module, spec: RunSpec, directory: Path, opset: int = DEFAULT_OPSET
) -> dict[str, Any]:
    """Write ``model.pt2`` and ``model.onnx`` for ``model`` into ``directory`` and
    check both against it.

    Args:
        model: The network built from (or loaded with) ``spec``, in eval mode.
        spec: Its spec: the input shape, dtype, device, seed and the batch size of
            the check.
        directory: Where the files go (it exists).
        opset: The ONNX opset.

    The check runs on the run's seeded batch: random normal rows, or, for a
    network that starts with ``encode_table``, valid table rows
    (:func:`~annfactory.tasks.export_table.table_batch`); such a network also gets
    ``preprocessing.json`` in ``directory``.

    Returns:
        The ``export`` part of the task's metrics: each export's largest absolute
        difference from the eager network, the tolerance, the opset, the files'
        sizes, the batch sizes checked, what they were and what ran the ONNX file.

    Raises:
        ConfigError: A layer (or activation) cannot be exported: the message names
            it and gives the exporter's reason. Or an export disagrees with the eager
            network by more than :func:`tolerance` (the files are removed).
    """
    import torch

    from annfactory.factory import resolve_device
    from annfactory.seeding import random_input

    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    columns = table_columns(spec)
    # torch.export specializes a dimension of size 1 to a constant, so the example
    # that it traces has at least two rows; the check runs one row too.
    rows = max(2, spec.batch_size)
    if columns is None:
        example = random_input(
            dataclasses.replace(spec, batch_size=rows), device, dtype
        )
        checked = random_input(spec, device, dtype)
    else:
        # A table's codes: random normals would be invalid category codes.
        example = table_batch(columns, rows, spec.seed, device, dtype)
        checked = table_batch(columns, spec.batch_size, spec.seed, device, dtype)
    batches = [checked, checked[:1]] if spec.batch_size > 1 else [checked]
    pt2_path, onnx_path = directory / PT2_FILE, directory / ONNX_FILE
    written_opset = _write_exports(model, spec, example, directory, opset)
    with torch.inference_mode():
        eager = [model(x) for x in batches]
    loaded = torch.export.load(pt2_path).module()
    with torch.inference_mode():
        pt2 = [loaded(x) for x in batches]
    onnx, runner = _run_onnx(onnx_path, batches)
    scale = max(_max_abs(y) for y in eager)
    allowed = tolerance(spec.dtype, scale)
    onnx_difference = max(_difference(a, b) for a, b in zip(onnx, eager, strict=True))
    pt2_difference = max(_difference(a, b) for a, b in zip(pt2, eager, strict=True))
    result: dict[str, Any] = {
        # The sweep table lists the keys in this order.
        "onnx_max_abs_difference": onnx_difference,
        "pt2_max_abs_difference": pt2_difference,
        "tolerance": allowed,
        "opset": written_opset,
        "onnx_file": ONNX_FILE,
        "onnx_bytes": _size(onnx_path),
        "pt2_file": PT2_FILE,
        "pt2_bytes": pt2_path.stat().st_size,
        "input": {"name": INPUT_NAME, "shape": [BATCH_DIM, *spec.network.input_shape]},
        "output": {
            "name": OUTPUT_NAME,
            "shape": [BATCH_DIM, *spec.network.output_shape],
        },
        "checked_batch_sizes": [len(x) for x in batches],
        "onnx_runner": runner,
        "seed": spec.seed,
        "checked_on": "random normal rows" if columns is None else TABLE_ROWS,
    }
    _refuse_disagreement(result, spec.dtype, directory)
    if columns is not None:
        write_preprocessing(directory, spec, columns, INPUT_NAME, OUTPUT_NAME)
        result["preprocessing_file"] = PREPROCESSING_FILE
    return result


def _write_exports(
    model: nn.Module,
    spec: RunSpec,
    example: torch.Tensor,
    directory: Path,
    opset: int,
) -> int:
    """Export ``model`` with torch.export to ``model.pt2``, and that program to
    ``model.onnx``, its batch dimension named and without this machine's paths.

    Returns:
        The opset the ONNX file was written with.

    Raises:
        ConfigError: A layer (or activation) cannot be exported (named).
    """
    import torch

    pt2_path, onnx_path = directory / PT2_FILE, directory / ONNX_FILE
    with quiet_exporter():
        program = exported(model, model, spec, example, TORCH_EXPORT)
        for node in program.graph.nodes:
            # This machine's file paths (see drop_stack_traces), in the .pt2 too.
            node.meta.pop("stack_trace", None)
        torch.export.save(program, pt2_path)
        onnx_program = exported(program, model, spec, example, onnx_step(opset))
        name_batch_dimension(onnx_program)
        drop_stack_traces(onnx_program)
        onnx_program.save(str(onnx_path))
    return int(onnx_program.model.opset_imports.get("", opset))


def _refuse_disagreement(
    result: Mapping[str, Any], dtype: str, directory: Path
) -> None:
    """Remove both files and raise if either export's difference from the eager
    network (in ``result``, the ``export`` metrics) is above the tolerance.

    Raises:
        ConfigError: Names the file, its difference, the rows checked and the
            tolerance.
    """
    pt2_path, onnx_path = directory / PT2_FILE, directory / ONNX_FILE
    allowed = result["tolerance"]
    for name, difference in (
        (ONNX_FILE, result["onnx_max_abs_difference"]),
        (PT2_FILE, result["pt2_max_abs_difference"]),
    ):
        if not difference <= allowed:
            for path in (pt2_path, onnx_path, _external_data(onnx_path)):
                path.unlink(missing_ok=True)
            raise ConfigError(
                "model",
                f"{name} disagrees with the eager network: max |difference| = "
                f"{difference:.3g} over {result['checked_batch_sizes']} rows, above "
                f"the {dtype} tolerance {allowed:.3g}; nothing was saved.",
                "Export in a wider dtype (dtype=float32 or float64), or report it "
                "with the run's spec.",
            )


# ------------------------------------------------------------------------------------
# Running the files
# ------------------------------------------------------------------------------------


def _run_onnx(
    path: Path, batches: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], str]:
    """Run ``model.onnx`` on each batch: in onnxruntime, or where it has no kernel
    for the model's dtype (bfloat16 on the CPU), in the ONNX reference evaluator.
    Returns the outputs and what ran them."""
    import onnxruntime

    runner = f"onnxruntime {onnxruntime.__version__}"
    try:
        session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        if "NOT_IMPLEMENTED" not in str(error):
            raise ConfigError(
                "model",
                f"{ONNX_FILE} does not load in {runner}: {failure_reason(error)}",
                "Report it with the run's spec.",
            ) from error
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(str(path))
        operator = re.search(r"implementation for (\w+\(\d+\))", str(error))
        missing = f" for {operator.group(1)}" if operator else ""
        runner = f"onnx.reference ({runner} has no CPU kernel{missing} in this dtype)"
        outputs = [
            cast(Sequence[Any], evaluator.run(None, {INPUT_NAME: _to_numpy(x)}))
            for x in batches
        ]
        return [_from_numpy(output[0]) for output in outputs], runner
    return [
        _from_numpy(session.run(None, {INPUT_NAME: _to_numpy(x)})[0]) for x in batches
    ], runner


def _to_numpy(x: torch.Tensor) -> Any:
    """A tensor as the NumPy array an ONNX runtime takes (bfloat16 as ml_dtypes')."""
    import torch

    values = x.detach().cpu()
    if values.dtype == torch.bfloat16:
        import ml_dtypes

        # bfloat16 -> float32 -> bfloat16 is exact.
        return values.float().numpy().astype(ml_dtypes.bfloat16)
    return values.numpy()


def _from_numpy(array: Any) -> torch.Tensor:
    """An ONNX runtime's output as a float64 CPU tensor."""
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(array).astype(np.float64))


def _difference(exported: torch.Tensor, eager: torch.Tensor) -> float:
    """max |exported - eager| in float64: NaN if the shapes differ or one holds a
    NaN where the other does not; values that are equal (an inf in both, a NaN in
    both) differ by 0."""
    import torch

    a = exported.detach().cpu().double()
    b = eager.detach().cpu().double()
    if a.shape != b.shape:
        return float("nan")
    if bool((torch.isnan(a) != torch.isnan(b)).any()):
        return float("nan")
    if not a.numel():
        return 0.0
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    return float((a - b).abs().masked_fill(same, 0.0).max())


def _max_abs(tensor: torch.Tensor) -> float:
    values = tensor.detach().cpu().double().abs()
    finite = values[values.isfinite()]
    return float(finite.max()) if finite.numel() else 0.0


def _size(path: Path) -> int:
    """The ONNX file's bytes, with its external data file if it has one (a model
    over 2 GB)."""
    external = _external_data(path)
    return path.stat().st_size + (external.stat().st_size if external.exists() else 0)


def _external_data(path: Path) -> Path:
    """Where ``ONNXProgram.save`` puts the weights of a model over 2 GB."""
    return path.with_name(path.name + ".data")


# ------------------------------------------------------------------------------------
# Options, requirements, the saved run
# ------------------------------------------------------------------------------------


def _check_opset(opset: int) -> None:
    """``task.opset`` is one the installed onnx package knows."""
    try:
        import onnx
    except ImportError:
        return  # _require_runtime says what to install
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ConfigError(
            "task.opset",
            f"{opset} is out of range: onnx {onnx.__version__} knows opsets up to "
            f"{newest}.",
            f"Allowed: an integer from {MIN_OPSET} to {newest}.",
        )


def _require_runtime() -> None:
    """onnxscript (the exporter's) and onnxruntime (the check's) are installed."""
    for module, use in (
        ("onnxscript", "the ONNX exporter"),
        ("onnxruntime", "the check of model.onnx"),
    ):
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(
                "task",
                f"task=export needs {module} for {use}, and it is not installed.",
                INSTALL_HINT,
            ) from None


def _runtime_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    return {
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _refuse_network_overrides(overrides: Sequence[str]) -> None:
    """With ``task.run`` the saved run defines the network: an override of the
    model, an init, an activation or the dtype would be ignored, so it is refused."""
    refuse_group_overrides(
        overrides,
        _NETWORK_KEYS,
        "task.run exports the saved run's network, so {override} would be ignored.",
        "Drop it, or leave task.run out to export the config's model.",
    )


def _load(run_dir: str, device: str) -> tuple[RunSpec, nn.Module]:
    """The saved run's spec and network on ``device``.

    Raises:
        ConfigError: Keyed ``task.run``: no such directory, or the run does not load
            (a missing or tampered file; the reason of :func:`load_run`).
    """
    from hydra.utils import to_absolute_path

    from annfactory.runs import (
        SPEC_FILE,
        WEIGHTS_FILE,
        load_run,
        load_spec,
        run_load_error,
    )

    # Under hydra.job.chdir=true a job runs in its run directory; a relative path
    # still means one from where the command was typed (outside Hydra: the cwd).
    path = Path(to_absolute_path(run_dir))
    hint = (
        f"Give the directory of a saved run (it holds {SPEC_FILE} and "
        f"{WEIGHTS_FILE}), e.g. task.run=outputs/2026-11-30/12-00-00."
    )
    if not path.is_dir():
        what = "is a file, not a directory" if path.exists() else "does not exist"
        raise ConfigError("task.run", f"{run_dir!r} {what}.", hint)
    try:
        network = load_run(path, device=device)
        spec = dataclasses.replace(load_spec(path), device=device)
    except ConfigError as error:
        raise run_load_error(error, repr(run_dir), hint) from error
    return spec, network


def _print_report(
    out: TextIO, spec: RunSpec, source: str, result: Mapping[str, Any]
) -> None:
    allowed = result["tolerance"]
    rows = " and ".join(
        f"{n} row{'s' if n != 1 else ''}" for n in result["checked_batch_sizes"]
    )
    print(f"export: {spec.network.summary_line()}", file=out)
    print(
        f"from {source} (seed={spec.seed} device={spec.device} dtype={spec.dtype})",
        file=out,
    )
    shape = ", ".join(str(dim) for dim in result["input"]["shape"])
    out_shape = ", ".join(str(dim) for dim in result["output"]["shape"])
    print(
        f"{ONNX_FILE}: {result['onnx_bytes']:,} bytes, opset {result['opset']}, "
        f"input {INPUT_NAME!r} [{shape}] -> output {OUTPUT_NAME!r} [{out_shape}]",
        file=out,
    )
    print(f"{PT2_FILE}: {result['pt2_bytes']:,} bytes (torch.export.load)", file=out)
    what = (
        f"seeded batches of {rows}"
        if "preprocessing_file" not in result
        else f"seeded table rows (missing and unseen cells among them), {rows}"
    )
    print(f"check against the eager network on {what}:", file=out)
    print(
        f"  {ONNX_FILE} in {result['onnx_runner']}: max |difference| = "
        f"{result['onnx_max_abs_difference']:.3g}",
        file=out,
    )
    print(
        f"  {PT2_FILE} as loaded: max |difference| = "
        f"{result['pt2_max_abs_difference']:.3g}",
        file=out,
    )
    print(f"  tolerance for {spec.dtype}: {allowed:.3g}: ok", file=out)
    if "preprocessing_file" in result:
        print(
            f"{result['preprocessing_file']}: each column's codes (vocabulary, "
            "missing NaN, unseen -1) and what the output is",
            file=out,
        )
