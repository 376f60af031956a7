"""Init schemes: the ``init`` registry and its built-in entries.

Each scheme fills a tensor in place from a ``torch.Generator``, wrapping
``torch.nn.init`` (never re-implementing its sampling). The parameters of a scheme are
declared as :class:`~annfactory.params.Param` objects so a config is checked before any
tensor is allocated. This module imports torch only when a scheme is applied.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from annfactory.params import AUTO, Param, params_from_arguments
from annfactory.plugins import load_plugins
from annfactory.registry import EntryCoercion, Registry, first_doc_line

if TYPE_CHECKING:
    import torch

__all__ = [
    "NONLINEARITIES",
    "InitScheme",
    "Nonlinearity",
    "Theory",
    "TheoryKind",
    "calculate_gain",
    "fan_in_and_fan_out",
    "inits",
]

Nonlinearity = tuple[str, float | None]
"""A nonlinearity as ``torch.nn.init.calculate_gain`` takes it: ``(name, param)``."""

NONLINEARITIES = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
"""The nonlinearities that ``calculate_gain`` knows (kaiming's ``nonlinearity``)."""


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    Pure Python so that a spec can be resolved without importing torch; the tests check
    it against torch for every nonlinearity.

    ================= ====================================================
    nonlinearity      gain
    ================= ====================================================
    linear, sigmoid   :math:`1`
    tanh              :math:`\\frac{5}{3}`
    relu              :math:`\\sqrt{2}`
    leaky_relu        :math:`\\sqrt{\\frac{2}{1 + \\text{negative\\_slope}^2}}`
    selu              :math:`\\frac{3}{4}`
    ================= ====================================================
    """
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"unsupported nonlinearity {nonlinearity!r}; valid: {', '.join(NONLINEARITIES)}"
    )


def fan_in_and_fan_out(shape: tuple[int, ...]) -> tuple[int, int]:
    r"""``(fan_in, fan_out)`` of a tensor shape, as torch's
    ``torch.nn.init._calculate_fan_in_and_fan_out``.

    :math:`\text{fan\_in} = \text{shape}[1] \cdot r`,
    :math:`\text{fan\_out} = \text{shape}[0] \cdot r`, with the receptive field
    :math:`r = \prod \text{shape}[2:]` (1 for a matrix).

    Raises:
        ValueError: The shape has fewer than 2 dimensions.
    """
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need at least 2 dimensions, got shape {list(shape)}"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


TheoryKind = Literal[
    "normal", "uniform", "constant", "truncated_normal", "orthogonal", "gates"
]
"""The families of distributions an init's :class:`Theory` describes."""

_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Theory:
    r"""The distribution an init scheme draws each element of a tensor from.

    Attributes:
        kind: ``normal``, ``uniform``, ``constant``, ``truncated_normal``,
            ``orthogonal`` (a scaled semi-orthogonal matrix; its elements are nearly
            :math:`\mathcal{N}(0, \text{std}^2)` but not independent) or ``gates``
            (a constant per gate of a recurrent layer: ``high`` on one quarter, 0
            elsewhere; exact, like a constant).
        mean: The mean of one element.
        std: The standard deviation of one element (0 for a constant).
        low: The smallest possible value (uniform, truncated normal, constant).
        high: The largest possible value (uniform, truncated normal, constant).
        loc: The mean of the normal before truncation (truncated normal only).
        scale: The std of the normal before truncation (truncated normal only).
        kurtosis: :math:`\mu_4 / \sigma^4` of one element (3 for a normal, 9/5 for
            a uniform); sets the standard error of a measured std.
    """

    kind: TheoryKind
    mean: float
    std: float
    low: float | None = None
    high: float | None = None
    loc: float | None = None
    scale: float | None = None
    kurtosis: float = 3.0

    def __post_init__(self) -> None:
        if not self.std >= 0:
            raise ValueError(f"theory: std must be >= 0, got {self.std!r}")
        bounded = self.kind in ("uniform", "truncated_normal")
        if bounded and (self.low is None or self.high is None):
            raise ValueError(f"theory: a {self.kind} needs low and high")
        if self.kind == "truncated_normal" and (self.loc is None or not self.scale):
            raise ValueError("theory: a truncated_normal needs loc and scale > 0")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"theory: low {self.low!r} > high {self.high!r}")

    def density(self, x: float) -> float:
        """The probability density at ``x`` (orthogonal: the normal approximation).

        Raises:
            ValueError: A constant has no density.
        """
        if self.kind in ("constant", "gates") or self.std == 0:
            raise ValueError("a constant has no density")
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        if not low <= x <= high:
            return 0.0
        if self.kind == "uniform":
            return 1.0 / (high - low)
        if self.kind == "truncated_normal" and self.loc is not None and self.scale:
            mass = _normal_mass(
                (low - self.loc) / self.scale, (high - self.loc) / self.scale
            )
            return _phi((x - self.loc) / self.scale) / (self.scale * mass)
        return _phi((x - self.mean) / self.std) / self.std

    def describe(self) -> str:
        """Short text for tables, e.g. ``N(0, 0.5^2)`` or ``U(-0.1, 0.1)``."""
        if self.kind == "constant":
            return f"constant {self.mean:.4g}"
        if self.kind == "gates":
            return f"forget gate {4 * self.mean:.4g}, other gates 0"
        if self.kind == "uniform":
            return f"U({self.low:.4g}, {self.high:.4g})"
        if self.kind == "truncated_normal":
            return (
                f"N({self.loc:.4g}, {self.scale:.4g}^2) on [{self.low:.4g}, "
                f"{self.high:.4g}]"
            )
        if self.kind == "orthogonal":
            return f"orthogonal, rms {self.std:.4g}"
        return f"N({self.mean:.4g}, {self.std:.4g}^2)"

    def to_dict(self) -> dict[str, Any]:
        """The fields that apply to this kind, as plain data."""
        return {
            name: value
            for name, value in (
                ("kind", self.kind),
                ("mean", self.mean),
                ("std", self.std),
                ("low", self.low),
                ("high", self.high),
                ("loc", self.loc),
                ("scale", self.scale),
                ("kurtosis", self.kurtosis),
            )
            if value is not None
        }


def _phi(z: float) -> float:
    """The standard normal density."""
    return math.exp(-0.5 * z * z) / _SQRT_2PI


def _normal_mass(alpha: float, beta: float) -> float:
    r""":math:`\Phi(\beta) - \Phi(\alpha)`, accurate in the tails (via erfc)."""
    if alpha > 0:
        return 0.5 * (math.erfc(alpha / math.sqrt(2)) - math.erfc(beta / math.sqrt(2)))
    if beta < 0:
        return 0.5 * (
            math.erfc(-beta / math.sqrt(2)) - math.erfc(-alpha / math.sqrt(2))
        )
    return 0.5 * (math.erf(beta / math.sqrt(2)) - math.erf(alpha / math.sqrt(2)))


@dataclass(frozen=True)
class InitScheme:
    """An init scheme: how to fill one parameter tensor.

    Args:
        apply: ``apply(tensor, *, generator, **params)`` fills ``tensor`` in place.
        params: The scheme's parameters.
        min_dim: The fewest tensor dimensions it works on (2 for fan-based schemes,
            which cannot apply to a 1-D bias).
        check: Cross-parameter check; returns what is wrong, or None.
        resolve_auto: Replaces ``null`` (auto) parameters from the layer's
            nonlinearity; returns the completed parameters.
        doc: One line for listings.
        theory: ``theory(params, shape)``: the distribution of each element of a
            tensor of ``shape`` filled with the resolved ``params``; None if the
            scheme has none (the init report then says "no theory").
        fits: ``fits(shape)``: what is wrong with a tensor of ``shape`` for this
            scheme (beyond ``min_dim``), or None.
        layer_types: The layer types whose parameters it fills (``lstm`` for
            ``forget_gate``); empty: any.
    """

    apply: Callable[..., None]
    params: Mapping[str, Param] = field(default_factory=dict)
    min_dim: int = 0
    check: Callable[[Mapping[str, Any]], str | None] | None = None
    resolve_auto: Callable[[dict[str, Any], Nonlinearity], dict[str, Any]] | None = None
    doc: str = ""
    theory: Callable[[Mapping[str, Any], tuple[int, ...]], Theory] | None = None
    fits: Callable[[tuple[int, ...]], str | None] | None = None
    layer_types: tuple[str, ...] = ()


def _scheme_of_function(apply: Any, /, **fields: Any) -> InitScheme:
    """An :class:`InitScheme` that fills tensors with the function ``apply``."""
    return InitScheme(apply=apply, **fields)


def _keyword_arguments(apply: Any, name: str) -> dict[str, Param]:
    """An init function's parameters: its keyword-only arguments but ``generator``."""
    return params_from_arguments(
        (
            argument
            for argument in inspect.signature(apply).parameters.values()
            if argument.kind is inspect.Parameter.KEYWORD_ONLY
            and argument.name != "generator"
        ),
        f"init {name!r}",
    )


#: Registry coercion: accept an :class:`InitScheme` or an init function
#: ``f(tensor, *, generator=None, p: float = 1.0, ...)``, whose parameters are its
#: keyword-only arguments other than ``generator``.
_scheme_from: EntryCoercion[InitScheme] = EntryCoercion(
    kind="init",
    entry_type=InitScheme,
    entry_words="an InitScheme",
    source_words="a function",
    accepts=callable,
    params_of=_keyword_arguments,
    make=_scheme_of_function,
)

inits: Registry[InitScheme] = Registry(
    "init", coerce=_scheme_from, on_miss=load_plugins
)
"""The init registry. Register a function ``f(tensor, *, generator, **params)``."""


# ------------------------------------------------------------------------------------
# Built-in schemes. Each wraps torch.nn.init and passes the parameter's own generator.
# ------------------------------------------------------------------------------------


def _nn_init() -> Any:
    from torch.nn import init

    return init


def uniform(
    tensor: torch.Tensor, *, generator: torch.Generator, a: float, b: float
) -> None:
    r"""Fill from :math:`\mathcal{U}(a, b)`."""
    _nn_init().uniform_(tensor, a, b, generator=generator)


def normal(
    tensor: torch.Tensor, *, generator: torch.Generator, mean: float, std: float
) -> None:
    r"""Fill from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    _nn_init().normal_(tensor, mean, std, generator=generator)


def constant(tensor: torch.Tensor, *, generator: torch.Generator, val: float) -> None:
    r"""Fill with the value :math:`\text{val}`."""
    _nn_init().constant_(tensor, val)


def zeros(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
    """Fill with 0."""
    _nn_init().zeros_(tensor)


def ones(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
    """Fill with 1."""
    _nn_init().ones_(tensor)


def xavier_normal(
    tensor: torch.Tensor, *, generator: torch.Generator, gain: float
) -> None:
    r"""Glorot normal: :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \text{gain} \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}`.

    Glorot & Bengio (2010), *Understanding the difficulty of training deep feedforward
    neural networks*.
    """
    _nn_init().xavier_normal_(tensor, gain, generator=generator)


def xavier_uniform(
    tensor: torch.Tensor, *, generator: torch.Generator, gain: float
) -> None:
    r"""Glorot uniform: :math:`\mathcal{U}(-b, b)` with
    :math:`b = \text{gain} \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}`.

    Glorot & Bengio (2010).
    """
    _nn_init().xavier_uniform_(tensor, gain, generator=generator)


def kaiming_normal(
    tensor: torch.Tensor,
    *,
    generator: torch.Generator,
    a: float,
    mode: str,
    nonlinearity: str,
) -> None:
    r"""He normal: :math:`\mathcal{N}(0, \text{std}^2)` with
    :math:`\text{std} = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}`.

    ``gain`` is ``calculate_gain(nonlinearity, a)``; ``mode`` picks ``fan_in``
    (preserves the forward variance) or ``fan_out`` (the backward one).
    He et al. (2015), *Delving deep into rectifiers*.
    """
    _nn_init().kaiming_normal_(tensor, a, mode, nonlinearity, generator=generator)


def kaiming_uniform(
    tensor: torch.Tensor,
    *,
    generator: torch.Generator,
    a: float,
    mode: str,
    nonlinearity: str,
) -> None:
    r"""He uniform: :math:`\mathcal{U}(-b, b)` with
    :math:`b = \text{gain} \sqrt{\frac{3}{\text{fan\_mode}}}`.

    He et al. (2015).
    """
    _nn_init().kaiming_uniform_(tensor, a, mode, nonlinearity, generator=generator)


def orthogonal(
    tensor: torch.Tensor, *, generator: torch.Generator, gain: float
) -> None:
    r"""A (semi-)orthogonal matrix scaled by :math:`\text{gain}`.

    Saxe et al. (2013), *Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks*.

    The QR decomposition runs on one thread, whatever torch's setting: LAPACK's
    result differs in its last bits between one thread and two, and training
    amplifies that, so the same seed gives the same matrix under any launcher.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _nn_init().orthogonal_(tensor, gain, generator=generator)
    finally:
        torch.set_num_threads(before)


def trunc_normal(
    tensor: torch.Tensor,
    *,
    generator: torch.Generator,
    mean: float,
    std: float,
    a: float,
    b: float,
) -> None:
    r""":math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to :math:`[a, b]`."""
    _nn_init().trunc_normal_(tensor, mean, std, a, b, generator=generator)


def forget_gate(
    tensor: torch.Tensor, *, generator: torch.Generator, val: float
) -> None:
    r"""0, and :math:`\text{val}` on an LSTM's forget gate: the second quarter of a
    bias, in torch's gate order (input, forget, cell, output).

    Jozefowicz et al. (2015), *An Empirical Exploration of Recurrent Network
    Architectures*: a forget-gate bias of 1 keeps the cell's memory at the start of
    training.
    """
    import torch

    with torch.no_grad():
        tensor.zero_()
        quarter = tensor.shape[0] // 4
        tensor[quarter : 2 * quarter].fill_(val)


def _four_gates(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 1 or shape[0] % 4:
        return "needs an LSTM's bias (1-D: four gates of equal size)"
    return None


def _default(tensor: torch.Tensor, *, generator: torch.Generator) -> None:
    """The layer's own PyTorch init; resolved per layer type before anything runs."""
    raise AssertionError(
        "'default' is resolved to the layer's own init before building"
    )


def _lower_than_upper(params: Mapping[str, Any]) -> str | None:
    if params["a"] >= params["b"]:
        return f"needs a < b, got a={params['a']:g}, b={params['b']:g}"
    return None


def _gain_from_activation(params: dict[str, Any], nl: Nonlinearity) -> dict[str, Any]:
    if params["gain"] is None:
        params["gain"] = calculate_gain(*nl)
    return params


def _kaiming_from_activation(
    params: dict[str, Any], nl: Nonlinearity
) -> dict[str, Any]:
    if params["nonlinearity"] is None:
        params["nonlinearity"] = nl[0]
    if params["a"] is None:
        # The slope of a leaky_relu activation; 0 (torch's default) otherwise.
        from_activation = (
            nl[0] == "leaky_relu" and params["nonlinearity"] == "leaky_relu"
        )
        params["a"] = (0.01 if nl[1] is None else nl[1]) if from_activation else 0.0
    return params


# ------------------------------------------------------------------------------------
# Theory: the distribution each built-in draws from, for the init report. Pure Python,
# from the resolved parameters and the tensor's shape.
# ------------------------------------------------------------------------------------

_UNIFORM_KURTOSIS = 9.0 / 5.0


def _constant_theory(value: float) -> Theory:
    return Theory("constant", value, 0.0, low=value, high=value)


def _normal_or_constant(mean: float, std: float) -> Theory:
    r""":math:`\mathcal{N}(\text{mean}, \text{std}^2)`; a constant when std is 0."""
    if std == 0:
        return _constant_theory(mean)
    return Theory("normal", mean, std)


def _symmetric_uniform(bound: float) -> Theory:
    r""":math:`\mathcal{U}(-b, b)`: mean 0, std :math:`b / \sqrt{3}`."""
    if bound == 0:
        return _constant_theory(0.0)
    return _uniform_of(-bound, bound)


def _uniform_of(low: float, high: float) -> Theory:
    return Theory(
        "uniform",
        (low + high) / 2.0,
        (high - low) / math.sqrt(12.0),
        low=low,
        high=high,
        kurtosis=_UNIFORM_KURTOSIS,
    )


def uniform_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{U}(a, b)`: mean :math:`\frac{a + b}{2}`, std
    :math:`\frac{b - a}{\sqrt{12}}`, bounds :math:`[a, b]`, kurtosis 9/5."""
    return _uniform_of(float(params["a"]), float(params["b"]))


def normal_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    return _normal_or_constant(float(params["mean"]), float(params["std"]))


def constant_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    """Every element is ``val``: std 0."""
    return _constant_theory(float(params["val"]))


def zeros_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    """Every element is 0."""
    return _constant_theory(0.0)


def ones_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    """Every element is 1."""
    return _constant_theory(1.0)


def forget_gate_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r"""A quarter of the elements are ``val``, the rest 0: mean
    :math:`\text{val} / 4`, std :math:`|\text{val}| \sqrt{3} / 4`."""
    val = float(params["val"])
    if val == 0:
        return _constant_theory(0.0)
    return Theory(
        "gates",
        val / 4.0,
        abs(val) * math.sqrt(3.0) / 4.0,
        low=min(val, 0.0),
        high=max(val, 0.0),
    )


def xavier_normal_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{N}(0, \sigma^2)`,
    :math:`\sigma = \text{gain} \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}`."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return _normal_or_constant(
        0.0, float(params["gain"]) * math.sqrt(2.0 / (fan_in + fan_out))
    )


def xavier_uniform_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{U}(-b, b)`,
    :math:`b = \text{gain} \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}`
    (std :math:`b / \sqrt{3}`)."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return _symmetric_uniform(
        float(params["gain"]) * math.sqrt(6.0 / (fan_in + fan_out))
    )


def _kaiming_std(params: Mapping[str, Any], shape: tuple[int, ...]) -> float:
    r""":math:`\frac{\text{gain}}{\sqrt{\text{fan}}}`, the fan picked by ``mode``,
    :math:`\text{gain} = \text{calculate\_gain}(\text{nonlinearity}, a)`."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    mode = params["mode"]
    if mode == "fan_in":
        fan = fan_in
    elif mode == "fan_out":
        fan = fan_out
    else:
        raise ValueError(f"mode {mode!r} is not supported; valid: fan_in, fan_out")
    gain = calculate_gain(params["nonlinearity"], params["a"])
    return gain / math.sqrt(fan)


def kaiming_normal_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{N}(0, \sigma^2)`,
    :math:`\sigma = \frac{\text{gain}}{\sqrt{\text{fan\_mode}}}`,
    :math:`\text{gain} = \text{calculate\_gain}(\text{nonlinearity}, a)`."""
    return _normal_or_constant(0.0, _kaiming_std(params, shape))


def kaiming_uniform_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{U}(-b, b)`,
    :math:`b = \text{gain} \sqrt{\frac{3}{\text{fan\_mode}}}` (std
    :math:`\frac{\text{gain}}{\sqrt{\text{fan\_mode}}}`).

    PyTorch's default for ``nn.Linear`` weights, ``a = \sqrt{5}`` with
    ``leaky_relu``, has gain :math:`\sqrt{1/3}`, so :math:`b = 1/\sqrt{\text{fan\_in}}`.
    """
    return _symmetric_uniform(math.sqrt(3.0) * _kaiming_std(params, shape))


def orthogonal_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r"""A semi-orthogonal matrix times ``gain``: mean 0, std
    :math:`\frac{\text{gain}}{\sqrt{\max(r, c)}}`.

    torch flattens the tensor to :math:`W` of :math:`r = \text{shape}[0]` rows and
    :math:`c = \text{numel} / r` columns. If :math:`r \le c`,
    :math:`W W^\top = \text{gain}^2 I_r`, so the squares of the elements sum to
    :math:`\text{gain}^2 r` (to :math:`\text{gain}^2 c` via :math:`W^\top W` if
    :math:`r > c`): the mean of the squares is
    :math:`\text{gain}^2 \min(r, c) / (r c) = \text{gain}^2 / \max(r, c)`, exactly.
    The matrix is Haar-distributed (sign-corrected QR of a Gaussian matrix), so
    flipping the sign of any row or column leaves its distribution unchanged: each
    element has mean 0, and the mean of all elements has variance
    :math:`\sigma^2 / (r c)` as for independent draws. For large :math:`\max(r, c)`
    each element is close to :math:`\mathcal{N}(0, \sigma^2)`.
    """
    gain = float(params["gain"])
    rows = shape[0]
    columns = math.prod(shape[1:])
    if gain == 0:
        return _constant_theory(0.0)
    return Theory("orthogonal", 0.0, gain / math.sqrt(max(rows, columns)))


def trunc_normal_theory(params: Mapping[str, Any], shape: tuple[int, ...]) -> Theory:
    r""":math:`\mathcal{N}(\mu, \sigma^2)` truncated to :math:`[a, b]`.

    With :math:`\alpha = \frac{a - \mu}{\sigma}`,
    :math:`\beta = \frac{b - \mu}{\sigma}` and
    :math:`Z = \Phi(\beta) - \Phi(\alpha)`, the raw moments of the truncated
    standard normal are :math:`m_0 = 1`,
    :math:`m_1 = \frac{\varphi(\alpha) - \varphi(\beta)}{Z}` and
    :math:`m_k = (k - 1) m_{k-2}
    + \frac{\alpha^{k-1} \varphi(\alpha) - \beta^{k-1} \varphi(\beta)}{Z}`.
    Mean :math:`\mu + \sigma m_1`, std :math:`\sigma \sqrt{m_2 - m_1^2}`; the
    kurtosis follows from :math:`m_3` and :math:`m_4`.
    """
    loc, scale = float(params["mean"]), float(params["std"])
    low, high = float(params["a"]), float(params["b"])
    alpha, beta = (low - loc) / scale, (high - loc) / scale
    mass = _normal_mass(alpha, beta)
    moments = [1.0, (_phi(alpha) - _phi(beta)) / mass]
    for k in (2, 3, 4):
        moments.append(
            (k - 1) * moments[k - 2]
            + (alpha ** (k - 1) * _phi(alpha) - beta ** (k - 1) * _phi(beta)) / mass
        )
    m1, m2, m3, m4 = moments[1:]
    variance = max(m2 - m1 * m1, 0.0)
    central4 = m4 - 4 * m3 * m1 + 6 * m2 * m1 * m1 - 3 * m1**4
    return Theory(
        "truncated_normal",
        loc + scale * m1,
        scale * math.sqrt(variance),
        low=low,
        high=high,
        loc=loc,
        scale=scale,
        kurtosis=central4 / variance**2 if variance > 0 else 3.0,
    )


_THEORIES: dict[str, Callable[[Mapping[str, Any], tuple[int, ...]], Theory]] = {
    "uniform": uniform_theory,
    "normal": normal_theory,
    "constant": constant_theory,
    "zeros": zeros_theory,
    "ones": ones_theory,
    "xavier_normal": xavier_normal_theory,
    "xavier_uniform": xavier_uniform_theory,
    "kaiming_normal": kaiming_normal_theory,
    "kaiming_uniform": kaiming_uniform_theory,
    "orthogonal": orthogonal_theory,
    "trunc_normal": trunc_normal_theory,
    "forget_gate": forget_gate_theory,
}
"""Each built-in's theory (``default`` has none: it is resolved before building)."""


_GAIN = Param(
    float, AUTO, "scale factor; null: the gain of the layer's activation", low=0
)
_KAIMING = {
    "a": Param(
        float, AUTO, "negative slope of a leaky_relu; null: from the activation"
    ),
    "mode": Param(
        str,
        "fan_in",
        "fan_in keeps forward variance, fan_out backward",
        choices=("fan_in", "fan_out"),
    ),
    "nonlinearity": Param(
        str, AUTO, "gain source; null: the layer's activation", choices=NONLINEARITIES
    ),
}

#: name: (function, parameters, fewest dimensions, check, auto-resolution)
_BUILTINS: dict[str, tuple[Callable[..., None], dict[str, Param], int, Any, Any]] = {
    "uniform": (uniform, {
        "a": Param(float, 0.0, "lower bound"),
        "b": Param(float, 1.0, "upper bound")}, 0, _lower_than_upper, None),
    "normal": (normal, {
        "mean": Param(float, 0.0, "mean"),
        "std": Param(float, 1.0, "standard deviation", low=0)}, 0, None, None),
    "constant": (constant, {"val": Param(float, 0.0, "the value")}, 0, None, None),
    "zeros": (zeros, {}, 0, None, None),
    "ones": (ones, {}, 0, None, None),
    "xavier_normal": (xavier_normal, {"gain": _GAIN}, 2, None, _gain_from_activation),
    "xavier_uniform": (xavier_uniform, {"gain": _GAIN}, 2, None, _gain_from_activation),
    "kaiming_normal": (kaiming_normal, _KAIMING, 2, None, _kaiming_from_activation),
    "kaiming_uniform": (kaiming_uniform, _KAIMING, 2, None, _kaiming_from_activation),
    "orthogonal": (orthogonal, {"gain": _GAIN}, 2, None, _gain_from_activation),
    "trunc_normal": (trunc_normal, {
        "mean": Param(float, 0.0, "mean before truncation"),
        "std": Param(float, 1.0, "standard deviation before truncation",
                     low=0, low_open=True),
        "a": Param(float, -2.0, "lower cut-off (absolute)"),
        "b": Param(float, 2.0, "upper cut-off (absolute)")},
        0, _lower_than_upper, None),
    "forget_gate": (forget_gate, {
        "val": Param(float, 1.0, "the forget gate's bias")}, 1, None, None),
    "default": (_default, {}, 0, None, None),
}  # fmt: skip

for _name, (_apply, _params, _min_dim, _check, _auto) in _BUILTINS.items():
    inits.register(
        _name,
        InitScheme(
            apply=_apply,
            params=_params,
            min_dim=_min_dim,
            check=_check,
            resolve_auto=_auto,
            doc=first_doc_line(_apply),
            theory=_THEORIES.get(_name),
            fits=_four_gates if _name == "forget_gate" else None,
            layer_types=("lstm",) if _name == "forget_gate" else (),
        ),
    )
