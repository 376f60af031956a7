"""The diagnose task: how signals and gradients fare layer by layer, at init.

One forward and one backward pass of a random batch (``task.batch_size`` rows, 256 by
default, from N(0, 1) seeded like the forward task's input). For each layer of the
spec, in order, it records the mean and std of what the layer passes on (its
activation's output, or the layer's own for identity), the fraction of dead units
(exactly 0 for every row), and the Frobenius norm of the weight's gradient. The ratio
of the first layer's weight-gradient norm to the last layer's gives a one-line verdict:
``vanishing`` below ``task.vanishing_below``, ``exploding`` above
``task.exploding_above``, ``healthy`` in between.

The network runs in eval mode, so dropout is off and batch_norm uses its initial
running statistics: the figures describe the network as initialized, and the same
seed gives the same numbers.

Prints a per-layer table and the verdict; writes ``diagnose.png`` (the three measures
against depth), ``metrics.json``, ``spec.yaml`` and ``weights.safetensors``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

import torch
from torch.nn import functional

from annfactory.errors import ConfigError
from annfactory.factory import build_network, resolve_device, seeded_generator
from annfactory.network import Network
from annfactory.params import Param, validate_params
from annfactory.runs import save_model
from annfactory.spec import ActivationSpec, RunSpec
from annfactory.tasks import TaskContext
from annfactory.tasks.forward import random_input

__all__ = [
    "FIGURE_FILE",
    "FIGURE_PIXELS",
    "LOSSES",
    "DiagnoseOptions",
    "parse_options",
    "random_labels",
    "run",
]

LOSSES: Final = ("mean", "cross_entropy")
FIGURE_FILE: Final = "diagnose.png"
_FIGURE_INCHES: Final = (12.0, 3.6)
_FIGURE_DPI: Final = 100
#: The figure's size in pixels, (width, height).
FIGURE_PIXELS: Final = (
    round(_FIGURE_INCHES[0] * _FIGURE_DPI),
    round(_FIGURE_INCHES[1] * _FIGURE_DPI),
)
#: Beyond this many layers the x axis shows layer numbers instead of names.
_MAX_NAMED_TICKS: Final = 16

_OPTIONS: Final = {
    "loss": Param(str, "mean", "what the backward pass differentiates", choices=LOSSES),
    "batch_size": Param(
        int, 256, "rows in the random batch; null: the top-level batch_size", low=1
    ),
    "vanishing_below": Param(
        float,
        1e-3,
        "grad_ratio_first_last below this is vanishing",
        low=0.0,
        low_open=True,
    ),
    "exploding_above": Param(
        float,
        1e2,
        "grad_ratio_first_last above this is exploding",
        low=0.0,
        low_open=True,
    ),
}
_RATIO_MEANING: Final = "(first layer's weight-gradient norm / last layer's)"


@dataclass(frozen=True)
class DiagnoseOptions:
    """The validated options of the diagnose task (``task.*``).

    Attributes:
        loss: ``mean`` (the mean of the output) or ``cross_entropy`` (against random
            labels).
        batch_size: Rows in the random batch; None: the run's ``batch_size``.
        vanishing_below: A ``grad_ratio_first_last`` below this is ``vanishing``.
        exploding_above: A ``grad_ratio_first_last`` above this is ``exploding``.
    """

    loss: str = "mean"
    batch_size: int | None = 256
    vanishing_below: float = 1e-3
    exploding_above: float = 1e2

    def thresholds(self) -> dict[str, float]:
        """The verdict's thresholds, by option name."""
        return {
            "vanishing_below": self.vanishing_below,
            "exploding_above": self.exploding_above,
        }


def parse_options(given: Mapping[str, Any], key: str) -> DiagnoseOptions:
    """Validate the task's options (the ``task`` node without ``name``).

    Raises:
        ConfigError: An unknown option (names the closest one), a value of the wrong
            type or out of range, or ``vanishing_below`` not below ``exploding_above``;
            the message names ``<key>.<option>``.
    """
    values = dict(given)
    # null is allowed for batch_size only, and means the top-level batch_size.
    run_batch = "batch_size" in values and values["batch_size"] is None
    if run_batch:
        del values["batch_size"]
    options = validate_params(values, _OPTIONS, key, "task 'diagnose'")
    if options["vanishing_below"] >= options["exploding_above"]:
        raise ConfigError(
            f"{key}.vanishing_below",
            f"{options['vanishing_below']:g} is not below {key}.exploding_above "
            f"({options['exploding_above']:g}).",
            "Make vanishing_below the smaller one, e.g. 1e-3 and 1e2.",
        )
    return DiagnoseOptions(
        loss=options["loss"],
        batch_size=None if run_batch else options["batch_size"],
        vanishing_below=options["vanishing_below"],
        exploding_above=options["exploding_above"],
    )


def random_labels(spec: RunSpec, rows: int, device: torch.device) -> torch.Tensor:
    """Random class labels in ``[0, out_features)``, one per row, seeded from
    ``(seed, "labels")`` and drawn on the CPU like the input."""
    generator = seeded_generator(spec.seed, "labels")
    labels = torch.randint(0, spec.network.out_features, (rows,), generator=generator)
    return labels.to(device)


def run(context: TaskContext) -> dict[str, Any]:
    """Run the diagnosis; print it, plot it, and return the metrics.

    Raises:
        ConfigError: ``device=meta`` (there are no values to measure), or no layer has
            a weight that takes a gradient.
    """
    spec, options = context.spec, context.options
    assert isinstance(options, DiagnoseOptions)
    if spec.device == "meta":
        raise ConfigError(
            "device",
            "diagnose needs values, and device=meta allocates none.",
            "Use device=cpu (or cuda).",
        )
    rows = spec.batch_size if options.batch_size is None else options.batch_size
    model = build_network(spec)
    weights = _trainable_weights(model, spec)
    if not weights:
        raise ConfigError(
            "model.layers",
            "no layer has a weight that takes a gradient, so there is nothing to "
            "compare.",
            "Add a linear layer.",
        )
    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    x = random_input(dataclasses.replace(spec, batch_size=rows), device, dtype)
    labels = (
        random_labels(spec, rows, device) if options.loss == "cross_entropy" else None
    )

    model.eval()
    model.zero_grad(set_to_none=True)
    passed_on: dict[str, torch.Tensor] = {}
    hooks = []
    for layer in spec.network.layers:
        name = (
            f"{layer.name}_act" if layer.activation.name != "identity" else layer.name
        )
        module = model.get_submodule(name)
        hooks.append(module.register_forward_hook(_keep_output(layer.name, passed_on)))
    try:
        with torch.enable_grad():
            output = model(x)
            loss = _loss(
                options.loss, output, labels, spec.network.layers[-1].activation
            )
            torch.autograd.backward(loss)
    finally:
        for hook in hooks:
            hook.remove()

    layer_rows = [
        _layer_row(
            layer.name, layer.activation.describe(), passed_on[layer.name], weights
        )
        for layer in spec.network.layers
    ]
    norms = [
        row["weight_grad_norm"]
        for row in layer_rows
        if row["weight_grad_norm"] is not None
    ]
    ratio = _ratio(norms[0], norms[-1]) if norms else math.nan
    verdict, verdict_text = _verdict(ratio, options)
    diagnosis: dict[str, Any] = {
        # The sweep table lists the keys in this order and prints the first four.
        "verdict": verdict,
        "grad_ratio_first_last": ratio,
        "dead_fraction_max": max(row["dead_fraction"] for row in layer_rows),
        "activation_std_last": layer_rows[-1]["activation_std"],
        "loss": options.loss,
        "loss_value": loss.detach().double().item(),
        "thresholds": options.thresholds(),
        "verdict_text": verdict_text,
        "layers": layer_rows,
    }
    _print_report(context.out, spec, rows, options.loss, diagnosis)
    figure_path = context.path(FIGURE_FILE)
    if figure_path is not None:
        _plot(figure_path, layer_rows, verdict_text)
    save_model(context, model)
    return {
        "total_params": sum(p.numel() for p in model.parameters()),
        "output_shape": list(output.shape),
        "diagnose": diagnosis,
    }


def _trainable_weights(model: Network, spec: RunSpec) -> dict[str, torch.Tensor]:
    """Layer name -> its weight, for the layers whose weight takes a gradient."""
    weights: dict[str, torch.Tensor] = {}
    for layer in spec.network.layers:
        weight = getattr(model.get_submodule(layer.name), "weight", None)
        if isinstance(weight, torch.nn.Parameter) and weight.requires_grad:
            weights[layer.name] = weight
    return weights


def _keep_output(
    name: str, store: dict[str, torch.Tensor]
) -> Callable[[torch.nn.Module, Any, torch.Tensor], None]:
    """A forward hook that keeps a module's output (detached) under ``name``."""

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        store[name] = output.detach()

    return hook


def _loss(
    name: str,
    output: torch.Tensor,
    labels: torch.Tensor | None,
    last_activation: ActivationSpec,
) -> torch.Tensor:
    """The scalar to differentiate.

    ``cross_entropy`` treats the output as logits, unless the output layer already
    normalizes each row: after softmax it is ``nll_loss(log(output))``, after
    log_softmax ``nll_loss(output)``, so the loss is the cross-entropy of the
    network's own prediction in every case.
    """
    if name == "mean":
        return output.mean()
    assert labels is not None
    per_row = last_activation.params.get("dim", -1) in (-1, 1)
    if last_activation.name == "softmax" and per_row:
        return functional.nll_loss(torch.log(output), labels)
    if last_activation.name == "log_softmax" and per_row:
        return functional.nll_loss(output, labels)
    return functional.cross_entropy(output, labels)


def _layer_row(
    name: str,
    activation: str,
    passed_on: torch.Tensor,
    weights: Mapping[str, torch.Tensor],
) -> dict[str, Any]:
    """One layer's measures: statistics over every element of its output, and its
    weight-gradient norm (None for a layer without a weight)."""
    values = passed_on.double().reshape(passed_on.shape[0], -1)
    weight = weights.get(name)
    grad = None if weight is None else weight.grad
    return {
        "name": name,
        "activation": activation,
        "activation_mean": values.mean().item(),
        "activation_std": values.std().item() if values.numel() > 1 else 0.0,
        # A unit is dead if it outputs exactly 0 for every row of the batch.
        "dead_fraction": (values == 0).all(dim=0).double().mean().item(),
        "weight_grad_norm": (
            None if grad is None else torch.linalg.vector_norm(grad.double()).item()
        ),
    }


def _ratio(first: float, last: float) -> float:
    """``first / last``: inf if only ``last`` is 0, NaN if both are (0/0)."""
    if last > 0:
        return first / last
    return math.inf if first > 0 else math.nan


def _verdict(ratio: float, options: DiagnoseOptions) -> tuple[str, str]:
    """The verdict and its one-line explanation, with the thresholds used."""
    low, high = options.vanishing_below, options.exploding_above
    if math.isnan(ratio):
        return "vanishing", (
            "vanishing: grad_ratio_first_last=0/0: the first and last layers' "
            "weight gradients are both 0 (dead units? no gradient flows)"
        )
    if ratio < low:
        return "vanishing", (
            f"vanishing: grad_ratio_first_last={ratio:.2g} < {low:g} {_RATIO_MEANING}"
        )
    if ratio > high:
        return "exploding", (
            f"exploding: grad_ratio_first_last={ratio:.2g} > {high:g} {_RATIO_MEANING}"
        )
    return "healthy", (
        f"healthy: {low:g} <= grad_ratio_first_last={ratio:.2g} <= {high:g} "
        f"{_RATIO_MEANING}"
    )


def _print_report(
    out: TextIO, spec: RunSpec, rows: int, loss: str, diagnosis: Mapping[str, Any]
) -> None:
    print(
        f"diagnose: one forward and backward pass of {rows} random rows, eval mode "
        f"(seed={spec.seed} device={spec.device} dtype={spec.dtype})",
        file=out,
    )
    what = "mean of the output" if loss == "mean" else "against random labels"
    print(f"loss: {loss} ({what}) = {diagnosis['loss_value']:.6g}", file=out)
    layers: Sequence[Mapping[str, Any]] = diagnosis["layers"]
    name_width = max(len("layer"), *(len(row["name"]) for row in layers))
    act_width = max(len("activation"), *(len(row["activation"]) for row in layers))
    print(
        f"  {'layer':<{name_width}}  {'activation':<{act_width}}  {'mean':>10}  "
        f"{'std':>10}  {'dead':>6}  {'weight grad norm':>16}",
        file=out,
    )
    for row in layers:
        norm = row["weight_grad_norm"]
        print(
            f"  {row['name']:<{name_width}}  {row['activation']:<{act_width}}  "
            f"{row['activation_mean']:>10.4g}  {row['activation_std']:>10.4g}  "
            f"{row['dead_fraction']:>6.3f}  "
            f"{'n/a' if norm is None else format(norm, '.3e'):>16}",
            file=out,
        )
    print(diagnosis["verdict_text"], file=out)


def _plot(path: Path, rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """Three panels against the layer index: activation std and mean, dead
    fraction, and weight-gradient norm (log scale)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=_FIGURE_INCHES, dpi=_FIGURE_DPI, layout="constrained")
    activation_axes, dead_axes, grad_axes = figure.subplots(1, 3)
    index = list(range(1, len(rows) + 1))
    activation_axes.axhline(0.0, color="0.85", linewidth=0.8)
    activation_axes.plot(
        index, [row["activation_std"] for row in rows], marker="o", label="std"
    )
    activation_axes.plot(
        index, [row["activation_mean"] for row in rows], marker="s", label="mean"
    )
    activation_axes.set_title("activation (output of each layer)", fontsize=10)
    activation_axes.legend(fontsize=8)
    dead_axes.plot(
        index, [row["dead_fraction"] for row in rows], marker="o", color="tab:red"
    )
    dead_axes.set_ylim(-0.05, 1.05)
    dead_axes.set_title("dead units (0 for every row), fraction", fontsize=10)
    measured = [
        (i, row["weight_grad_norm"])
        for i, row in zip(index, rows, strict=True)
        if row["weight_grad_norm"] is not None
        and math.isfinite(row["weight_grad_norm"])
        and row["weight_grad_norm"] > 0
    ]
    if measured:
        grad_axes.plot(*zip(*measured, strict=True), marker="o", color="tab:green")
        grad_axes.set_yscale("log")
        # At least three decades, so that a healthy network reads as nearly flat
        # rather than as a steep climb across a narrow range.
        bottom, top = grad_axes.get_ylim()
        grad_axes.set_ylim(min(bottom, top / 1e3), top)
    else:
        grad_axes.text(
            0.5,
            0.5,
            "no nonzero weight gradient",
            ha="center",
            transform=grad_axes.transAxes,
        )
    grad_axes.set_title("weight-gradient norm (log scale)", fontsize=10)
    named = len(rows) <= _MAX_NAMED_TICKS
    for axes in (activation_axes, dead_axes, grad_axes):
        axes.set_xlim(0.5, len(rows) + 0.5)
        axes.grid(True, alpha=0.3)
        if named:
            axes.set_xticks(index, [row["name"] for row in rows], fontsize=7)
            axes.tick_params(axis="x", labelrotation=45)
        axes.set_xlabel("layer (input side first)", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, format="png")
