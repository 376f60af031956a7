"""Optimizers: the ``optimizer`` registry, their options, and the ``schedules`` registry
of learning-rate schedules.

An optimizer is one registered :class:`OptimizerType`: a function that builds the
``torch.optim`` optimizer, the schema of its scalar options (:class:`Param`), and
its list options (``betas``, checked by :class:`FloatList`). The names and meanings
of the options are torch.optim's. The ``optimizer`` node of a config is parsed into
an :class:`OptimizerSpec` (plain data, no torch) by :func:`parse_optimizer`;
:func:`build_optimizer` turns it into the optimizer, with torch's fused
implementation wherever torch has one for the device and dtype.

A new optimizer is one registered builder::

    @optimizers.register("rmsprop", params={"lr": learning_rate(0.01)})
    def rmsprop(parameters, options):
        import torch

        return torch.optim.RMSprop(parameters, **options)

A schedule is one registered build function too (:data:`schedules`,
``task.schedule=<name>``)::

    @schedules.register("exponential")
    def exponential(optimizer, *, epochs, step_size, gamma):
        import torch

        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)

torch is imported only inside the builders and :func:`build_optimizer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from annfactory.errors import ConfigError, UnknownNameError
from annfactory.params import Param, check_keys, validate_params
from annfactory.plugins import load_plugins
from annfactory.registry import BuildCoercion, Registry

if TYPE_CHECKING:
    import torch

__all__ = [
    "SCHEDULES",
    "FloatList",
    "OptimizerSpec",
    "OptimizerType",
    "ScheduleType",
    "build_optimizer",
    "build_schedule",
    "learning_rate",
    "optimizers",
    "parse_optimizer",
    "schedules",
]

Builder = Callable[[Iterable["torch.nn.Parameter"], Mapping[str, Any]], Any]
"""``build(parameters, options) -> torch.optim.Optimizer``: ``options`` holds every
validated option (lists as tuples) plus, where :func:`build_optimizer` chose it,
torch's implementation switch ``fused=True``."""

Check = Callable[[Mapping[str, Any], str], None]
"""``check(options, key)``: a rule across options (SGD's Nesterov needs momentum),
raising :class:`ConfigError` with the config path; ``key`` is the node's path."""


@dataclass(frozen=True)
class FloatList:
    """An option that is a list of numbers of a fixed length (Adam's ``betas``).

    :class:`Param` holds scalars only; this checks a list the same way, naming the
    whole option in its message.

    Args:
        length: How many numbers.
        default: The value used when the config omits it.
        doc: One line that says what the numbers mean.
        low: Smallest allowed value of each number (inclusive).
        high: Each number is strictly below this.
    """

    length: int
    default: tuple[float, ...]
    doc: str = ""
    low: float = 0.0
    high: float = 1.0

    def allowed(self) -> str:
        """What values are allowed, in words."""
        return (
            f"a list of {self.length} numbers, each >= {self.low:g} and < {self.high:g}"
        )

    def validate(self, value: Any, key: str) -> tuple[float, ...]:
        """Return ``value`` as a tuple of floats or raise :class:`ConfigError`."""
        items = list(value) if _is_list(value) else None
        if (
            items is None
            or len(items) != self.length
            or not all(_is_number(item) for item in items)
            or not all(self.low <= float(item) < self.high for item in items)
        ):
            shown = items if items is not None else value
            meaning = f" ({self.doc})" if self.doc else ""
            raise ConfigError(
                key,
                f"{shown!r} is not {self.allowed()}.",
                f"Give e.g. {list(self.default)}{meaning}.",
            )
        return tuple(float(item) for item in items)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and float(value) == float(value)  # not NaN
    )


@dataclass(frozen=True)
class OptimizerType:
    """An optimizer.

    Args:
        build: ``build(parameters, options) -> torch.optim.Optimizer``.
        params: Its scalar options (``lr``, ``momentum``, ``nesterov``, ...), with
            types, defaults and bounds.
        lists: Its list options (``betas``).
        check: A rule across options, or None.
        doc: One line for listings.
    """

    build: Builder
    params: Mapping[str, Param] = field(default_factory=dict)
    lists: Mapping[str, FloatList] = field(default_factory=dict)
    check: Check | None = None
    doc: str = ""

    @property
    def option_names(self) -> tuple[str, ...]:
        """Every key an ``optimizer`` node may hold besides ``name``."""
        return (*self.params, *self.lists)


_optimizer_from: BuildCoercion[OptimizerType] = BuildCoercion(
    "optimizer", OptimizerType, "an OptimizerType"
)
"""Registry coercion: an :class:`OptimizerType`, or a build function and the other
fields as keyword options (``doc``: the function's first docstring line)."""

optimizers: Registry[OptimizerType] = Registry(
    "optimizer", coerce=_optimizer_from, on_miss=load_plugins
)
"""The optimizer registry: ``optimizer=<name>`` builds the entry called ``name``."""


# ------------------------------------------------------------------------------------
# The spec: what a config's optimizer node says, as plain data.
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerSpec:
    """A validated ``optimizer`` node: the optimizer's name and every option.

    Attributes:
        name: The registered optimizer.
        options: Every option in declaration order, defaults filled in; list options
            as tuples.
    """

    name: str
    options: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The node back, as plain data: ``parse_optimizer(to_dict()) == self``."""
        return {
            "name": self.name,
            **{
                option: list(value) if isinstance(value, tuple) else value
                for option, value in self.options.items()
            },
        }


def parse_optimizer(node: Any, key: str = "optimizer") -> OptimizerSpec:
    """Validate an ``optimizer`` node: a name, or a mapping with ``name``.

    Args:
        node: The config node (plain data or a DictConfig).
        key: Its config path, for messages.

    Raises:
        ConfigError: The node is not a name or mapping, the name is unknown (naming
            the closest), an option is unknown or out of range, or a rule across
            options is broken (``nesterov`` without ``momentum``).
    """
    if isinstance(node, str):
        name, given, name_key = node, {}, key
    elif isinstance(node, Mapping):
        if "name" not in node:
            raise ConfigError(
                f"{key}.name",
                "no optimizer is named.",
                f"Set {key}=<name> (valid: {', '.join(optimizers.names())}).",
            )
        name, name_key = node["name"], f"{key}.name"
        given = {k: v for k, v in node.items() if k != "name"}
    else:
        raise ConfigError(
            key,
            f"{node!r} is not an optimizer name or mapping.",
            f"Use one of: {', '.join(optimizers.names())}.",
        )
    if not isinstance(name, str):
        raise UnknownNameError(name_key, "optimizer", name, optimizers.names())
    entry = optimizers.get(name, key=name_key)
    what = f"optimizer {name!r}"
    check_keys(given, entry.option_names, key, "parameter", where=f" for {what}")
    scalars = {k: v for k, v in given.items() if k in entry.params}
    values = validate_params(scalars, entry.params, key, what)
    options: dict[str, Any] = {}
    for option in entry.option_names:
        if option in entry.lists:
            rule = entry.lists[option]
            path = f"{key}.{option}"
            given_value = given.get(option, rule.default)
            options[option] = rule.validate(given_value, path)
        else:
            options[option] = values[option]
    if entry.check is not None:
        entry.check(options, key)
    return OptimizerSpec(name=name, options=options)


# ------------------------------------------------------------------------------------
# Building.
# ------------------------------------------------------------------------------------

#: Device types where torch 2.4+ has fused SGD, Adam and AdamW kernels for every
#: floating-point dtype (float16 and bfloat16 on the CPU included).
_FUSED_DEVICES: Final = ("cpu", "cuda")


def build_optimizer(
    spec: OptimizerSpec,
    parameters: Iterable[torch.nn.Parameter],
    device: torch.device,
) -> torch.optim.Optimizer:
    """The torch optimizer that ``spec`` describes, over ``parameters``.

    Uses torch's fused implementation (one kernel for every parameter's update)
    where torch has one for ``device`` and the parameters' dtypes: on a small
    network the optimizer's per-parameter work dominates a training step, and the
    fused kernel is several times faster than the default for-loop on the CPU.
    Falls back to torch's default where the fused kernel is refused.

    Args:
        spec: The validated optimizer node.
        parameters: The parameters to optimize (on ``device``).
        device: Where the parameters are.
    """
    import torch

    entry = optimizers.get(spec.name)
    parameters = list(parameters)
    options = dict(spec.options)
    fusable = device.type in _FUSED_DEVICES and all(
        torch.is_floating_point(parameter) for parameter in parameters
    )
    if fusable:
        try:
            optimizer: torch.optim.Optimizer = entry.build(
                parameters, {**options, "fused": True}
            )
            return optimizer
        except (RuntimeError, TypeError):
            # An older torch without the fused kernel for this device or optimizer.
            pass
    built: torch.optim.Optimizer = entry.build(parameters, options)
    return built


# ------------------------------------------------------------------------------------
# Learning-rate schedules.
# ------------------------------------------------------------------------------------

ScheduleBuilder = Callable[..., Any]
"""``build(optimizer, *, epochs, step_size, gamma) -> LRScheduler | None``: the
schedule over ``optimizer`` (None: a constant rate), stepped once per epoch.
``epochs`` is the planned number of epochs; ``step_size`` and ``gamma`` are
``task.step_size`` and ``task.gamma``."""


@dataclass(frozen=True)
class ScheduleType:
    """A learning-rate schedule.

    Args:
        build: ``build(optimizer, *, epochs, step_size, gamma)``: the
            ``torch.optim.lr_scheduler`` scheduler, or None for a constant rate.
        doc: One line for listings.
    """

    build: ScheduleBuilder
    doc: str = ""


_schedule_from: BuildCoercion[ScheduleType] = BuildCoercion(
    "schedule", ScheduleType, "a ScheduleType"
)
"""Registry coercion: a :class:`ScheduleType`, or its build function (``doc``: the
function's first docstring line)."""

schedules: Registry[ScheduleType] = Registry(
    "schedule", coerce=_schedule_from, on_miss=load_plugins
)
"""The schedule registry: ``task.schedule=<name>`` steps the entry's scheduler once
per epoch."""


@schedules.register("none")
def _constant(
    optimizer: torch.optim.Optimizer, *, epochs: int, step_size: int, gamma: float
) -> None:
    """A constant rate: the optimizer's."""
    return None


@schedules.register("cosine")
def _cosine(
    optimizer: torch.optim.Optimizer, *, epochs: int, step_size: int, gamma: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing from the optimizer's rate to 0 over the planned epochs
    (CosineAnnealingLR)."""
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)


@schedules.register("step")
def _step(
    optimizer: torch.optim.Optimizer, *, epochs: int, step_size: int, gamma: float
) -> torch.optim.lr_scheduler.LRScheduler:
    """The rate times gamma every step_size epochs (StepLR)."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


#: The built-in schedules, in the order ``task.schedule`` lists them.
SCHEDULES: Final = tuple(schedules.names_in_order())


def build_schedule(
    name: str | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    step_size: int,
    gamma: float,
    key: str = "task.schedule",
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule called ``name``, stepped once per epoch.

    Args:
        name: A registered schedule (:data:`schedules`): ``"none"`` (or None): a
            constant rate; ``"cosine"``: cosine annealing from the optimizer's rate
            to 0 over ``epochs`` (``CosineAnnealingLR``); ``"step"``: the rate times
            ``gamma`` every ``step_size`` epochs (``StepLR``).
        optimizer: The optimizer whose rate it sets.
        epochs: The planned number of epochs (the cosine's period).
        step_size: Epochs between two decays of ``"step"``.
        gamma: The factor of each decay of ``"step"``.
        key: The config path of ``name``, for the message.

    Raises:
        UnknownNameError: ``name`` is no registered schedule.
    """
    entry = schedules.get("none" if name is None else name, key=key)
    built: torch.optim.lr_scheduler.LRScheduler | None = entry.build(
        optimizer, epochs=epochs, step_size=step_size, gamma=gamma
    )
    return built


# ------------------------------------------------------------------------------------
# Built-in optimizers: torch.optim's, with torch's names, meanings and defaults.
# ------------------------------------------------------------------------------------


def learning_rate(default: float) -> Param:
    """The ``lr`` option: a number > 0 (torch accepts 0 and negative rates, which
    never train or climb the loss)."""
    return Param(float, default, "learning rate", low=0, low_open=True)


_WEIGHT_DECAY_DOC = "L2 penalty added to the gradient"
_BETAS = FloatList(
    2,
    (0.9, 0.999),
    "decay rates of the running averages of the gradient and its square",
)
_ADAM: Final = {
    "eps": Param(float, 1e-8, "added to the denominator for stability", low=0),
}


def _nesterov_needs_momentum(options: Mapping[str, Any], key: str) -> None:
    """torch.optim.SGD's rule: Nesterov momentum needs momentum > 0 (and dampening
    0, which annfactory does not expose)."""
    if options["nesterov"] and options["momentum"] <= 0:
        raise ConfigError(
            f"{key}.nesterov",
            f"true needs momentum > 0 ({key}.momentum is {options['momentum']!r}).",
            f"Set {key}.momentum (e.g. 0.9), or {key}.nesterov=false.",
        )


@optimizers.register(
    "sgd",
    params={
        # torch's default is 1e-3; 0.01 is the rate plain SGD usually needs to make
        # progress in tens of epochs on standardized data.
        "lr": learning_rate(0.01),
        "momentum": Param(float, 0.0, "momentum factor", low=0),
        "nesterov": Param(bool, False, "Nesterov momentum (needs momentum > 0)"),
        "weight_decay": Param(float, 0.0, _WEIGHT_DECAY_DOC, low=0),
    },
    check=_nesterov_needs_momentum,
)
def sgd(
    parameters: Iterable[torch.nn.Parameter], options: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """Stochastic gradient descent, with optional (Nesterov) momentum
    (torch.optim.SGD)."""
    import torch

    return torch.optim.SGD(parameters, **options)


@optimizers.register(
    "adam",
    params={
        "lr": learning_rate(1e-3),
        **_ADAM,
        "weight_decay": Param(float, 0.0, _WEIGHT_DECAY_DOC, low=0),
    },
    lists={"betas": _BETAS},
)
def adam(
    parameters: Iterable[torch.nn.Parameter], options: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """Adam: per-parameter rates from running moments of the gradient
    (torch.optim.Adam)."""
    import torch

    return torch.optim.Adam(parameters, **options)


@optimizers.register(
    "adamw",
    params={
        "lr": learning_rate(1e-3),
        **_ADAM,
        "weight_decay": Param(
            float, 1e-2, "decoupled weight decay (applied to the weights)", low=0
        ),
    },
    lists={"betas": _BETAS},
)
def adamw(
    parameters: Iterable[torch.nn.Parameter], options: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """Adam with decoupled weight decay (torch.optim.AdamW)."""
    import torch

    return torch.optim.AdamW(parameters, **options)
