"""The init_report task: every parameter's drawn values against its init's theory.

For each parameter it prints and records the init that filled it, the theoretical mean
and std (and bounds, for bounded inits) from the init scheme's
:attr:`~annfactory.inits.InitScheme.theory`, the measured ones, and whether they agree
by a statistical criterion (:func:`agreement`). It writes a histogram per parameter
with the theoretical density drawn over it (``init_<layer>.<param>.png``),
``metrics.json``, ``spec.yaml`` and ``weights.safetensors``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from annfactory.figures import save_figure
from annfactory.inits import Theory, inits
from annfactory.params import Param, validate_params
from annfactory.tasks import TaskContext, save_model, tasks

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import torch
    from matplotlib.axes import Axes

# torch, matplotlib and the factory are imported inside the functions that use them:
# the override check and --help import this module for the task's schema.

__all__ = [
    "OPTIONS",
    "Agreement",
    "Measured",
    "ReportOptions",
    "agreement",
    "measure",
    "parse_options",
    "run",
]

OPTIONS: Final = {
    "bins": Param(int, 50, "histogram bins of each init_<layer>.<param>.png", low=1),
    "max_z": Param(
        float,
        4.0,
        "largest deviation of the measured mean and std from theory, in standard "
        "errors",
        low=0,
        low_open=True,
    ),
    "min_n": Param(
        int, 30, "fewest values for a statistical verdict (constants: any)", low=2
    ),
    "histograms": Param(bool, True, "write a histogram PNG per parameter"),
}
"""The task's options (``conf/task/init_report.yaml`` holds their defaults)."""

#: Every histogram is this size, in inches at :data:`FIGURE_DPI` (640 x 400 pixels).
FIGURE_SIZE: Final = (6.4, 4.0)
FIGURE_DPI: Final = 100
#: Characters of legend text that fit in one row across a histogram at 8 points.
_LEGEND_ROW_CHARS: Final = 90


@dataclass(frozen=True)
class ReportOptions:
    """The validated options of the task (see :data:`OPTIONS`)."""

    bins: int = 50
    max_z: float = 4.0
    min_n: int = 30
    histograms: bool = True


@dataclass(frozen=True)
class Measured:
    """Statistics of a parameter's values, computed in float64.

    Attributes:
        n: Number of values.
        mean: Their mean.
        std: Their sample standard deviation (Bessel-corrected; 0 for one value).
        min: The smallest value.
        max: The largest value.
    """

    n: int
    mean: float
    std: float
    min: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
        }


@dataclass(frozen=True)
class Agreement:
    """Whether measured values agree with a theory, and why.

    Attributes:
        agrees: True or False; None when it cannot be judged (see ``note``).
        z_mean: ``(measured mean - mean) / SE(mean)``, if computed.
        z_std: ``(measured std - std) / SE(std)``, if computed.
        within_bounds: Every value lies in the theory's bounds (bounded kinds only).
        note: Why ``agrees`` is None, e.g. ``n too small (2 < 30)``.
    """

    agrees: bool | None
    z_mean: float | None = None
    z_std: float | None = None
    within_bounds: bool | None = None
    note: str = ""

    def label(self) -> str:
        """``yes``, ``no``, or the note of an unjudged parameter."""
        if self.agrees is None:
            return self.note or "unknown"
        return "yes" if self.agrees else "no"

    def to_dict(self) -> dict[str, Any]:
        return {
            "z_mean": self.z_mean,
            "z_std": self.z_std,
            "within_bounds": self.within_bounds,
            "note": self.note or None,
        }


def measure(tensor: torch.Tensor) -> Measured:
    """Count, mean, std, min and max of a tensor's values, in float64."""
    import torch

    values = tensor.detach().to(torch.float64)
    n = values.numel()
    return Measured(
        n=n,
        mean=values.mean().item(),
        std=values.std().item() if n > 1 else 0.0,
        min=values.min().item(),
        max=values.max().item(),
    )


def agreement(
    theory: Theory,
    measured: Measured,
    *,
    max_z: float = 4.0,
    min_n: int = 30,
    resolution: float = 2.0**-23,
) -> Agreement:
    r"""Judge whether ``measured`` values could have been drawn from ``theory``.

    - Constant: every value equals it, to the rounding of the dtype
      (:math:`|x - v| \le \text{resolution} \cdot |v|`), for any ``n``.
    - Otherwise, with fewer than ``min_n`` values: not judged (``agrees`` None).
    - Mean: :math:`|\bar{x} - \mu| \le z_{\max} \cdot \sigma / \sqrt{n}`, its
      standard error.
    - Std: :math:`|s - \sigma| \le z_{\max} \cdot \sigma \sqrt{(\kappa - 1) / (4n)}`,
      the large-sample standard error of a sample std
      (:math:`\mathrm{Var}(s^2) \approx \sigma^4 (\kappa - 1) / n`, with the kurtosis
      :math:`\kappa`: 3 for a normal, giving :math:`\sigma / \sqrt{2n}`; 9/5 for a
      uniform).
    - Uniform and truncated normal: also every value within :math:`[\text{low},
      \text{high}]`.

    Each comparison also allows the dtype's rounding,
    :math:`\text{resolution} \cdot (|\mu| + \sigma)`. For an orthogonal matrix the
    elements are not independent, but its mean has the same standard error and its
    mean square is exact, so the test holds (the std test is conservative).

    Args:
        theory: The distribution of each value.
        measured: The statistics of the values.
        max_z: The largest deviation allowed, in standard errors (4: a false alarm
            about once in 16,000 comparisons).
        min_n: The fewest values for a verdict on a random init.
        resolution: The relative rounding error of the tensor's dtype (its machine
            epsilon, ``torch.finfo(dtype).eps``).
    """
    n = measured.n
    if theory.kind == "gates":
        # Exact: 0 and the forget gate's value, in the proportions the theory gives.
        tolerance = resolution * (abs(theory.mean) + theory.std)
        low, high = theory.low or 0.0, theory.high or 0.0
        exact = (
            measured.min >= low - tolerance
            and measured.max <= high + tolerance
            and abs(measured.mean - theory.mean) <= tolerance
        )
        return Agreement(exact, within_bounds=exact)
    if theory.kind == "constant" or theory.std == 0:
        tolerance = resolution * abs(theory.mean)
        equal = (
            measured.min >= theory.mean - tolerance
            and measured.max <= theory.mean + tolerance
        )
        return Agreement(equal, within_bounds=equal)
    if n < min_n:
        return Agreement(None, note=f"n too small ({n} < {min_n})")
    sigma = theory.std
    slack = resolution * (abs(theory.mean) + sigma)
    se_mean = sigma / math.sqrt(n)
    se_std = sigma * math.sqrt(max(theory.kurtosis - 1.0, 0.0) / (4.0 * n))
    mean_error = measured.mean - theory.mean
    std_error = measured.std - sigma
    agrees = abs(mean_error) <= max_z * se_mean + slack
    agrees = agrees and abs(std_error) <= max_z * se_std + slack
    within: bool | None = None
    if theory.low is not None and theory.high is not None:
        edge = resolution * max(abs(theory.low), abs(theory.high))
        within = (
            measured.min >= theory.low - edge and measured.max <= theory.high + edge
        )
        agrees = agrees and within
    return Agreement(
        agrees,
        z_mean=mean_error / se_mean,
        z_std=std_error / se_std if se_std > 0 else None,
        within_bounds=within,
    )


def parse_options(given: Mapping[str, Any], key: str) -> ReportOptions:
    """Validate the task's options (errors name ``task.<option>``)."""
    return ReportOptions(**validate_params(given, OPTIONS, key, "task 'init_report'"))


@dataclass(frozen=True)
class _Row:
    name: str
    shape: tuple[int, ...]
    init: str
    theory: Theory | None
    measured: Measured | None
    check: Agreement

    def to_dict(self) -> dict[str, Any]:
        return {
            "init": self.init,
            "shape": list(self.shape),
            "theory": None if self.theory is None else self.theory.to_dict(),
            "measured": None if self.measured is None else self.measured.to_dict(),
            "agrees": self.check.agrees,
            "check": self.check.to_dict(),
        }


@tasks.register(
    "init_report",
    params=OPTIONS,
    parse_options=parse_options,
    reads_batch_size=False,
    metric=("all_agree",),
)
def run(context: TaskContext) -> dict[str, Any]:
    """Build the network, compare each parameter with its theory, report.

    Returns:
        ``{"init_report": {"<layer>.<param>": {init, shape, theory, measured, agrees,
        check}}, "all_agree": ..., "not_judged": [...], "criterion": {...}}``.
        ``all_agree`` is True when no judged parameter disagrees (also when none
        is judged, e.g. on the meta device); ``not_judged`` lists the parameters
        whose ``agrees`` is null.
    """
    import torch

    from annfactory.factory import build_network

    spec, options = context.spec, context.options
    assert isinstance(options, ReportOptions)
    model = build_network(spec)
    save_model(context, model)
    resolution = torch.finfo(getattr(torch, spec.dtype)).eps
    rows: list[_Row] = []
    tensors: dict[str, torch.Tensor] = {}
    for layer in spec.network.layers:
        for parameter in layer.parameters:
            name = f"{layer.name}.{parameter.name}"
            tensor = model.get_parameter(name)
            scheme = inits.get(parameter.init.name)
            theory = (
                None
                if scheme.theory is None
                else scheme.theory(parameter.init.params, parameter.shape)
            )
            measured = None if tensor.is_meta else measure(tensor)
            if measured is None:
                check = Agreement(None, note="no values (device=meta)")
            elif theory is None:
                check = Agreement(None, note="no theory")
            else:
                check = agreement(
                    theory,
                    measured,
                    max_z=options.max_z,
                    min_n=options.min_n,
                    resolution=resolution,
                )
            rows.append(
                _Row(
                    name,
                    parameter.shape,
                    parameter.describe_init(),
                    theory,
                    measured,
                    check,
                )
            )
            tensors[name] = tensor
    disagree = [row.name for row in rows if row.check.agrees is False]
    not_judged = [row.name for row in rows if row.check.agrees is None]
    _print_table(context.out, rows, options, spec.dtype)
    judged = len(rows) - len(not_judged)
    verdict = "no" if disagree else "yes" if judged else "n/a"
    print(
        f"all agree: {verdict} ({judged} of {len(rows)} judged"
        + (f"; disagree: {', '.join(disagree)}" if disagree else "")
        + (f"; not judged: {', '.join(not_judged)}" if not_judged else "")
        + ")",
        file=context.out,
    )
    _write_histograms(context, rows, tensors, options, spec.device)
    return {
        "init_report": {row.name: row.to_dict() for row in rows},
        "all_agree": not disagree,
        "not_judged": not_judged,
        "criterion": {
            "max_z": options.max_z,
            "min_n": options.min_n,
            "resolution": resolution,
        },
    }


# ------------------------------------------------------------------------------------
# The printed table
# ------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _print_table(
    out: TextIO, rows: list[_Row], options: ReportOptions, dtype: str
) -> None:
    header = (
        "parameter",
        "shape",
        "init",
        "theory",
        "mean",
        "std",
        "measured mean",
        "measured std",
        "z(mean)",
        "z(std)",
        "agrees",
    )
    lines = [header]
    for row in rows:
        theory, measured, check = row.theory, row.measured, row.check
        lines.append(
            (
                row.name,
                str(list(row.shape)),
                row.init,
                "no theory" if theory is None else theory.describe(),
                _number(None if theory is None else theory.mean),
                _number(None if theory is None else theory.std),
                _number(None if measured is None else measured.mean),
                _number(None if measured is None else measured.std),
                _number(check.z_mean, 2),
                _number(check.z_std, 2),
                check.label(),
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    numeric = range(4, 10)
    print("init report: each parameter's values against its init's theory", file=out)
    for line in lines:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  " + "  ".join(cells).rstrip(), file=out)
    z = f"{options.max_z:g}"
    print(
        f"agrees: |measured mean - mean| <= {z} SE with SE = std/sqrt(n), and "
        f"|measured std - std| <= {z} SE with SE = std*sqrt((kurtosis-1)/(4n))\n"
        "  (kurtosis 3 for normal, 1.8 for uniform); uniform and truncated normal: "
        "every value within its bounds;\n"
        f"  constant: every value equal to it (to {dtype} rounding); "
        f"n < {options.min_n}: not judged (n too small).\n"
        "  orthogonal: elements of a scaled semi-orthogonal matrix, "
        "std = gain/sqrt(max(rows, columns)).",
        file=out,
    )


# ------------------------------------------------------------------------------------
# Histograms
# ------------------------------------------------------------------------------------


def _write_histograms(
    context: TaskContext,
    rows: list[_Row],
    tensors: Mapping[str, torch.Tensor],
    options: ReportOptions,
    device: str,
) -> None:
    import torch

    if not options.histograms:
        print("histograms: off (task.histograms=false)", file=context.out)
        return
    if device == "meta":
        print("histograms: skipped (device=meta: no values)", file=context.out)
        return
    written = 0
    for row in rows:
        path = context.path(f"init_{row.name}.png")
        if path is None:
            print("histograms: skipped (no output directory)", file=context.out)
            return
        values = tensors[row.name].detach().to(torch.float64).cpu().numpy().ravel()
        # Few values spread over many bins read as noise: at most the Rice rule's
        # 2 n^(1/3) bins.
        bins = min(options.bins, math.ceil(2.0 * values.size ** (1.0 / 3.0)))
        _histogram(path, row, values, bins)
        written += 1
    print(
        f"histograms: {written} files init_<layer>.<param>.png "
        "(values, with the theoretical density)",
        file=context.out,
    )


def _value_line(axes: Axes, value: float, theory: Theory | None, count: int) -> None:
    """A line at ``value`` for a tensor whose ``count`` values all equal it, its
    value written beside it, with room around it and a constant theory's value."""
    axes.axvline(
        value,
        color="C0",
        alpha=0.55,
        linewidth=8,
        label=f"measured: all {count} values are {value:.4g}",
    )
    axes.text(
        value,
        0.97,
        f"  {value:.4g}",
        transform=axes.get_xaxis_transform(),
        ha="left",
        va="top",
        fontsize=9,
    )
    ends = [value]
    if theory is not None and (theory.kind == "constant" or theory.std == 0):
        ends.append(theory.mean)
    low, high = min(ends), max(ends)
    pad = max(0.5 * (high - low), 0.25 * max(abs(low), abs(high)), 0.5)
    axes.set_xlim(low - pad, high + pad)


def _theory_curve(axes: Axes, theory: Theory, first: float, last: float) -> None:
    """The theoretical density of an init over the histogram, whose bins span
    ``first`` to ``last``: over its support (a uniform's ends drawn as steps), or
    4.5 standard deviations each side of its mean; the x-axis spans both."""
    import numpy as np

    if theory.low is not None and theory.high is not None:
        low, high = theory.low, theory.high
    else:
        low = theory.mean - 4.5 * theory.std
        high = theory.mean + 4.5 * theory.std
    pad = 0.05 * (high - low)
    left = min(first, low - pad)
    right = max(last, high + pad)
    if theory.low is not None and theory.high is not None:
        inside = np.linspace(low, high, 400)
        xs = np.concatenate([[left, low], inside, [high, right]])
        ys = [0.0, 0.0, *(theory.density(float(x)) for x in inside), 0.0, 0.0]
    else:
        xs = np.linspace(left, right, 400)
        ys = [theory.density(float(x)) for x in xs]
    if theory.kind == "orthogonal":
        label = (
            f"theory (approximation): N(0, {theory.std:.4g}^2), "
            "std = gain/sqrt(max(rows, cols))"
        )
    else:
        label = f"theory: {theory.describe()}"
    axes.plot(xs, ys, color="C3", linewidth=2, label=label)
    axes.set_xlim(left, right)


def _histogram(
    path: Path, row: _Row, values: npt.NDArray[np.float64], bins: int
) -> None:
    """One parameter's histogram (density) with its theoretical density over it.

    A tensor whose values are all equal (a batch norm's weight of ones) has no
    density to draw: it gets a line at its value, labelled with it, instead of one
    bar of arbitrary width and height.
    """
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    axes = figure.add_subplot()
    measured, theory = row.measured, row.theory
    assert measured is not None
    constant = values.size > 0 and float(values.min()) == float(values.max())
    if constant:
        value = float(values[0])
        edges = np.array([value, value])
        _value_line(axes, value, theory, measured.n)
    else:
        _, edges, _ = axes.hist(
            values,
            bins=bins,
            density=True,
            color="C0",
            alpha=0.55,
            label=(
                f"measured: n={measured.n}, mean {measured.mean:.4g}, "
                f"std {measured.std:.4g}"
            ),
        )
    if theory is None:
        axes.plot([], [], " ", label="no theory for this init")
    elif theory.kind == "constant" or theory.std == 0:
        axes.axvline(
            theory.mean, color="C3", linewidth=2, label=f"theory: {theory.describe()}"
        )
    elif theory.kind == "gates":
        # Two values: a line at each, the forget gate's and the other gates' 0.
        label = f"theory: {theory.describe()}"
        for at in (theory.high, theory.low):
            axes.axvline(at or 0.0, color="C3", linewidth=2, label=label)
            label = "_"  # one legend entry for both lines
    else:
        _theory_curve(axes, theory, float(edges[0]), float(edges[-1]))
    axes.set_title(f"{row.name} {list(row.shape)}\n{row.init}", fontsize=9)
    axes.set_xlabel("value")
    if constant:
        axes.set_yticks([])  # one value: no density to read off
    else:
        axes.set_ylabel("density")
    # Below the axes, not over them: inside, a legend covers the bars of a small
    # tensor (out.bias), wherever its few values happen to fall.
    labels = axes.get_legend_handles_labels()[1]
    figure.legend(
        loc="outside lower center",
        # Side by side where both fit across the figure, else one above the other.
        ncols=2 if sum(len(label) for label in labels) <= _LEGEND_ROW_CHARS else 1,
        fontsize=8,
        title=f"agrees: {row.check.label()}",
        title_fontsize=8,
        frameon=False,
    )
    save_figure(figure, path, dpi=FIGURE_DPI, format="png")
