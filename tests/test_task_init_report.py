"""The init_report task: theory of every init, the agreement criterion, the report.

Theory numbers are checked against formulas written out here and against scipy; the
agreement criterion is checked on both sides (right theories pass on large tensors,
slightly wrong ones fail); the report is checked as printed, as ``metrics.json`` and
as histogram PNGs. Networks are made through the public path, ``parse_run`` then the
task.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from omegaconf import OmegaConf
from scipy import stats

import annfactory
from annfactory import ConfigError, InitScheme, UnknownNameError, inits
from annfactory.inits import Theory, fan_in_and_fan_out
from annfactory.tasks import run_named_task
from annfactory.tasks.init_report import (
    FIGURE_DPI,
    FIGURE_SIZE,
    OPTIONS,
    Measured,
    ReportOptions,
    agreement,
    measure,
    parse_options,
)
from specs import one_linear_layer

CONF = Path(__file__).resolve().parents[1] / "conf"
#: The large layer of the statistical tests: 512 -> 1024, so 524,288 weights.
FAN_IN, FAN_OUT = 512, 1024
#: Pixel size of every histogram: (rows, columns).
PNG_PIXELS = (
    round(FIGURE_SIZE[1] * FIGURE_DPI),
    round(FIGURE_SIZE[0] * FIGURE_DPI),
)
ENTRY_KEYS = {"init", "shape", "theory", "measured", "agrees", "check"}
#: Inits for a tensor of any shape (forget_gate, an LSTM's bias: its own test).
INIT_NAMES = [n for n, s in inits.items() if n != "default" and s.fits is None]


def _spec(
    weight_init: Any = "default",
    bias_init: Any = "default",
    activation: Any = "relu",
    fan_in: int = FAN_IN,
    fan_out: int = FAN_OUT,
    **top: Any,
) -> annfactory.RunSpec:
    """A network of one linear layer ``l1``, ``fan_in`` -> ``fan_out``."""
    return one_linear_layer(fan_in, fan_out, weight_init, bias_init, activation, **top)


def _report(
    spec: annfactory.RunSpec, output_dir: Path | None = None, **options: Any
) -> tuple[dict[str, Any], str]:
    """The task's metrics and its printout."""
    out = io.StringIO()
    metrics = run_named_task(
        {"name": "init_report", **options}, spec, output_dir, out=out
    )
    return metrics, out.getvalue()


def _normal_sample(std: float, n: int = 500_000, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=generator, dtype=torch.float64) * std


# ------------------------------------------------------------------------------------
# Every init agrees with its theory on a large tensor
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", INIT_NAMES)
def test_every_init_agrees_with_its_theory_on_a_large_tensor(name: str) -> None:
    one_dimensional = inits.get(name).min_dim <= 1
    spec = _spec(weight_init=name, bias_init=name if one_dimensional else "zeros")
    metrics, _ = _report(spec)
    weight = metrics["init_report"]["l1.weight"]
    assert weight["init"].startswith(name)
    assert weight["measured"]["n"] == FAN_IN * FAN_OUT
    assert weight["theory"] is not None, f"init {name!r} has no theory"
    assert weight["agrees"] is True, weight
    assert metrics["init_report"]["l1.bias"]["agrees"] is True
    assert metrics["all_agree"] is True
    assert metrics["not_judged"] == []


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("kaiming_normal", {"mode": "fan_out"}),
        ("kaiming_uniform", {"a": 0.2, "nonlinearity": "leaky_relu"}),
        ("xavier_normal", {"gain": 3.0}),
        ("orthogonal", {"gain": 0.5}),
        ("uniform", {"a": 2.0, "b": 2.5}),
        ("normal", {"mean": -3.0, "std": 0.01}),
        ("trunc_normal", {"mean": 0.5, "std": 1.0, "a": 1.0, "b": 3.0}),
        ("constant", {"val": 0.1}),
    ],
)
def test_inits_with_parameters_agree_with_their_theory(
    name: str, params: dict[str, Any]
) -> None:
    # 131,072 values; orthogonal on a tall matrix too (512 rows, 256 columns).
    spec = _spec(weight_init={"name": name, **params}, fan_in=256, fan_out=512)
    metrics, _ = _report(spec)
    assert metrics["init_report"]["l1.weight"]["agrees"] is True


@pytest.mark.parametrize("dtype", ["float64", "bfloat16", "float16"])
def test_agreement_allows_for_the_rounding_of_the_dtype(dtype: str) -> None:
    spec = _spec(
        weight_init="xavier_uniform", bias_init={"name": "constant", "val": 0.1}
    )
    metrics, _ = _report(dataclasses.replace(spec, dtype=dtype))
    assert metrics["all_agree"] is True
    assert metrics["criterion"]["resolution"] == torch.finfo(getattr(torch, dtype)).eps


# ------------------------------------------------------------------------------------
# The agreement criterion rejects a slightly wrong theory
# ------------------------------------------------------------------------------------


def test_a_five_percent_std_error_is_flagged_on_500k_values() -> None:
    measured = measure(_normal_sample(1.0))
    assert agreement(Theory("normal", 0.0, 1.0), measured).agrees is True
    for wrong in (0.95, 1.05):
        check = agreement(Theory("normal", 0.0, wrong), measured)
        assert check.agrees is False
        assert check.z_std is not None
        assert abs(check.z_std) > 30


def test_a_small_mean_shift_is_flagged() -> None:
    measured = measure(_normal_sample(1.0) + 0.01)  # 7 standard errors on 500k values
    check = agreement(Theory("normal", 0.0, 1.0), measured)
    assert check.agrees is False
    assert check.z_mean == pytest.approx(0.01 * math.sqrt(500_000), abs=4.0)
    assert agreement(Theory("normal", 0.01, 1.0), measured).agrees is True


def test_a_five_percent_uniform_bound_error_is_flagged() -> None:
    generator = torch.Generator().manual_seed(1)
    values = torch.rand(500_000, generator=generator, dtype=torch.float64) * 2.0 - 1.0
    measured = measure(values)
    uniform = Theory("uniform", 0.0, 2.0 / math.sqrt(12), low=-1.0, high=1.0)
    assert agreement(uniform, measured).agrees is True
    # Wider bounds: the values stay inside, but their std is 5% too small.
    wider = Theory("uniform", 0.0, 2.1 / math.sqrt(12), low=-1.05, high=1.05)
    assert agreement(wider, measured).agrees is False
    # Narrower bounds: values fall outside.
    narrower = Theory("uniform", 0.0, 1.9 / math.sqrt(12), low=-0.95, high=0.95)
    check = agreement(narrower, measured)
    assert check.agrees is False
    assert check.within_bounds is False


def test_the_std_standard_error_uses_the_kurtosis() -> None:
    # A uniform's sample std varies less than a normal's: sqrt((9/5 - 1) / 4) vs
    # sqrt(1/2) standard errors per sqrt(n).
    measured = Measured(n=10_000, mean=0.0, std=1.0, min=-1.7, max=1.7)
    normal = agreement(Theory("normal", 0.0, 0.98), measured)
    uniform = agreement(
        Theory("uniform", 0.0, 0.98, low=-1.8, high=1.8, kurtosis=1.8), measured
    )
    assert normal.z_std is not None
    assert uniform.z_std is not None
    assert uniform.z_std / normal.z_std == pytest.approx(math.sqrt(0.5 / 0.2))


def test_constants_must_match_exactly_at_any_size() -> None:
    theory = Theory("constant", 0.25, 0.0, low=0.25, high=0.25)
    exact = Measured(n=1, mean=0.25, std=0.0, min=0.25, max=0.25)
    assert agreement(theory, exact).agrees is True
    off = Measured(n=3, mean=0.25, std=0.001, min=0.249, max=0.251)
    assert agreement(theory, off).agrees is False
    zero = Theory("constant", 0.0, 0.0, low=0.0, high=0.0)
    assert agreement(zero, Measured(2, 1e-30, 1e-30, 0.0, 1e-30)).agrees is False


def test_too_few_values_are_not_judged() -> None:
    measured = Measured(n=29, mean=5.0, std=9.0, min=0.0, max=20.0)
    check = agreement(Theory("normal", 0.0, 1.0), measured, min_n=30)
    assert check.agrees is None
    assert check.label() == "n too small (29 < 30)"


def test_a_registered_init_with_a_wrong_theory_is_reported_as_disagreeing() -> None:
    def wide_normal(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
        torch.nn.init.normal_(tensor, 0.0, 1.05, generator=generator)

    def claimed(params: Any, shape: tuple[int, ...]) -> Theory:
        return Theory("normal", 0.0, 1.0)

    inits.register("wide_normal", InitScheme(apply=wide_normal, theory=claimed))
    metrics, printed = _report(_spec(weight_init="wide_normal", bias_init="zeros"))
    assert metrics["init_report"]["l1.weight"]["agrees"] is False
    assert metrics["all_agree"] is False
    assert "all agree: no" in printed
    assert "disagree: l1.weight" in printed


# ------------------------------------------------------------------------------------
# Theory numbers against the formulas, computed here
# ------------------------------------------------------------------------------------


def _theory(name: str, params: dict[str, Any], shape: tuple[int, ...]) -> Theory:
    function = inits.get(name).theory
    assert function is not None
    return function(params, shape)


@pytest.mark.parametrize(
    "shape", [(3, 5), (7, 2), (16, 8, 3, 3), (4, 6, 5), (1, 1), (8, 3, 1, 2, 2)]
)
def test_fans_match_torch(shape: tuple[int, ...]) -> None:
    fans = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert fan_in_and_fan_out(shape) == fans


def test_fans_refuse_a_vector() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fan_in_and_fan_out((5,))


@pytest.mark.parametrize(("a", "b"), [(0.0, 1.0), (-0.3, 0.7), (2.0, 2.5)])
def test_uniform_theory(a: float, b: float) -> None:
    theory = _theory("uniform", {"a": a, "b": b}, (10,))
    assert theory.kind == "uniform"
    assert (theory.low, theory.high) == (a, b)
    assert theory.mean == pytest.approx((a + b) / 2)
    assert theory.std == pytest.approx((b - a) / math.sqrt(12))
    assert theory.std == pytest.approx(stats.uniform(a, b - a).std())
    assert theory.kurtosis == pytest.approx(1.8)


@pytest.mark.parametrize("shape", [(300, 200), (64, 16, 3, 3)])
@pytest.mark.parametrize("gain", [1.0, 5.0 / 3.0])
def test_xavier_theories(shape: tuple[int, ...], gain: float) -> None:
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    normal = _theory("xavier_normal", {"gain": gain}, shape)
    assert normal.kind == "normal"
    assert normal.mean == 0.0
    assert normal.std == pytest.approx(gain * math.sqrt(2.0 / (fan_in + fan_out)))
    uniform = _theory("xavier_uniform", {"gain": gain}, shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    assert uniform.kind == "uniform"
    assert uniform.low == pytest.approx(-bound)
    assert uniform.high == pytest.approx(bound)
    assert uniform.std == pytest.approx(bound / math.sqrt(3.0))


@pytest.mark.parametrize(
    ("a", "mode", "nonlinearity"),
    [
        (0.0, "fan_in", "relu"),
        (0.0, "fan_out", "relu"),
        (0.2, "fan_in", "leaky_relu"),
        (0.0, "fan_out", "tanh"),
        (math.sqrt(5), "fan_in", "leaky_relu"),
    ],
)
def test_kaiming_theories(a: float, mode: str, nonlinearity: str) -> None:
    shape = (300, 200, 2)
    params = {"a": a, "mode": mode, "nonlinearity": nonlinearity}
    fan = 400 if mode == "fan_in" else 600
    gain = torch.nn.init.calculate_gain(nonlinearity, a)  # type: ignore[arg-type]
    normal = _theory("kaiming_normal", params, shape)
    assert normal.kind == "normal"
    assert normal.std == pytest.approx(gain / math.sqrt(fan))
    uniform = _theory("kaiming_uniform", params, shape)
    assert uniform.kind == "uniform"
    assert uniform.high == pytest.approx(gain * math.sqrt(3.0 / fan))
    assert uniform.low == pytest.approx(-gain * math.sqrt(3.0 / fan))
    assert uniform.std == pytest.approx(gain / math.sqrt(fan))


@pytest.mark.parametrize("shape", [(150, 250), (250, 150), (64, 8, 3), (40, 40)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_theory_is_the_rms_of_an_orthogonal_matrix(
    shape: tuple[int, ...], gain: float
) -> None:
    theory = _theory("orthogonal", {"gain": gain}, shape)
    rows, columns = shape[0], math.prod(shape[1:])
    assert theory.kind == "orthogonal"
    assert theory.mean == 0.0
    assert theory.std == pytest.approx(gain / math.sqrt(max(rows, columns)))
    # The mean of squares is exact: gain^2 min(r, c) / (r c).
    tensor = torch.empty(shape, dtype=torch.float64)
    torch.nn.init.orthogonal_(tensor, gain, generator=torch.Generator().manual_seed(0))
    mean_square = tensor.pow(2).mean().item()
    assert mean_square == pytest.approx(
        gain**2 * min(rows, columns) / (rows * columns), rel=1e-9
    )
    assert math.sqrt(mean_square) == pytest.approx(theory.std, rel=1e-9)


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"),
    [
        (0.0, 1.0, -2.0, 2.0),
        (0.5, 1.0, -1.0, 1.5),
        (0.0, 0.1, -0.05, 0.3),
        (0.0, 1.0, 1.0, 3.0),
        (0.0, 1.0, -8.0, -5.0),
        (2.0, 0.5, -100.0, 100.0),
    ],
)
def test_trunc_normal_theory_matches_scipy(
    mean: float, std: float, a: float, b: float
) -> None:
    theory = _theory("trunc_normal", {"mean": mean, "std": std, "a": a, "b": b}, (5,))
    reference = stats.truncnorm((a - mean) / std, (b - mean) / std, mean, std)
    assert theory.kind == "truncated_normal"
    assert (theory.low, theory.high, theory.loc, theory.scale) == (a, b, mean, std)
    assert theory.mean == pytest.approx(reference.mean(), rel=1e-7, abs=1e-12)
    assert theory.std == pytest.approx(reference.std(), rel=1e-6)
    excess = float(reference.stats(moments="k"))
    assert theory.kurtosis == pytest.approx(excess + 3.0, rel=1e-4)


@pytest.mark.parametrize(
    ("name", "params", "value"),
    [
        ("constant", {"val": -2.0}, -2.0),
        ("zeros", {}, 0.0),
        ("ones", {}, 1.0),
        ("normal", {"mean": 0.75, "std": 0.0}, 0.75),
        ("xavier_normal", {"gain": 0.0}, 0.0),
        ("orthogonal", {"gain": 0.0}, 0.0),
    ],
)
def test_degenerate_inits_are_constants(
    name: str, params: dict[str, Any], value: float
) -> None:
    theory = _theory(name, params, (4, 6))
    assert theory.kind == "constant"
    assert (theory.mean, theory.std, theory.low, theory.high) == (
        value,
        0,
        value,
        value,
    )


@pytest.mark.parametrize(
    ("theory", "reference"),
    [
        (Theory("normal", 0.5, 2.0), stats.norm(0.5, 2.0)),
        (
            Theory("uniform", 0.5, 1.0 / math.sqrt(12), low=0.0, high=1.0),
            stats.uniform(0.0, 1.0),
        ),
        (
            _theory("trunc_normal", {"mean": 0.5, "std": 1.0, "a": -1.0, "b": 1.5}, ()),
            stats.truncnorm(-1.5, 1.0, 0.5, 1.0),
        ),
    ],
)
def test_theory_densities_match_scipy(theory: Theory, reference: Any) -> None:
    for x in np.linspace(-3.0, 3.0, 61):
        if theory.low is not None and x in (theory.low, theory.high):
            continue  # scipy and we may differ on the edge itself
        assert theory.density(float(x)) == pytest.approx(float(reference.pdf(x)))


def test_a_theory_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="needs low and high"):
        Theory("uniform", 0.0, 1.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        Theory("normal", 0.0, -1.0)
    with pytest.raises(ValueError, match="a constant has no density"):
        Theory("constant", 1.0, 0.0).density(1.0)


# ------------------------------------------------------------------------------------
# The report: table, metrics.json, histograms
# ------------------------------------------------------------------------------------


def test_default_init_of_linear_is_reported_with_its_resolved_scheme() -> None:
    metrics, printed = _report(_spec(activation="identity"))
    bound = 1.0 / math.sqrt(FAN_IN)
    for name in ("l1.weight", "l1.bias"):
        entry = metrics["init_report"][name]
        assert entry["theory"]["kind"] == "uniform"
        assert entry["theory"]["low"] == pytest.approx(-bound)
        assert entry["theory"]["high"] == pytest.approx(bound)
        assert entry["agrees"] is True
    weight_init = metrics["init_report"]["l1.weight"]["init"]
    assert weight_init == (
        "default: kaiming_uniform(a=2.23607, mode=fan_in, nonlinearity=leaky_relu)"
    )
    assert f"U({-bound:.4g}, {bound:.4g})" in printed


def test_the_table_is_printed_with_its_criterion() -> None:
    spec = _spec(weight_init="xavier_normal", bias_init="zeros", fan_in=64, fan_out=32)
    _, printed = _report(spec)
    lines = printed.splitlines()
    header = next(line for line in lines if line.strip().startswith("parameter"))
    for column in ("shape", "init", "theory", "mean", "std", "measured mean", "agrees"):
        assert column in header
    weight = next(line for line in lines if line.strip().startswith("l1.weight"))
    assert "[32, 64]" in weight
    assert "xavier_normal(gain=1.41421)" in weight
    assert weight.rstrip().endswith("yes")
    bias = next(line for line in lines if line.strip().startswith("l1.bias"))
    assert "constant 0" in bias
    assert "<= 4 SE" in printed
    assert "n < 30: not judged" in printed
    assert "all agree: yes (2 of 2 judged)" in printed
    assert "histograms: skipped (no output directory)" in printed


def test_metrics_json_holds_the_report(tmp_path: Path) -> None:
    spec = _spec(weight_init="kaiming_normal", fan_in=40, fan_out=20)
    returned, _ = _report(spec, tmp_path, histograms=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(returned))
    assert metrics["task"] == "init_report"
    assert metrics["all_agree"] is True
    assert metrics["not_judged"] == ["l1.bias"]  # 20 values < min_n
    assert metrics["criterion"]["max_z"] == 4.0
    report = metrics["init_report"]
    assert list(report) == ["l1.weight", "l1.bias"]
    for entry in report.values():
        assert set(entry) == ENTRY_KEYS
    weight = report["l1.weight"]
    assert weight["shape"] == [20, 40]
    assert weight["init"] == "kaiming_normal(a=0, mode=fan_in, nonlinearity=relu)"
    assert weight["theory"] == {
        "kind": "normal",
        "mean": 0.0,
        "std": pytest.approx(math.sqrt(2.0 / 40)),
        "kurtosis": 3.0,
    }
    assert set(weight["measured"]) == {"n", "mean", "std", "min", "max"}
    assert weight["measured"]["n"] == 800
    assert weight["agrees"] is True
    assert set(weight["check"]) == {"z_mean", "z_std", "within_bounds", "note"}
    bias = report["l1.bias"]
    assert bias["agrees"] is None
    assert bias["check"]["note"] == "n too small (20 < 30)"
    assert not list(tmp_path.glob("*.png"))
    assert {"spec.yaml", "weights.safetensors"} <= {p.name for p in tmp_path.iterdir()}


def test_one_histogram_per_parameter_of_a_fixed_pixel_size(tmp_path: Path) -> None:
    model = {
        "type": "sequential",
        "in_features": 16,
        "layers": {
            "fc": {
                "type": "linear",
                "out_features": 24,
                "weight_init": "orthogonal",
                "bias_init": {"name": "trunc_normal", "std": 0.5, "a": -1, "b": 1},
            },
            "norm": {"type": "layer_norm"},
        },
    }
    spec = annfactory.parse_run({"model": model})
    _, printed = _report(spec, tmp_path, bins=20)
    names = sorted(path.name for path in tmp_path.glob("*.png"))
    assert names == [
        "init_fc.bias.png",
        "init_fc.weight.png",
        "init_norm.bias.png",
        "init_norm.weight.png",
    ]
    for name in names:
        image = imread(tmp_path / name)
        assert image.shape[:2] == PNG_PIXELS
        assert image.std() > 0  # not blank
    assert "histograms: 4 files" in printed


def test_the_legend_never_covers_the_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tensor of 2 values (out.bias) has tall bars wherever its values fall, and the
    # orthogonal theory has the longest label.
    from matplotlib.figure import Figure

    saved: dict[str, Figure] = {}
    save = Figure.savefig

    def keep(figure: Figure, path: Any, *args: Any, **kwargs: Any) -> None:
        saved[Path(path).name] = figure
        save(figure, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    spec = annfactory.to_spec(
        annfactory.compose(["model=mlp", "model.depth=1", "init=orthogonal"])
    )
    _report(spec, tmp_path)
    assert sorted(saved) == sorted(path.name for path in tmp_path.glob("*.png"))
    assert "init_out.bias.png" in saved
    for name, figure in saved.items():
        figure.canvas.draw()
        (axes,) = figure.axes
        assert axes.get_legend() is None, name
        (legend,) = figure.legends
        box = legend.get_window_extent()
        plot = axes.get_window_extent()
        assert box.y1 < plot.y0, name  # below the axes ...
        assert box.x0 >= 0, name  # ... and whole
        assert box.x1 <= figure.bbox.x1, name
        labels = [text.get_text() for text in legend.get_texts()]
        assert labels[0].startswith("measured: n="), name
        assert labels[1].startswith("theory"), name
        assert legend.get_title().get_text().startswith("agrees: "), name


def test_a_constant_tensor_is_drawn_as_a_line_at_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch norm's weight (all ones) and bias (all zeros) have no density: a line
    at the value, labelled with it, not one bar of arbitrary width and height."""
    from matplotlib.figure import Figure

    saved: dict[str, Figure] = {}
    save = Figure.savefig

    def keep(figure: Figure, path: Any, *args: Any, **kwargs: Any) -> None:
        saved[Path(path).name] = figure
        save(figure, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    spec = annfactory.to_spec(annfactory.compose(["model=cnn"]))
    _report(spec, tmp_path)
    for name, value in (("init_norm1.weight.png", 1.0), ("init_norm1.bias.png", 0.0)):
        (axes,) = saved[name].axes
        assert not axes.patches, name  # no histogram bars
        lines = [line for line in axes.get_lines() if line.get_label() != "_nolegend_"]
        measured = [line for line in lines if line.get_label().startswith("measured")]
        (line,) = measured
        assert line.get_label() == f"measured: all 16 values are {value:g}"
        assert list(line.get_xdata()) == [value, value]  # a vertical line at it
        assert [text.get_text().strip() for text in axes.texts] == [f"{value:g}"]
        low, high = axes.get_xlim()
        assert low < value < high
        assert axes.get_yticks().size == 0  # no density axis to read
    # A tensor with a spread still gets its histogram.
    (axes,) = saved["init_conv1.weight.png"].axes
    assert len(axes.patches) > 1


def test_a_registered_init_without_theory_reports_no_theory(tmp_path: Path) -> None:
    @inits.register("halves")
    def halves(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
        """Fill with 0.5."""
        tensor.fill_(0.5)

    assert inits.get("halves").theory is None
    metrics, printed = _report(_spec(weight_init="halves", fan_in=8), tmp_path)
    weight = metrics["init_report"]["l1.weight"]
    assert weight["theory"] is None
    assert weight["agrees"] is None
    assert weight["check"]["note"] == "no theory"
    assert weight["measured"]["mean"] == 0.5
    assert "l1.weight" in metrics["not_judged"]
    assert metrics["all_agree"] is True
    assert "no theory" in printed
    assert (tmp_path / "init_l1.weight.png").is_file()


def test_meta_device_reports_shapes_only(tmp_path: Path) -> None:
    metrics, printed = _report(_spec(device="meta"), tmp_path)
    for entry in metrics["init_report"].values():
        assert entry["measured"] is None
        assert entry["agrees"] is None
        assert entry["theory"]["kind"] == "uniform"
    assert metrics["all_agree"] is True  # nothing disagrees
    assert "all agree: n/a (0 of 2 judged; not judged: l1.weight, l1.bias)" in printed
    assert "histograms: skipped (device=meta: no values)" in printed
    assert not list(tmp_path.glob("*.png"))


# ------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------


def test_the_config_file_holds_the_option_defaults() -> None:
    config = OmegaConf.to_container(OmegaConf.load(CONF / "task" / "init_report.yaml"))
    assert isinstance(config, dict)
    assert config.pop("name") == "init_report"
    assert config == {name: param.default for name, param in OPTIONS.items()}
    assert parse_options(config, "task") == ReportOptions()


def test_the_task_composes_from_the_config_group(tmp_path: Path) -> None:
    cfg = annfactory.compose(
        ["task=init_report", "task.bins=10", "model.layers.linear1.out_features=64"]
    )
    spec = annfactory.to_spec(cfg)
    node = OmegaConf.to_container(cfg.task)
    metrics = run_named_task(node, spec, tmp_path, out=io.StringIO())
    assert metrics["task"] == "init_report"
    assert (tmp_path / "init_linear1.weight.png").is_file()


@pytest.mark.parametrize(
    ("given", "error", "match"),
    [
        ({"binz": 3}, UnknownNameError, r"task\.binz.*Did you mean 'bins'"),
        ({"max_zz": 3.0}, UnknownNameError, r"task\.max_zz.*Did you mean 'max_z'"),
        ({"bins": 0}, ConfigError, r"task\.bins: 0 is out of range"),
        ({"bins": "many"}, ConfigError, r"task\.bins: 'many' is not an integer"),
        ({"max_z": 0}, ConfigError, r"task\.max_z: 0.0 is out of range"),
        ({"min_n": 1}, ConfigError, r"task\.min_n: 1 is out of range"),
        ({"histograms": "yes"}, ConfigError, r"task\.histograms: 'yes' is not a bool"),
    ],
)
def test_bad_options_name_their_key(
    given: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        parse_options(given, "task")


# ------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_documented_command(run_cli: Any) -> None:
    result = run_cli(
        "task=init_report",
        "model=mlp",
        "model.depth=3",
        "init=kaiming_normal",
        "activation=relu",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    layers = ("hidden1", "hidden2", "hidden3", "out")
    names = [f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")]
    pngs = sorted(path.name for path in result.run_dir.glob("init_*.png"))
    assert pngs == sorted(f"init_{name}.png" for name in names)
    for png in pngs:
        assert imread(result.run_dir / png).shape[:2] == PNG_PIXELS
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["all_agree"] is True
    assert list(metrics["init_report"]) == names
    assert metrics["init_report"]["hidden1.weight"]["theory"]["std"] == pytest.approx(
        math.sqrt(2.0 / 8)
    )
    assert all(
        entry["agrees"] is not False for entry in metrics["init_report"].values()
    )
    assert "init report" in result.stdout
    for name in names:
        assert f"  {name} " in result.stdout
    assert "all agree: yes" in result.stdout
