"""The activations task: each activation and its derivative, plotted and measured.

For every elementwise activation (one that maps each scalar to a scalar), the task
evaluates the function on a grid of ``points`` inputs over ``range`` in float64 (plus
x = 0 when the range spans it, where most activations are steepest), takes its
derivative with autograd, and reports:

- ``min`` and ``max``: the smallest and largest value of the function on the grid;
- ``max_derivative``: the largest value of the derivative on the grid;
- ``useful_range``: ``[lo, hi]``, the first and last grid inputs where the derivative
  is at least 1% of ``max_derivative`` (outside it the unit barely passes a gradient:
  sigmoid saturates beyond about ±6, tanh beyond about ±3, relu is flat for x <= 0).
  Everything in between counts, even where the derivative dips (gelu, silu).

softmax and log_softmax are not elementwise: each output depends on the whole input
vector, so they have no curve. They are applied to the score vector ``scores`` instead
(softmax: the probabilities and their sum; log_softmax: the log-probabilities and the
sum of their exponentials). Any other activation that is not elementwise is refused.

Writes ``activation_<name>.png`` per activation (the function and its derivative),
``activations_overview.png`` (all functions on one axes, all derivatives on another),
``softmax.png`` / ``log_softmax.png`` (bar charts), and ``metrics.json``. The network
is not built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.activations import activations
from annfactory.errors import ConfigError
from annfactory.figures import save_figure
from annfactory.layer_spec import parse_choice
from annfactory.params import Param, require_mapping
from annfactory.spec import ActivationSpec
from annfactory.tasks import TaskContext, check_option_names, tasks

if TYPE_CHECKING:
    import torch
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_RANGE",
    "DEFAULT_SCORES",
    "FIGURE_PIXELS",
    "USEFUL_FRACTION",
    "VECTOR_ACTIVATIONS",
    "ActivationsOptions",
    "overview_figure",
    "parse_options",
    "run",
]

#: Activations that act on a whole vector and are reported on the score vector.
VECTOR_ACTIVATIONS: Final = ("softmax", "log_softmax")
#: ``useful_range``: where the derivative is at least this fraction of its maximum.
USEFUL_FRACTION: Final = 0.01
#: Wide enough for every built-in's useful range (sigmoid's reaches about +-6), narrow
#: enough that the curves do not crowd together near 0; task.range=[-20,20] zooms out.
DEFAULT_RANGE: Final = (-8.0, 8.0)
DEFAULT_SCORES: Final = (0.2, 0.02, 0.15, 0.15, 0.15, 0.15, 1.0, 3.14)
_MAX_SCORES: Final = 1000
#: The hint when the options, or ``params``, are not a mapping.
_PAIRS: Final = "Give key: value pairs."
_POINTS = Param(int, 1000, "grid points over the range", low=2, high=1_000_000)
#: The options that are not one value (lists, a mapping); ``points`` is a Param.
_OTHER_OPTIONS: Final = ("names", "range", "scores", "params")
# The derivative of leaky_relu on x < 0 is exactly 1% of its maximum: keep rounding
# from dropping it.
_ROUNDING: Final = 1e-9

_DPI: Final = 100
#: Width and height in inches at 100 dpi of each kind of figure.
_FIGURE_SIZES: Final = {
    "activation": (10.0, 4.0),
    "overview": (12.0, 5.0),
    "vector": (8.0, 4.5),
}
_MARGINS: Final = {
    "activation": {"left": 0.07, "right": 0.985, "bottom": 0.12, "top": 0.85,
                   "wspace": 0.22},
    "overview": {"left": 0.06, "right": 0.985, "bottom": 0.1, "top": 0.88,
                 "wspace": 0.18},
    "vector": {"left": 0.09, "right": 0.98, "bottom": 0.12, "top": 0.9},
}  # fmt: skip
#: Pixel size (width, height) of each kind of PNG the task writes.
FIGURE_PIXELS: Final = {
    kind: (round(width * _DPI), round(height * _DPI))
    for kind, (width, height) in _FIGURE_SIZES.items()
}


@dataclass(frozen=True)
class ActivationsOptions:
    """The validated options of the activations task.

    Attributes:
        curves: Elementwise activations to plot, with their parameters.
        vectors: softmax / log_softmax to apply to ``scores``.
        range: The input range ``(lo, hi)``, lo < hi.
        points: Grid points over the range.
        scores: The score vector.
    """

    curves: tuple[ActivationSpec, ...]
    vectors: tuple[ActivationSpec, ...]
    range: tuple[float, float]
    points: int
    scores: tuple[float, ...]


# ------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------


def parse_options(given: Mapping[str, Any], key: str) -> ActivationsOptions:
    """Check the task's options before any work.

    Args:
        given: The ``task`` node without ``name``: ``names``, ``range``, ``points``,
            ``scores``, ``params``; a missing key takes its default.
        key: The node's config path (``task``).

    Returns:
        The options, with every activation resolved to its parameters.

    Raises:
        UnknownNameError: An unknown key or activation name (names the closest one).
        ConfigError: Any other bad value; the message names its config path.
    """
    given = require_mapping(given, key, fix=_PAIRS)
    check_option_names("activations", given, key)
    params = _parse_params(given.get("params"), f"{key}.params")
    names = _parse_names(given.get("names"), f"{key}.names")
    lo, hi = _parse_range(given.get("range", list(DEFAULT_RANGE)), f"{key}.range")
    points = _POINTS.validate(given.get("points", _POINTS.default), f"{key}.points")
    scores = _parse_scores(given.get("scores", list(DEFAULT_SCORES)), f"{key}.scores")
    chosen = [
        params.get(name)
        or parse_choice(activations, name, f"{key}.params.{name}", ActivationSpec)
        for name in names
    ]
    vectors = tuple(spec for spec in chosen if spec.name in VECTOR_ACTIVATIONS)
    for spec in vectors:
        dim = spec.params.get("dim", -1)
        if dim not in (-1, 0):
            raise ConfigError(
                f"{key}.params.{spec.name}.dim",
                f"dim {dim} does not exist: the score vector has one dimension.",
                "Use dim=-1 or dim=0.",
            )
    return ActivationsOptions(
        curves=tuple(spec for spec in chosen if spec.name not in VECTOR_ACTIVATIONS),
        vectors=vectors,
        range=(lo, hi),
        points=points,
        scores=scores,
    )


_NAMES_HINT: Final = (
    "Write e.g. task.names=[sigmoid,tanh], or task.names=null for every elementwise "
    "activation."
)


def _parse_names(node: Any, key: str) -> list[str]:
    """The activations to report; None: every elementwise one, and softmax."""
    if node is None:
        return [
            name
            for name, entry in activations.items()
            if entry.elementwise or name == "softmax"
        ]
    if not isinstance(node, list | tuple):
        raise ConfigError(
            key, f"{node!r} is not a list of activation names.", _NAMES_HINT
        )
    if not node:
        raise ConfigError(key, "the list of activations is empty.", _NAMES_HINT)
    names: list[str] = []
    for index, name in enumerate(node):
        item_key = f"{key}[{index}]"
        if not isinstance(name, str):
            raise ConfigError(
                item_key,
                f"{name!r} is not an activation name.",
                f"Use one of: {', '.join(activations.names())}.",
            )
        entry = activations.get(name, key=item_key)
        if not entry.elementwise and name not in VECTOR_ACTIVATIONS:
            elementwise = [n for n, e in activations.items() if e.elementwise]
            raise ConfigError(
                item_key,
                f"activation {name!r} is not elementwise, so it has no curve.",
                f"Use {', '.join(elementwise)}; or softmax or log_softmax "
                "(reported on task.scores).",
            )
        if name in names:
            raise ConfigError(
                item_key, f"{name!r} is listed twice.", "List each activation once."
            )
        names.append(name)
    return names


def _parse_params(node: Any, key: str) -> dict[str, ActivationSpec]:
    """``params.<name>``: each activation's parameters, checked against its schema.

    Every entry is checked, also those of activations that are not reported.
    """
    if node is None:
        return {}
    node = require_mapping(node, key, fix=_PAIRS)
    specs: dict[str, ActivationSpec] = {}
    for name, choice in node.items():
        entry_key = f"{key}.{name}"
        activations.get(str(name), key=entry_key)
        if isinstance(choice, Mapping) and "name" not in choice:
            choice = {"name": name, **choice}
        named = choice.get("name") if isinstance(choice, Mapping) else choice
        if isinstance(named, str) and named != name:
            where = f"{entry_key}.name" if isinstance(choice, Mapping) else entry_key
            raise ConfigError(
                where,
                f"{named!r} does not match the key: this entry holds the parameters "
                f"of {name!r}.",
                f"Use activation@{key}.{name}={name}, or activation@{key}.{named}="
                f"{named} for {named!r}.",
            )
        specs[str(name)] = parse_choice(activations, choice, entry_key, ActivationSpec)
    return specs


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_range(node: Any, key: str) -> tuple[float, float]:
    hint = "Write two finite numbers lo < hi, e.g. task.range=[-20,20]."
    if not (
        isinstance(node, list | tuple)
        and len(node) == 2
        and all(_is_number(v) for v in node)
    ):
        raise ConfigError(key, f"{node!r} is not two numbers [lo, hi].", hint)
    lo, hi = float(node[0]), float(node[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)):
        raise ConfigError(key, f"[{lo!r}, {hi!r}] is not finite.", hint)
    if not lo < hi:
        raise ConfigError(key, f"lo {lo:g} is not below hi {hi:g}.", hint)
    return lo, hi


def _parse_scores(node: Any, key: str) -> tuple[float, ...]:
    hint = "Write a list of finite numbers, e.g. task.scores=[0.2,1,3.14]."
    if not isinstance(node, list | tuple):
        raise ConfigError(key, f"{node!r} is not a list of scores.", hint)
    if not node:
        raise ConfigError(key, "the score vector is empty.", hint)
    if len(node) > _MAX_SCORES:
        raise ConfigError(
            key,
            f"{len(node)} scores are too many for a bar chart.",
            f"Give at most {_MAX_SCORES}.",
        )
    for index, value in enumerate(node):
        if not _is_number(value) or not math.isfinite(value):
            raise ConfigError(
                f"{key}[{index}]", f"{value!r} is not a finite number.", hint
            )
    return tuple(float(value) for value in node)


# ------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Curve:
    """An activation evaluated on the grid, with its derivative and measures."""

    spec: ActivationSpec
    x: torch.Tensor
    y: torch.Tensor
    derivative: torch.Tensor
    minimum: float
    maximum: float
    max_derivative: float
    useful_range: tuple[float, float] | None

    def metrics(self) -> dict[str, Any]:
        return {
            "min": self.minimum,
            "max": self.maximum,
            "max_derivative": self.max_derivative,
            "useful_range": None
            if self.useful_range is None
            else list(self.useful_range),
        }


@dataclass(frozen=True)
class _VectorResult:
    """softmax or log_softmax applied to the score vector."""

    spec: ActivationSpec
    scores: tuple[float, ...]
    values: tuple[float, ...]

    @property
    def is_log(self) -> bool:
        return self.spec.name == "log_softmax"

    @property
    def total(self) -> float:
        """Sum of the probabilities (of their exponentials for log_softmax)."""
        if self.is_log:
            return math.fsum(math.exp(value) for value in self.values)
        return math.fsum(self.values)

    def metrics(self) -> dict[str, Any]:
        if self.is_log:
            return {
                "scores": list(self.scores),
                "log_probabilities": list(self.values),
                "exp_sum": self.total,
            }
        return {
            "scores": list(self.scores),
            "probabilities": list(self.values),
            "sum": self.total,
        }


def _measure(spec: ActivationSpec, x: torch.Tensor) -> _Curve:
    """Evaluate an elementwise activation on ``x`` and differentiate it (autograd)."""
    import torch

    module = activations.get(spec.name).build(**spec.params).double()
    with torch.enable_grad():
        leaf = x.detach().clone().requires_grad_(True)
        # A copy goes in, so an in-place activation cannot modify the leaf.
        y = module(leaf.clone())
        if y.shape != leaf.shape:
            raise ConfigError(
                "task.names",
                f"activation {spec.name!r} is registered as elementwise but maps "
                f"{list(leaf.shape)} inputs to {list(y.shape)}.",
                "Register it with elementwise=False, or leave it out of task.names.",
            )
        if y.requires_grad:
            (grad,) = torch.autograd.grad(y.sum(), leaf, allow_unused=True)
        else:
            grad = None
    y = y.detach()
    derivative = torch.zeros_like(leaf) if grad is None else grad.detach()
    finite = torch.isfinite(derivative)
    max_derivative = derivative[finite].max().item() if bool(finite.any()) else math.nan
    useful: tuple[float, float] | None = None
    if math.isfinite(max_derivative) and max_derivative > 0:
        threshold = USEFUL_FRACTION * max_derivative * (1 - _ROUNDING)
        inside = torch.nonzero(finite & (derivative >= threshold)).flatten()
        useful = (x[inside[0]].item(), x[inside[-1]].item())
    finite_y = y[torch.isfinite(y)]
    return _Curve(
        spec=spec,
        x=x,
        y=y,
        derivative=derivative,
        minimum=finite_y.min().item() if finite_y.numel() else math.nan,
        maximum=finite_y.max().item() if finite_y.numel() else math.nan,
        max_derivative=max_derivative,
        useful_range=useful,
    )


def _measure_all(options: ActivationsOptions) -> list[_Curve]:
    """Every curve of ``options`` on the grid over ``options.range``."""
    import torch

    lo, hi = options.range
    x = torch.linspace(lo, hi, options.points, dtype=torch.float64)
    if lo < 0 < hi and not bool((x == 0).any()):
        # Most activations are steepest at 0 (sigmoid 0.25, tanh 1): measure it there.
        x = torch.sort(torch.cat([x, x.new_zeros(1)])).values
    return [_measure(spec, x) for spec in options.curves]


def _apply_to_scores(spec: ActivationSpec, scores: Sequence[float]) -> _VectorResult:
    import torch

    module = activations.get(spec.name).build(**spec.params)
    with torch.no_grad():
        values = module(torch.tensor(scores, dtype=torch.float64))
    return _VectorResult(spec, tuple(scores), tuple(values.tolist()))


# ------------------------------------------------------------------------------------
# The task
# ------------------------------------------------------------------------------------


@tasks.register(
    "activations",
    params={"points": _POINTS},
    parse_options=parse_options,
    other_options=_OTHER_OPTIONS,
    reads_batch_size=False,
)
def run(context: TaskContext) -> dict[str, Any]:
    """Measure and plot each activation; report softmax on the scores.

    Returns:
        ``{"activations": {name: {min, max, max_derivative, useful_range}}}``, plus
        ``softmax: {scores, probabilities, sum}`` and ``log_softmax: {scores,
        log_probabilities, exp_sum}`` when they are reported.
    """

    options: ActivationsOptions = context.options
    out = context.out
    curves = _measure_all(options)
    vectors = [_apply_to_scores(spec, options.scores) for spec in options.vectors]
    if curves:
        _print_table(out, curves, options)
    for result in vectors:
        _print_vector(out, result)
    written = _plot(context, curves, vectors)
    if written:
        print(f"plots: {', '.join(written)}", file=out)
    metrics: dict[str, Any] = {
        "activations": {curve.spec.name: curve.metrics() for curve in curves}
    }
    for result in vectors:
        metrics[result.spec.name] = result.metrics()
    return metrics


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _print_table(
    out: TextIO, curves: list[_Curve], options: ActivationsOptions
) -> None:
    lo, hi = options.range
    step = (hi - lo) / (options.points - 1)
    print(
        f"activations on [{lo:g}, {hi:g}], {options.points} points (step {step:.4g}); "
        f"useful range: where the derivative is >= {USEFUL_FRACTION:.0%} of its max",
        file=out,
    )
    labels = [curve.spec.describe() for curve in curves]
    width = max(len("activation"), *(len(label) for label in labels))
    print(
        f"  {'activation':<{width}}  {'min':>10}  {'max':>10}  {'max derivative':>14}"
        "  useful range",
        file=out,
    )
    for label, curve in zip(labels, curves, strict=True):
        useful = (
            "none"
            if curve.useful_range is None
            else f"[{_fmt(curve.useful_range[0])}, {_fmt(curve.useful_range[1])}]"
        )
        print(
            f"  {label:<{width}}  {_fmt(curve.minimum):>10}  {_fmt(curve.maximum):>10}"
            f"  {_fmt(curve.max_derivative):>14}  {useful}",
            file=out,
        )


def _print_vector(out: TextIO, result: _VectorResult) -> None:
    column = "log-probability" if result.is_log else "probability"
    print(f"{result.spec.describe()} of the scores:", file=out)
    width = max(len("score"), *(len(f"{score:g}") for score in result.scores))
    print(f"  {'score':>{width}}  {column:>15}", file=out)
    for score, value in zip(result.scores, result.values, strict=True):
        print(f"  {score:>{width}g}  {value:>15.6f}", file=out)
    total = "sum of exp" if result.is_log else "sum"
    print(f"  {total}: {result.total:.6f}", file=out)


# ------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------


def _plot(
    context: TaskContext, curves: list[_Curve], vectors: list[_VectorResult]
) -> list[str]:
    """Write the PNGs through ``context.path``; return their names (none without an
    output directory)."""
    targets: list[tuple[str, Any]] = [
        (f"activation_{curve.spec.name}.png", (_plot_curve, curve)) for curve in curves
    ]
    if curves:
        targets.append(("activations_overview.png", (_plot_overview, curves)))
    targets += [(f"{r.spec.name}.png", (_plot_vector, r)) for r in vectors]
    written = []
    for name, (plot, data) in targets:
        path = context.path(name)
        if path is None:
            return []
        plot(data, path)
        written.append(name)
    return written


def _figure(kind: str) -> Any:
    # The object API, not pyplot: no GUI backend, no global figure registry.
    from matplotlib.figure import Figure

    figure = Figure(figsize=_FIGURE_SIZES[kind], dpi=_DPI)
    # Fixed margins: a layout engine would double the time each figure takes.
    figure.subplots_adjust(**_MARGINS[kind])
    return figure


def _plot_curve(curve: _Curve, path: Path) -> None:
    label = curve.spec.describe()
    x = curve.x.numpy()
    figure = _figure("activation")
    function_axes, derivative_axes = figure.subplots(1, 2)
    function_axes.plot(x, curve.y.numpy(), color="tab:blue")
    function_axes.set_title("function")
    function_axes.set_ylabel(f"{curve.spec.name}(x)")
    derivative_axes.plot(x, curve.derivative.numpy(), color="tab:orange")
    derivative_axes.set_title("derivative (autograd)")
    derivative_axes.set_ylabel(f"d {curve.spec.name}(x) / dx")
    if curve.useful_range is not None:
        lo, hi = curve.useful_range
        derivative_axes.axvspan(
            lo,
            hi,
            color="tab:green",
            alpha=0.12,
            label=f"useful range [{_fmt(lo)}, {_fmt(hi)}]",
        )
        derivative_axes.axhline(
            USEFUL_FRACTION * curve.max_derivative,
            color="tab:green",
            linestyle="--",
            linewidth=0.8,
            label=f"{USEFUL_FRACTION:.0%} of max {_fmt(curve.max_derivative)}",
        )
    for axes in (function_axes, derivative_axes):
        _decorate(axes)
    if curve.useful_range is not None:
        # A fixed corner (loc="best" scans every vertex of every line, slowly) above
        # the curve: headroom keeps it off a derivative that is flat at its max.
        bottom, top = derivative_axes.get_ylim()
        derivative_axes.set_ylim(bottom, top + 0.25 * (top - bottom))
        derivative_axes.legend(loc="upper left", fontsize="small")
    figure.suptitle(f"{label} on [{_fmt(x[0])}, {_fmt(x[-1])}]")
    save_figure(figure, path, dpi=_DPI)


#: Line styles and markers, cycled independently of the ten colors so that curves
#: which coincide (elu and celu with alpha=1; every relu-like one for x > 0) stay
#: distinguishable: dashes and markers of one show through the other.
_LINE_STYLES: Final = ("-", "--", "-.", ":")
_MARKERS: Final = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
#: Markers per curve, staggered between curves so that they do not cover each other.
_MARKERS_PER_CURVE: Final = 8


def overview_figure(options: ActivationsOptions) -> Figure:
    """The figure of ``activations_overview.png`` for ``options``' curves."""
    return _overview(_measure_all(options))


def _plot_overview(curves: list[_Curve], path: Path) -> None:
    save_figure(_overview(curves), path, dpi=_DPI)


def _same_as(curves: Sequence[_Curve]) -> list[str | None]:
    """For each curve, the label of an earlier curve it coincides with (function and
    derivative), or None."""
    import torch

    same: list[str | None] = []
    for index, curve in enumerate(curves):
        twin = next(
            (
                other.spec.describe()
                for other in curves[:index]
                if torch.allclose(other.y, curve.y, rtol=0, atol=1e-12, equal_nan=True)
                and torch.allclose(
                    other.derivative,
                    curve.derivative,
                    rtol=0,
                    atol=1e-12,
                    equal_nan=True,
                )
            ),
            None,
        )
        same.append(twin)
    return same


def _overview(curves: list[_Curve]) -> Figure:
    figure: Figure = _figure("overview")
    function_axes, derivative_axes = figure.subplots(1, 2)
    count = len(curves)
    for index, (curve, twin) in enumerate(zip(curves, _same_as(curves), strict=True)):
        x = curve.x.numpy()
        step = max(1, len(x) // _MARKERS_PER_CURVE)
        label = curve.spec.describe()
        style = {
            "label": label if twin is None else f"{label} (= {twin})",
            "color": f"C{index % 10}",
            "linestyle": _LINE_STYLES[index % len(_LINE_STYLES)],
            "linewidth": 1.4,
            "marker": _MARKERS[index % len(_MARKERS)],
            "markersize": 4,
            "markevery": (step * index // max(count, 1) + step // 2, step),
        }
        function_axes.plot(x, curve.y.numpy(), **style)
        derivative_axes.plot(x, curve.derivative.numpy(), **style)
    function_axes.set_title("functions")
    function_axes.set_ylabel("f(x)")
    derivative_axes.set_title("derivatives (autograd)")
    derivative_axes.set_ylabel("f'(x)")
    for axes in (function_axes, derivative_axes):
        _decorate(axes)
        # Headroom above the curves for the legend: at the top left every activation
        # is small, since they all grow with x (and their slopes are small at -inf).
        bottom, top = axes.get_ylim()
        axes.set_ylim(bottom, top + 0.4 * (top - bottom))
        axes.legend(loc="upper left", fontsize="small", ncols=2)
    figure.suptitle(
        f"activations on [{_fmt(curves[0].x[0].item())}, "
        f"{_fmt(curves[0].x[-1].item())}]"
    )
    return figure


def _plot_vector(result: _VectorResult, path: Path) -> None:
    figure = _figure("vector")
    axes = figure.subplots()
    positions = list(range(len(result.scores)))
    bars = axes.bar(positions, result.values, color="tab:blue")
    if len(positions) <= 20:
        axes.bar_label(bars, fmt="%.3f", fontsize="small")
    axes.set_xticks(positions, [f"{score:g}" for score in result.scores])
    axes.set_xlabel("score")
    axes.set_ylabel("log-probability" if result.is_log else "probability")
    axes.grid(True, axis="y", alpha=0.3)
    total = "sum of exp" if result.is_log else "sum"
    axes.set_title(
        f"{result.spec.describe()} of the scores: {total} = {result.total:.6f}"
    )
    save_figure(figure, path, dpi=_DPI)


def _decorate(axes: Axes) -> None:
    axes.set_xlabel("x")
    axes.grid(True, alpha=0.3)
    axes.axhline(0, color="black", linewidth=0.5)
    axes.axvline(0, color="black", linewidth=0.5)
