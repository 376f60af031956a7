"""The diagnose task: how signals and gradients fare layer by layer, at init.

One forward and one backward pass of a random batch (``task.batch_size`` rows, 256 by
default, from N(0, 1) seeded like the forward task's input). For each layer of the
spec, in order, it records the mean and std of what the layer passes on (its
activation's output, or the layer's own for identity), the fraction of dead units
(exactly 0 for every row), the fraction of values that are not finite, and the
Frobenius norm of the weight's gradient.

The backward pass differentiates ``task.loss``; by default (``auto``) the loss follows
the output activation: cross-entropy against random labels after softmax or
log_softmax (whose mean is a constant with a zero gradient), the mean of the output
elsewhere.

The verdict: ``non-finite`` if the loss, a layer's output or a weight gradient holds
an inf or NaN (the text names where it first appears); otherwise the ratio of the
first layer's weight-gradient norm to the last layer's decides: ``vanishing`` below
``task.vanishing_below``, ``exploding`` above ``task.exploding_above``, ``healthy``
in between.

The network runs in eval mode, so dropout is off and batch_norm uses its initial
running statistics: the figures describe the network as initialized, and the same
seed gives the same numbers.

Prints a per-layer table and the verdict; writes ``diagnose.png`` (the three measures
against depth, titled with the run's overrides), ``metrics.json``, ``spec.yaml`` and
``weights.safetensors``.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.errors import ConfigError
from annfactory.figures import save_figure
from annfactory.params import Param, validate_params
from annfactory.seeding import random_labels
from annfactory.spec import ActivationSpec, RunSpec
from annfactory.tasks import TaskContext, save_model, tasks

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from annfactory.network import Network

# torch, matplotlib and the factory are imported inside the functions that use them:
# the override check and --help import this module for the task's schema.

__all__ = [
    "FIGURE_FILE",
    "FIGURE_PIXELS",
    "LOSSES",
    "NON_FINITE",
    "DiagnoseOptions",
    "figure_title",
    "loss_for",
    "parse_options",
    "plot_diagnosis",
    "random_labels",
    "run",
]

LOSSES: Final = ("auto", "mean", "cross_entropy")
#: The verdict when the loss, a layer's output or a weight gradient is inf or NaN.
NON_FINITE: Final = "non-finite"
#: Output activations that normalize each row: the mean of their output is a constant,
#: so ``auto`` takes the cross-entropy for them.
_NORMALIZING: Final = ("softmax", "log_softmax")
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
    "loss": Param(
        str,
        "auto",
        "what the backward pass differentiates (auto: from the output activation)",
        choices=LOSSES,
    ),
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
        loss: ``auto`` (cross-entropy after a softmax or log_softmax output, the
            mean elsewhere), ``mean`` (the mean of the output) or ``cross_entropy``
            (against random labels).
        batch_size: Rows in the random batch; None: the run's ``batch_size``.
        vanishing_below: A ``grad_ratio_first_last`` below this is ``vanishing``.
        exploding_above: A ``grad_ratio_first_last`` above this is ``exploding``.
    """

    loss: str = "auto"
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


def loss_for(option: str, output_activation: ActivationSpec) -> tuple[str, str]:
    """The loss that ``task.loss=<option>`` takes on a network with this output
    activation, and how it is computed (one line, for the printout and metrics).

    ``auto`` takes the cross-entropy after softmax and log_softmax, whose outputs are
    probabilities (the mean of a softmax output is a constant, so its gradient is
    zero), and the mean of the output elsewhere.
    """
    name = option
    if option == "auto":
        normalizing = output_activation.name in _NORMALIZING
        name = "cross_entropy" if normalizing else "mean"
    if name == "mean":
        return name, "the mean of the output"
    dim = output_activation.params.get("dim", -1)
    if output_activation.name == "softmax":
        return name, (
            f"nll_loss(log_softmax(pre-activation, dim={dim})) against random labels "
            "(the output's softmax taken stably)"
        )
    if output_activation.name == "log_softmax":
        return name, "nll_loss(output) against random labels"
    return name, "cross_entropy(output as logits) against random labels"


@tasks.register(
    "diagnose",
    params=_OPTIONS,
    parse_options=parse_options,
    # The top-level batch_size only with task.batch_size=null.
    reads_batch_size=lambda options: options.batch_size is None,
    metric=("diagnose.verdict",),
)
def run(context: TaskContext) -> dict[str, Any]:
    """Run the diagnosis; print it, plot it, and return the metrics.

    Raises:
        ConfigError: ``device=meta`` (there are no values to measure), the output is
            not a vector, or no layer has a weight that takes a gradient.
    """
    import torch

    from annfactory.factory import build_network, resolve_device
    from annfactory.tasks.forward import random_input

    spec, options = context.spec, context.options
    assert isinstance(options, DiagnoseOptions)
    _check_diagnosable(spec)
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
    last = spec.network.layers[-1]
    loss_name, loss_formula = loss_for(options.loss, last.activation)
    notes = _loss_notes(options.loss, last.activation, spec.network.out_features, rows)
    device = resolve_device(spec.device)
    dtype: torch.dtype = getattr(torch, spec.dtype)
    x = random_input(dataclasses.replace(spec, batch_size=rows), device, dtype)
    labels = random_labels(spec, rows, device) if loss_name == "cross_entropy" else None
    output, loss, passed_on = _forward_and_backward(model, spec, x, labels, loss_name)

    layer_rows = [
        _layer_row(
            layer.name, layer.activation.describe(), passed_on[layer.name], weights
        )
        for layer in spec.network.layers
    ]
    loss_value = loss.detach().double().item()
    diagnosis = _diagnosis(
        layer_rows, loss_value, (loss_name, loss_formula), notes, options
    )
    _print_report(context.out, spec, rows, diagnosis)
    figure_path = context.path(FIGURE_FILE)
    if figure_path is not None:
        title = figure_title(context, diagnosis["verdict_text"])
        # The title goes into the PNG's metadata too, where scripts can read it.
        save_figure(
            plot_diagnosis(layer_rows, title),
            figure_path,
            format="png",
            metadata={"Title": title},
        )
    save_model(context, model)
    return {
        "total_params": sum(p.numel() for p in model.parameters()),
        "output_shape": list(output.shape),
        "diagnose": diagnosis,
    }


def _check_diagnosable(spec: RunSpec) -> None:
    """Refuse a network that has no values to measure (``device=meta``) or no
    vector output to draw class labels for.

    Raises:
        ConfigError: Names the key to change and how.
    """
    if spec.device == "meta":
        raise ConfigError(
            "device",
            "diagnose needs values, and device=meta allocates none.",
            "Use device=cpu (or cuda).",
        )
    if len(spec.network.output_shape) != 1:
        raise ConfigError(
            "model",
            "diagnose draws one class label per row, so it needs a vector output; "
            f"the network's output shape is {list(spec.network.output_shape)}.",
            "Use a model whose input (and so output) is a vector, or task=forward.",
        )


def _forward_and_backward(
    model: Network,
    spec: RunSpec,
    x: torch.Tensor,
    labels: torch.Tensor | None,
    loss_name: str,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass of ``x`` in eval mode and the loss's backward pass, with
    the gradients left on the parameters.

    Returns:
        The output, the loss, and each layer's output as it is passed on (after its
        activation), by layer name.
    """
    import torch

    last = spec.network.layers[-1]
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
    # The output layer's pre-activation, attached to the graph: a softmax output's
    # cross-entropy is taken from it stably (log_softmax), not as log(softmax).
    pre_activation: list[torch.Tensor] = []
    hooks.append(
        model.get_submodule(last.name).register_forward_hook(
            lambda _module, _inputs, y: pre_activation.append(y)
        )
    )
    try:
        with torch.enable_grad():
            output = model(x)
            loss = _loss(loss_name, output, pre_activation[-1], labels, last.activation)
            torch.autograd.backward(loss)
    finally:
        for hook in hooks:
            hook.remove()
    return output, loss, passed_on


def _diagnosis(
    layer_rows: list[dict[str, Any]],
    loss_value: float,
    loss: tuple[str, str],
    notes: list[str],
    options: DiagnoseOptions,
) -> dict[str, Any]:
    """The diagnosis: the verdict and the figures it rests on, from the layers'
    rows and the loss (``loss``: its name and formula)."""
    norms = [
        row["weight_grad_norm"]
        for row in layer_rows
        if row["weight_grad_norm"] is not None
    ]
    ratio = _ratio(norms[0], norms[-1]) if norms else math.nan
    nonfinite = _first_nonfinite(layer_rows, loss_value)
    if nonfinite is None:
        verdict, verdict_text = _verdict(ratio, norms, options)
        if notes:
            verdict_text += " [the loss is constant: see the note above]"
    else:
        verdict = NON_FINITE
        verdict_text = _nonfinite_text(nonfinite, layer_rows, loss_value)
    return {
        # The sweep table lists the keys in this order and prints the first four.
        "verdict": verdict,
        "grad_ratio_first_last": ratio,
        "dead_fraction_max": max(row["dead_fraction"] for row in layer_rows),
        "activation_std_last": layer_rows[-1]["activation_std"],
        "loss": loss[0],
        "loss_option": options.loss,
        "loss_formula": loss[1],
        "loss_value": loss_value,
        "nonfinite": nonfinite,
        "thresholds": options.thresholds(),
        "verdict_text": verdict_text,
        "notes": notes,
        "layers": layer_rows,
    }


def _trainable_weights(model: Network, spec: RunSpec) -> dict[str, torch.Tensor]:
    """Layer name -> its weight, for the layers whose weight takes a gradient: its
    ``weight``, else its first matrix named for a weight (a recurrent layer's
    ``weight_ih_l0``, an encoder's first ``in_proj_weight``)."""
    import torch

    weights: dict[str, torch.Tensor] = {}
    for layer in spec.network.layers:
        module = model.get_submodule(layer.name)
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter):
            names = [p.name for p in layer.parameters if len(p.shape) >= 2]
            first = next((n for n in names if "weight" in n.rpartition(".")[2]), None)
            weight = None if first is None else module.get_parameter(first)
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


def _loss_notes(
    option: str, output_activation: ActivationSpec, out_features: int, rows: int
) -> list[str]:
    """Warnings about the chosen loss: an explicit ``mean`` of a softmax output."""
    if option != "mean" or output_activation.name != "softmax":
        return []
    # Each row sums to 1 (each column, for dim 0): the mean is 1 / their length.
    per_row = output_activation.params.get("dim", -1) in (-1, 1)
    constant = f"1/{out_features if per_row else rows}"
    return [
        f"note: task.loss=mean of a softmax output is the constant {constant} (the "
        "probabilities sum to 1), so its gradient is zero and every weight gradient "
        "below is rounding noise; drop task.loss=mean (auto takes the cross-entropy)"
    ]


def _loss(
    name: str,
    output: torch.Tensor,
    pre_activation: torch.Tensor,
    labels: torch.Tensor | None,
    last_activation: ActivationSpec,
) -> torch.Tensor:
    """The scalar to differentiate (see :func:`loss_for`).

    ``cross_entropy`` treats the output as logits, unless the output layer already
    normalizes: after softmax it is ``nll_loss(log_softmax(pre-activation))``, after
    log_softmax ``nll_loss(output)``, so the loss is the cross-entropy of the
    network's own prediction, and the softmax is not applied twice.
    """
    from torch.nn import functional

    if name == "mean":
        return output.mean()
    assert labels is not None
    if last_activation.name == "softmax":
        dim = last_activation.params.get("dim", -1)
        return functional.nll_loss(functional.log_softmax(pre_activation, dim), labels)
    if last_activation.name == "log_softmax":
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
    import torch

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
        "nonfinite_fraction": (~torch.isfinite(values)).double().mean().item(),
        "weight_grad_norm": (
            None if grad is None else torch.linalg.vector_norm(grad.double()).item()
        ),
    }


def _ratio(first: float, last: float) -> float:
    """``first / last``: inf if only ``last`` is 0, NaN if both are (0/0)."""
    if last > 0:
        return first / last
    return math.inf if first > 0 else math.nan


def _first_nonfinite(
    rows: Sequence[Mapping[str, Any]], loss_value: float
) -> dict[str, Any] | None:
    """Where an inf or NaN first appears, in the order of the computation.

    The forward pass (the first layer, input side first, whose output holds one),
    then the loss, then the backward pass (the first weight gradient, output side
    first); None if everything is finite.
    """
    for row in rows:
        if row["nonfinite_fraction"] > 0:
            return {"stage": "forward", "layer": row["name"]}
    if not math.isfinite(loss_value):
        return {"stage": "loss", "layer": None}
    for row in reversed(rows):
        norm = row["weight_grad_norm"]
        if norm is not None and not math.isfinite(norm):
            return {"stage": "backward", "layer": row["name"]}
    return None


def _nonfinite_text(
    where: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], loss_value: float
) -> str:
    """The verdict's line for a run where an inf or NaN appeared."""
    norms = [row["weight_grad_norm"] for row in rows]
    measured = [norm for norm in norms if norm is not None]
    bad = sum(not math.isfinite(norm) for norm in measured)
    consequences = (
        f"loss={loss_value:.3g}, {bad} of {len(measured)} weight gradients non-finite"
    )
    layer = where["layer"]
    if where["stage"] == "forward":
        index = [row["name"] for row in rows].index(layer)
        before = (
            f" (the layer before, {rows[index - 1]['name']}, has std "
            f"{rows[index - 1]['activation_std']:.3g})"
            if index > 0
            else ""
        )
        return (
            f"{NON_FINITE}: the forward pass overflows at {layer}: its output is the "
            f"first to hold inf/NaN{before}; {consequences}"
        )
    if where["stage"] == "loss":
        return (
            f"{NON_FINITE}: every layer's output is finite but the loss is not; "
            f"{consequences}"
        )
    return (
        f"{NON_FINITE}: the backward pass overflows: {layer}'s weight gradient is the "
        f"first non-finite one from the output down; {consequences}"
    )


def _verdict(
    ratio: float, norms: Sequence[float], options: DiagnoseOptions
) -> tuple[str, str]:
    """The verdict and its one-line explanation, with the thresholds used."""
    low, high = options.vanishing_below, options.exploding_above
    if math.isnan(ratio):
        return "vanishing", (
            "vanishing: grad_ratio_first_last=0/0: the first and last layers' "
            "weight gradients are both 0 (dead units? no gradient flows)"
        )
    if ratio < low:
        why = (
            ": the first layer gets no gradient at all (dead units above it?)"
            if norms[0] == 0
            else ""
        )
        return "vanishing", (
            f"vanishing: grad_ratio_first_last={ratio:.2g} < {low:g} "
            f"{_RATIO_MEANING}{why}"
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
    out: TextIO, spec: RunSpec, rows: int, diagnosis: Mapping[str, Any]
) -> None:
    print(
        f"diagnose: one forward and backward pass of {rows} random rows, eval mode "
        f"(seed={spec.seed} device={spec.device} dtype={spec.dtype})",
        file=out,
    )
    chosen = " (auto)" if diagnosis["loss_option"] == "auto" else ""
    print(
        f"loss: {diagnosis['loss']}{chosen}, {diagnosis['loss_formula']} = "
        f"{diagnosis['loss_value']:.6g}",
        file=out,
    )
    for note in diagnosis["notes"]:
        print(note, file=out)
    layers: Sequence[Mapping[str, Any]] = diagnosis["layers"]
    name_width = max(len("layer"), *(len(row["name"]) for row in layers))
    act_width = max(len("activation"), *(len(row["activation"]) for row in layers))
    # The column appears only when it has something to say.
    show_nonfinite = any(row["nonfinite_fraction"] > 0 for row in layers)
    extra = f"  {'inf/NaN':>7}" if show_nonfinite else ""
    print(
        f"  {'layer':<{name_width}}  {'activation':<{act_width}}  {'mean':>10}  "
        f"{'std':>10}  {'dead':>6}{extra}  {'weight grad norm':>16}",
        file=out,
    )
    for row in layers:
        norm = row["weight_grad_norm"]
        extra = f"  {row['nonfinite_fraction']:>7.3f}" if show_nonfinite else ""
        print(
            f"  {row['name']:<{name_width}}  {row['activation']:<{act_width}}  "
            f"{row['activation_mean']:>10.4g}  {row['activation_std']:>10.4g}  "
            f"{row['dead_fraction']:>6.3f}{extra}  "
            f"{'n/a' if norm is None else format(norm, '.3e'):>16}",
            file=out,
        )
    print(diagnosis["verdict_text"], file=out)


#: Characters per title line at the title's font size across the figure's width.
_TITLE_WIDTH: Final = 170


def figure_title(context: TaskContext, verdict_text: str) -> str:
    """The run's overrides (what tells the figures of a sweep apart), then the
    verdict; Hydra's own settings (``hydra.run.dir=...``) are left out."""
    overrides = context.own_overrides
    what = " ".join(overrides) if overrides else _describe_network(context.spec)
    lines = textwrap.wrap(what, _TITLE_WIDTH) + textwrap.wrap(
        verdict_text, _TITLE_WIDTH
    )
    return "\n".join(lines)


def _describe_network(spec: RunSpec) -> str:
    """A short description for a run without overrides: each distinct (activation,
    weight init) of the layers, in order, with the layers it applies to."""
    groups: list[tuple[str, list[str]]] = []
    for layer in spec.network.layers:
        key = f"{layer.activation.describe()}, {layer.weight_init.describe()}"
        if groups and groups[-1][0] == key:
            groups[-1][1].append(layer.name)
        else:
            groups.append((key, [layer.name]))
    parts = [
        f"{names[0] if len(names) == 1 else f'{names[0]}..{names[-1]}'}: {key}"
        for key, names in groups
    ]
    return "; ".join(parts)


def plot_diagnosis(rows: Sequence[Mapping[str, Any]], title: str) -> Figure:
    """The figure of ``diagnose.png``: three panels against the layer index, the
    activation std and mean, the dead fraction, and the weight-gradient norm (log
    scale).

    Non-finite values are left out of every panel: layers whose output holds inf or
    NaN are shaded, and weight gradients that are not finite are red crosses along
    the top edge of their panel.

    Args:
        rows: The ``layers`` of the task's metrics, input side first.
        title: The figure's title.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=_FIGURE_INCHES, dpi=_FIGURE_DPI, layout="constrained")
    activation_axes, dead_axes, grad_axes = figure.subplots(1, 3)
    index = list(range(1, len(rows) + 1))
    _plot_activations(activation_axes, index, rows)
    first_bad = next(
        (i for i, row in zip(index, rows, strict=True) if row["nonfinite_fraction"]),
        None,
    )
    # From the first layer whose output holds inf or NaN on (the shaded region), a
    # unit with a NaN row is not "0 for every row": a fraction there would read as
    # "no dead units". No point.
    dead = [
        None if first_bad is not None and i >= first_bad else row["dead_fraction"]
        for i, row in zip(index, rows, strict=True)
    ]
    dead_axes.plot(*_finite_points(index, dead), marker="o", color="tab:red")
    dead_axes.set_ylim(-0.05, 1.05)
    dead_axes.set_title("dead units (0 for every row), fraction", fontsize=10)
    _plot_gradients(grad_axes, index, rows)
    named = len(rows) <= _MAX_NAMED_TICKS
    for axes in (activation_axes, dead_axes, grad_axes):
        if first_bad is not None:
            axes.axvspan(
                first_bad - 0.5,
                len(rows) + 0.5,
                color="tab:red",
                alpha=0.12,
                label="output holds inf/NaN",
            )
        axes.set_xlim(0.5, len(rows) + 0.5)
        axes.grid(True, alpha=0.3)
        if named:
            axes.set_xticks(index, [row["name"] for row in rows], fontsize=7)
            axes.tick_params(axis="x", labelrotation=45)
        axes.set_xlabel("layer (input side first)", fontsize=8)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8, loc="best")
    figure.suptitle(title, fontsize=10)
    return figure


def _finite_points(
    index: Sequence[int], values: Sequence[float | None], positive: bool = False
) -> tuple[list[int], list[float]]:
    """The (x, y) points whose value is finite (and > 0 for a log axis)."""
    kept = [
        (i, value)
        for i, value in zip(index, values, strict=True)
        if value is not None and math.isfinite(value) and (value > 0 or not positive)
    ]
    return [i for i, _ in kept], [value for _, value in kept]


def _plot_activations(
    axes: Any, index: Sequence[int], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Std and mean of each layer's output: on a linear axis while they stay within
    two decades, else (an exploding or collapsing signal) std and |mean| on a log
    axis, where a linear one would show only the largest layer."""
    stds = [row["activation_std"] for row in rows]
    means = [row["activation_mean"] for row in rows]
    positive = _finite_points(index, stds, positive=True)[1]
    spread = max(positive) / min(positive) if positive else 1.0
    log = spread > 1e2 or any(row["nonfinite_fraction"] for row in rows)
    if log:
        means = [None if m is None else abs(m) for m in means]
    axes.plot(*_finite_points(index, stds, log), marker="o", label="std")
    axes.plot(
        *_finite_points(index, means, log),
        marker="s",
        label="|mean|" if log else "mean",
    )
    if log:
        axes.set_yscale("log")
        axes.set_title("activation (output of each layer), log scale", fontsize=10)
    else:
        axes.axhline(0.0, color="0.85", linewidth=0.8)
        axes.set_title("activation (output of each layer)", fontsize=10)


def _plot_gradients(
    axes: Any, index: Sequence[int], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Weight-gradient norms on a log axis; non-finite ones as red crosses along
    the top edge."""
    norms = [row["weight_grad_norm"] for row in rows]
    xs, ys = _finite_points(index, norms, positive=True)
    if xs:
        axes.plot(xs, ys, marker="o", color="tab:green")
        axes.set_yscale("log")
        # At least three decades, so that a healthy network reads as nearly flat
        # rather than as a steep climb across a narrow range.
        bottom, top = axes.get_ylim()
        axes.set_ylim(min(bottom, top / 1e3), top)
    else:
        axes.text(
            0.5,
            0.5,
            "no finite nonzero weight gradient",
            ha="center",
            transform=axes.transAxes,
        )
        axes.set_yticks([])
    bad = [
        i
        for i, norm in zip(index, norms, strict=True)
        if norm is not None and not math.isfinite(norm)
    ]
    if bad:
        axes.plot(
            bad,
            [0.97] * len(bad),
            linestyle="none",
            marker="x",
            color="tab:red",
            transform=axes.get_xaxis_transform(),
            label="inf/NaN gradient",
        )
    axes.set_title("weight-gradient norm (log scale)", fontsize=10)
