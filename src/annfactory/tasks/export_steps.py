"""The steps of ``task=export``: torch.export, then the ONNX translation of its
program, quietly; where a step fails, the first layer (or activation) that fails it
alone, named with the exporter's reason and how to fix it.

torch and the exporter are imported inside the functions that use them.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from annfactory.spec import RunSpec

__all__ = [
    "BATCH_DIM",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "TORCH_EXPORT",
    "ExportStep",
    "Exporter",
    "drop_stack_traces",
    "exported",
    "failure_reason",
    "name_batch_dimension",
    "onnx_step",
    "quiet_exporter",
]

#: The ONNX graph's input and output names, and the name of its batch dimension.
INPUT_NAME: Final = "input"
OUTPUT_NAME: Final = "output"
BATCH_DIM: Final = "batch"


Exporter = Callable[["Any", "torch.Tensor"], Any]
"""``exporter(module or program, example) -> exported``: one step of the export."""


@dataclass(frozen=True)
class ExportStep:
    """One step of the export: who does it, how, and how to fix a layer it fails on."""

    name: str
    exporter: Exporter
    fix: str


def _export_program(module: Any, example: torch.Tensor) -> Any:
    """``torch.export.export`` with a dynamic batch dimension."""
    import torch

    batch = torch.export.Dim(BATCH_DIM)
    dims = {0: batch}
    return torch.export.export(module, (example,), dynamic_shapes=(dims,))


def _onnx_translator(opset: int) -> Exporter:
    """The ONNX step: an exported program (or a module, exported first) to an
    ``ONNXProgram`` of ``opset``."""

    def translate(module: Any, example: torch.Tensor) -> Any:
        import torch

        program = (
            module
            if isinstance(module, torch.export.ExportedProgram)
            else _export_program(module, example)
        )
        return torch.onnx.export(
            program,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            verbose=False,
        )

    return translate


TORCH_EXPORT: Final = ExportStep(
    "torch.export",
    _export_program,
    "Make its forward traceable by torch.export (no Python branch on tensor values, "
    "no .item(), .tolist() or NumPy), or leave it out.",
)


def onnx_step(opset: int) -> ExportStep:
    return ExportStep(
        "the ONNX exporter",
        _onnx_translator(opset),
        "Build it from operators that ONNX has (or give torch.onnx.export a "
        "custom_translation_table for its own), or leave it out.",
    )


def exported(
    subject: Any,
    network: nn.Module,
    spec: RunSpec,
    example: torch.Tensor,
    step: ExportStep,
) -> Any:
    """``step.exporter(subject, example)``, where ``subject`` is ``network`` or what
    the step before made of it; on failure, the error names the first of the
    network's layers (or activations) that fails on its own, with the exporter's
    reason."""
    try:
        return step.exporter(subject, example)
    except ConfigError:
        raise
    except Exception as error:
        culprit = _first_failing_child(network, spec, example, step.exporter)
        if culprit is None:
            raise ConfigError(
                "model",
                f"{step.name} cannot export the network: {failure_reason(error)}",
                "Report it with the run's spec.",
            ) from error
        key, what, reason = culprit
        raise ConfigError(
            key, f"{what} cannot be exported: {step.name} says: {reason}", step.fix
        ) from error


def _first_failing_child(
    network: nn.Module, spec: RunSpec, example: torch.Tensor, exporter: Exporter
) -> tuple[str, str, str] | None:
    """The first of the network's children (layers and their activations, in order)
    that ``exporter`` cannot export on its own: (config path, what it is, reason)."""
    import torch

    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        child.register_forward_pre_hook(_keep_input(name, inputs))
        for name, child in network.named_children()
    ]
    try:
        # Not inference_mode: torch.export cannot trace inference tensors.
        with torch.no_grad():
            network(example)
    except Exception:  # the eager pass fails too; name what it reached
        pass
    finally:
        for hook in hooks:
            hook.remove()
    layers = {layer.name: layer for layer in spec.network.layers}
    for name, child in network.named_children():
        if name not in inputs:
            continue
        try:
            with quiet_exporter():
                exporter(child, inputs[name])
        except Exception as error:
            return (*_describe_child(name, layers), failure_reason(error))
    return None


def _keep_input(
    name: str, store: dict[str, torch.Tensor]
) -> Callable[[nn.Module, tuple[Any, ...]], None]:
    """A forward pre-hook that keeps a module's first input under ``name``."""

    def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        store[name] = args[0].clone()

    return hook


def _describe_child(name: str, layers: Mapping[str, Any]) -> tuple[str, str]:
    """A child module's config path and what it is, in words."""
    if name in layers:
        return f"model.layers.{name}", f"layer type '{layers[name].type}'"
    layer_name = name.removesuffix("_act")
    if layer_name in layers:
        activation = layers[layer_name].activation.name
        return f"model.layers.{layer_name}.activation", f"activation '{activation}'"
    return "model", f"module {name!r}"


def failure_reason(error: BaseException) -> str:
    """The exporter's reason in one line: the first line of the deepest message
    that says something (torch wraps errors in errors of its own)."""
    lines: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip()
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if first:
            lines.append(f"{type(current).__name__}: {first}")
        current = current.__cause__ or current.__context__
    reason = lines[-1] if lines else type(error).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


#: Loggers that report every step of an export (INFO under Hydra's logging config),
#: and torch's that print the traced graph of a failing export: their names and the
#: names below them. The error itself carries the reason.
_CHATTY_LOGGERS: Final = (
    "torch.onnx",
    "torch.export",
    "torch._export",
    "torch._dynamo",
    "torch.fx",
    "onnxscript",
    "onnx_ir",
)


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporters' chatter (torchvision ops it skips, deprecations inside
    torch) while it runs; errors still propagate. torch.export prints the partial
    graph of a failed trace to stderr itself, so stderr is held too: the error says
    what failed, in at most three lines."""
    names = [
        name
        for name in [*_CHATTY_LOGGERS, *logging.root.manager.loggerDict]
        if name.startswith(_CHATTY_LOGGERS)
    ]
    loggers = [logging.getLogger(name) for name in dict.fromkeys(names)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


#: The exporter's metadata key for the Python stack that made a node: absolute paths of
#: this installation's files.
_STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def drop_stack_traces(onnx_program: Any) -> None:
    """Remove each node's Python stack trace from the ONNX graph: it names this
    machine's file paths, so the same network would give other bytes elsewhere (and
    a shared file would show where it was made). The ONNX exporter copies them from
    the exported program's nodes, which lose theirs before ``model.pt2`` is saved."""
    for node in onnx_program.model.graph.all_nodes():
        node.metadata_props.pop(_STACK_TRACE_KEY, None)


def name_batch_dimension(onnx_program: Any) -> None:
    """Call the ONNX graph's dynamic first dimension ``batch`` (torch names it after
    an internal symbol such as ``s77``), where Netron and onnxruntime show it."""
    import onnx_ir as ir

    graph = onnx_program.model.graph
    values = [*graph.inputs, *graph.outputs]
    values += [output for node in graph for output in node.outputs]
    symbol = _first_symbol(graph.inputs)
    if symbol is None:
        return
    for value in values:
        shape = value.shape
        if shape is None:
            continue
        dims = [
            ir.SymbolicDim(BATCH_DIM)
            if isinstance(dim, ir.SymbolicDim) and dim.value == symbol
            else dim
            for dim in shape.dims
        ]
        value.shape = ir.Shape(dims)


def _first_symbol(inputs: Sequence[Any]) -> str | None:
    """The name of the input's symbolic batch dimension."""
    import onnx_ir as ir

    if not inputs or inputs[0].shape is None or not inputs[0].shape.dims:
        return None
    first = inputs[0].shape.dims[0]
    return first.value if isinstance(first, ir.SymbolicDim) else None
