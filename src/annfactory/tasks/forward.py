"""The forward task: build the network, run a random batch through it, report.

Prints the input and output shapes, the output, a torchinfo summary and every
parameter with its init and statistics; writes ``summary.txt``, ``metrics.json``,
``spec.yaml`` and ``weights.safetensors`` to the run directory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from annfactory.seeding import random_input
from annfactory.tasks import TaskContext, save_model, tasks

if TYPE_CHECKING:
    import torch

    from annfactory.network import Network
    from annfactory.spec import LayerSpec, RunSpec

# torch, torchinfo and the factory are imported inside the functions that use them:
# the override check and --help import this module for the task's schema.

__all__ = ["parameter_table", "random_input", "run", "summary_depth"]


def parameter_table(model: Network) -> dict[str, dict[str, Any]]:
    """Each state_dict key's shape, init and measured mean and std (None on meta)."""
    inits = {
        f"{layer.name}.{parameter.name}": parameter.describe_init()
        for layer in model.spec.layers
        for parameter in layer.parameters
    }
    table: dict[str, dict[str, Any]] = {}
    for name, tensor in model.state_dict().items():
        row: dict[str, Any] = {
            "shape": list(tensor.shape),
            "init": inits.get(name, "module's own"),
        }
        if tensor.is_meta or not tensor.is_floating_point():
            row["mean"] = row["std"] = None
        else:
            values = tensor.detach().double()
            row["mean"] = values.mean().item()
            row["std"] = values.std().item() if values.numel() > 1 else 0.0
        table[name] = row
    return table


def summary_depth(layers: Sequence[LayerSpec]) -> int:
    """How deep torchinfo's summary goes to show every layer: 2 for a flat network
    (its layers and what they hold, such as a plugin's child modules), one more for
    each level of nested blocks."""
    nested = [summary_depth(layer.layers) for layer in layers if layer.layers]
    return max([2, *(depth + 1 for depth in nested)])


# No options of its own; it honours compile=true (off the meta device).
@tasks.register("forward", compiles=True)
def run(context: TaskContext) -> dict[str, Any]:
    """Build, run and report; return the metrics that ``metrics.json`` holds."""
    import torch
    import torchinfo

    from annfactory.factory import build_network, resolve_device

    spec, out = context.spec, context.out
    model = build_network(spec)
    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    x = random_input(spec, device, dtype)
    model.eval()
    dead: dict[str, int] = {}
    if device.type == "meta":
        # A dry run: shapes come from the spec. Any operation on meta tensors goes
        # through Python meta kernels that import torch._dynamo (over a second), so
        # neither the forward pass nor the summary runs one.
        y = torch.empty(spec.batch_size, *spec.network.output_shape, device="meta")
        summary = torchinfo.summary(
            model,
            col_names=("num_params",),
            row_settings=("var_names",),
            depth=summary_depth(spec.network.layers),
            verbose=0,
        )
    else:
        hooks = [
            module.register_forward_hook(_count_dead_units(name, dead))
            for name, module in model.named_children()
            if name.endswith("_act")
        ]
        with torch.inference_mode():
            y = model(x)
        for hook in hooks:
            hook.remove()
        if spec.compile:
            compiled = _compiled_forward(model, x, y, out)
        summary = torchinfo.summary(
            model,
            input_data=[x],
            col_names=("input_size", "output_size", "num_params"),
            row_settings=("var_names",),
            depth=summary_depth(spec.network.layers),
            verbose=0,
        )
    summary_text = _summary_text(summary)
    parameters = parameter_table(model)
    total = sum(p.numel() for p in model.parameters())
    metrics: dict[str, Any] = {
        "total_params": total,
        "trainable_params": sum(
            p.numel() for p in model.parameters() if p.requires_grad
        ),
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "seed": spec.seed,
        "device": spec.device,
        "dtype": spec.dtype,
        "parameters": parameters,
    }
    if not y.is_meta:
        metrics["output_mean"] = y.double().mean().item()
        metrics["dead_units"] = dead
        if spec.compile:
            metrics["compile"] = compiled
    _print_report(out, spec, x, y, summary_text, parameters, total)
    _print_notes(out, spec, dead, device.type == "meta")
    context.write_text("summary.txt", summary_text + "\n")
    save_model(context, model)
    return metrics


def _print_notes(
    out: TextIO, spec: RunSpec, dead: Mapping[str, int], on_meta: bool
) -> None:
    """The notes below the report: the dead units of each activation (``dead``:
    activation module name -> count), and that ``compile=true`` compiled nothing on
    the meta device."""
    if dead:
        # A unit is one value of a sample's output: a feature, or a channel at one
        # position of an image.
        widths = {
            layer.name: math.prod(layer.output_shape) for layer in spec.network.layers
        }
        listing = ", ".join(
            f"{name} {count}/{widths[name.removesuffix('_act')]}"
            for name, count in dead.items()
        )
        print(
            f"note: units that output 0 for every row of this batch (dead): {listing}",
            file=out,
        )
    if spec.compile and on_meta:
        print(
            "note: compile=true compiles nothing on device=meta: no forward pass runs.",
            file=out,
        )


#: (threshold, name) of the units that mult-adds are counted in, largest first.
_COUNT_UNITS = ((1e12, "trillions"), (1e9, "billions"), (1e6, "millions"))


def _summary_text(summary: Any) -> str:
    """torchinfo's summary, with its mult-adds line in a proper unit.

    torchinfo 1.8 prints its unit enum as ``Total mult-adds (Units.MEGABYTES)``; the
    count is of operations, in millions. Below a million the exact count is printed.
    """
    text = str(summary)
    count = getattr(summary, "total_mult_adds", None)
    if not isinstance(count, int):
        return text
    line = f"Total mult-adds: {count:,}"
    for threshold, unit in _COUNT_UNITS:
        if count >= threshold:
            line = f"Total mult-adds ({unit}): {count / threshold:,.2f}"
            break
    return re.sub(r"^Total mult-adds\b.*$", line, text, count=1, flags=re.M)


def _compiled_forward(
    model: Network, x: torch.Tensor, eager: torch.Tensor, out: TextIO
) -> dict[str, Any]:
    """Run the forward pass through ``torch.compile``; compare with eager, time both."""
    import time

    import torch

    start = time.perf_counter()
    fast = torch.compile(model)
    with torch.inference_mode():
        y = fast(x)
    compile_s = time.perf_counter() - start
    with torch.inference_mode():
        start = time.perf_counter()
        fast(x)
        compiled_s = time.perf_counter() - start
        start = time.perf_counter()
        model(x)
        eager_s = time.perf_counter() - start
    difference = (y.double() - eager.double()).abs().max().item()
    tolerance = 1e-5 if eager.dtype in (torch.float32, torch.float64) else 1e-2
    matches = bool(torch.allclose(y, eager, rtol=tolerance, atol=tolerance))
    print(
        f"torch.compile: compiled in {compile_s:.1f} s; one forward "
        f"{compiled_s * 1e6:.0f} us compiled vs {eager_s * 1e6:.0f} us eager; "
        "max |compiled - eager| = "
        f"{difference:.3g} ({'matches' if matches else 'DIFFERS from'} eager)",
        file=out,
    )
    return {
        "compile_s": compile_s,
        "forward_compiled_s": compiled_s,
        "forward_eager_s": eager_s,
        "max_abs_difference": difference,
        "matches_eager": matches,
    }


def _count_dead_units(name: str, dead: dict[str, int]) -> Any:
    """A forward hook that records how many output units (values of a sample) are 0
    for every row."""

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if output.is_meta or output.dim() < 2:
            return
        count = int((output == 0).all(dim=0).sum())
        if count:
            dead[name] = count

    return hook


def _print_report(
    out: TextIO,
    spec: RunSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    summary: str,
    parameters: dict[str, dict[str, Any]],
    total: int,
) -> None:
    import torch

    print(f"network: {spec.network.summary_line()}", file=out)
    print(
        f"seed={spec.seed} device={spec.device} dtype={spec.dtype} "
        f"parameters={total:,}",
        file=out,
    )
    print(f"input shape:  {list(x.shape)}", file=out)
    print(f"output shape: {list(y.shape)}", file=out)
    if y.is_meta:
        print("output: (meta device: shapes only, no values)", file=out)
    else:
        with torch.no_grad():
            print(f"output:\n{y}", file=out)
    print(summary, file=out)
    print("parameters:", file=out)
    width = max((len(name) for name in parameters), default=4)
    shape_width = max(
        (len(str(row["shape"])) for row in parameters.values()), default=5
    )
    init_width = max((len(str(row["init"])) for row in parameters.values()), default=4)
    print(
        f"  {'name':<{width}}  {'shape':<{shape_width}}  {'init':<{init_width}}  "
        f"{'mean':>10}  {'std':>10}",
        file=out,
    )
    for name, row in parameters.items():
        mean = "n/a" if row["mean"] is None else f"{row['mean']:.4f}"
        std = "n/a" if row["std"] is None else f"{row['std']:.4f}"
        print(
            f"  {name:<{width}}  {row['shape']!s:<{shape_width}}  "
            f"{row['init']:<{init_width}}  {mean:>10}  {std:>10}",
            file=out,
        )
