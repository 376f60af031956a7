"""The top level of a run's config, declared once: its config groups and its plain keys.

A run's config holds config groups (``model``, ``init``, ``activation``, ``task``,
and the groups that fill one slot, ``layer``) and plain keys (``seed``,
``batch_size``, ``device``, ``dtype``, ``compile``). Each group is an entry of the
:data:`groups` registry, each plain key a :class:`~annfactory.params.Param` of
:data:`KEYS`. Every list of top-level keys, groups and slots is derived from them:
the keys :func:`~annfactory.spec.parse_run` accepts and
:meth:`~annfactory.spec.RunSpec.to_dict` writes, and what the override check in
:mod:`annfactory.config` knows about groups, their options' keys, and the slots that
name an option (``model.layers.<layer>.weight_init``).

A plugin adds a top-level group of its own with a :class:`ConfigGroup` that has a
``parse`` function, and its YAML options on Hydra's search path (a
``SearchPathPlugin``): ``+<group>=<option>`` then chooses one, and the parsed value
lands in ``RunSpec.extras[<group>]``, where tasks read it.

No torch here, and no import of the spec: the spec imports this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from annfactory.activations import activations
from annfactory.data import datasets, parse_data
from annfactory.errors import (
    ConfigError,
    RegistrationError,
    ascii_lookalike,
    closest_name,
    non_ascii_character,
)
from annfactory.inits import inits
from annfactory.layers import LAYER_FIELDS, layers
from annfactory.optimizers import optimizers, parse_optimizer
from annfactory.params import Param, check_keys
from annfactory.plugins import load_plugins
from annfactory.registry import Registry
from annfactory.task_registry import Task, loaded_tasks

__all__ = [
    "CHOICE_SLOTS",
    "DEVICES",
    "DTYPES",
    "KEYS",
    "ConfigGroup",
    "OptionKeys",
    "choice_group",
    "groups",
    "layer_slots",
    "run_keys",
    "top_level_groups",
    "validate_device",
    "validate_key",
]

DTYPES: Final = ("float32", "float64", "bfloat16", "float16")
DEVICES: Final = ("cpu", "cuda", "meta")


@dataclass(frozen=True)
class OptionKeys:
    """The keys that the node of one option of a group may hold.

    Attributes:
        allowed: The option's own keys (its parameters), listed in messages.
        kind: What they are called in messages (``"parameter"``).
        beside: Keys that sit beside them in every option's node and are not listed
            (the option's ``name``).
    """

    allowed: Collection[str]
    kind: str = "parameter"
    beside: Collection[str] = ("name",)


def _params_of(entry: Any) -> OptionKeys:
    # Entries with options beyond their scalar params (a data set's val_fraction, an
    # optimizer's betas) list them all as option_names.
    return OptionKeys(getattr(entry, "option_names", entry.params))


@dataclass(frozen=True)
class ConfigGroup:
    """A config group (``conf/<name>/``): how its options are named and checked.

    Attributes:
        doc: One line for listings.
        registry: The registry whose entries the group's options name (``init``:
            ``inits``), or a function that returns it (for a registry whose module
            imports the spec). The override check reads an option's keys from its
            entry (``init=normal init.sdt=1`` names ``std``). None: the options are
            files of keys (``model``).
        parse: ``parse(node, key) -> value``: turns the group's node into what
            ``RunSpec.extras[<name>]`` holds, raising ``ConfigError`` with the config
            path. A plugin's group needs one to reach the spec; the value is plain
            data, or has ``to_dict()`` giving the node back. None for annfactory's
            own groups, which :func:`~annfactory.spec.parse_run` reads itself
            (``model``, ``init`` and ``activation`` make the network; the task
            validates its own options).
        top_level: A run reads the group as a top-level key; False for a group that
            only fills slots (``layer@model.layers.<layer>``).
        choice: The group's node is a choice, a name or ``{name: ..., <params>}``,
            which replaces what the node held (``init={name: normal, std: 0.1}``).
        slots: Keys of a layer or model node whose value names an option of this
            group (``weight_init``): a string there is the group's option with its
            defaults.
        option_keys: The keys an option's node may hold, from the option's registry
            entry (default: the entry's ``option_names``, or its ``params``, beside
            ``name``).
        per_task: Only the tasks that name the group in their ``groups``
            (``Task(groups=("data", "optimizer"))``: ``train``) read it, and their
            option file declares it in its defaults list; False: the primary config
            declares it, for every task. The override check refuses the group's
            overrides for other tasks with a message that names the ones that read
            it.
    """

    doc: str = ""
    registry: Registry[Any] | Callable[[], Registry[Any]] | None = None
    parse: Callable[[Any, str], Any] | None = None
    top_level: bool = True
    choice: bool = False
    slots: tuple[str, ...] = ()
    option_keys: Callable[[Any], OptionKeys] = field(default=_params_of)
    per_task: bool = False

    def options(self) -> Registry[Any] | None:
        """The registry of the group's options, or None."""
        if self.registry is None or isinstance(self.registry, Registry):
            return self.registry
        return self.registry()

    def check_option_keys(self, option: str, names: Iterable[str], key: str) -> None:
        """Each of ``names``, set under option ``option`` at ``key``, is a key of it.

        The same rule as the spec's (:func:`~annfactory.params.check_keys` over the
        option's schema), for the override check, which sees the keys one by one.
        Nothing is checked for an option that names no registry entry (a file of
        keys, or a user's file named otherwise).

        Raises:
            UnknownNameError: Names ``<key>.<name>`` and the closest key there is.
        """
        registry = self.options()
        if registry is None or option not in registry:
            return
        keys = self.option_keys(registry.get(option))
        check_keys(
            [name for name in names if name not in keys.beside],
            keys.allowed,
            key,
            keys.kind,
            where=f" for {registry.kind} {option!r}",
        )


def _group_from(obj: Any, *, name: str, **options: Any) -> ConfigGroup:
    """Registry coercion: a :class:`ConfigGroup`, or its fields as keyword options."""
    if isinstance(obj, ConfigGroup):
        if options:
            raise RegistrationError(
                f"config group {name!r}: options given with a ConfigGroup"
            )
        return obj
    raise RegistrationError(
        f"config group {name!r}: expected a ConfigGroup, got {type(obj).__name__}"
    )


groups: Registry[ConfigGroup] = Registry(
    "config group", coerce=_group_from, on_miss=load_plugins
)
"""annfactory's config groups (others, like ``hydra/launcher``, are Hydra's)."""


def _task_keys(task: Task) -> OptionKeys:
    return OptionKeys(task.option_names, kind="key")


def _layer_keys(layer_type: Any) -> OptionKeys:
    nested = ["layers"] if getattr(layer_type, "nested", False) else []
    return OptionKeys(
        [*LAYER_FIELDS, *nested, *layer_type.params], "layer key", beside=()
    )


groups.register(
    "model",
    ConfigGroup(doc="the network: demo, mlp, cnn, resmlp, or a model file of yours"),
)
groups.register(
    "init",
    ConfigGroup(
        doc="the weight init of every weighted layer",
        registry=inits,
        choice=True,
        slots=("weight_init", "bias_init"),
    ),
)
groups.register(
    "activation",
    ConfigGroup(
        doc="the activation of every weighted layer but the last",
        registry=activations,
        choice=True,
        slots=("activation", "hidden_activation", "output_activation"),
    ),
)
groups.register(
    "layer",
    ConfigGroup(
        doc="a layer type with its options, for one slot: layer@model.layers.<name>",
        registry=layers,
        top_level=False,
        option_keys=_layer_keys,
    ),
)
groups.register(
    "data",
    ConfigGroup(
        doc="the data set of task=train: bundled, generated, or a CSV file",
        registry=datasets,
        parse=parse_data,
        choice=True,
        per_task=True,
    ),
)
groups.register(
    "optimizer",
    ConfigGroup(
        doc="the optimizer of task=train (torch.optim's names and meanings)",
        registry=optimizers,
        parse=parse_optimizer,
        choice=True,
        per_task=True,
    ),
)
groups.register(
    "task",
    ConfigGroup(
        doc="what the run does with the network",
        registry=loaded_tasks,
        option_keys=_task_keys,
    ),
)


def top_level_groups() -> list[str]:
    """The groups a run reads as top-level keys, registered so far, sorted."""
    return [name for name, group in groups.items() if group.top_level]


def run_keys() -> tuple[str, ...]:
    """Every top-level key of a run: its groups and :data:`KEYS`."""
    return (*top_level_groups(), *KEYS)


def choice_group(key: str) -> ConfigGroup | None:
    """The group whose option the value at ``key`` (the last part of a config path)
    names with its parameters: a choice group itself (``init``) or one of its slots
    (``weight_init``); None for any other key."""
    for name, group in groups.items():
        if (group.choice and key == name) or key in group.slots:
            return group
    return None


class _ChoiceSlots(Mapping[str, Registry[Any]]):
    """:func:`choice_group`'s registry for each key it knows."""

    def _table(self) -> dict[str, Registry[Any]]:
        keys = [
            key
            for name, group in groups.items()
            for key in ((name,) if group.choice else ()) + group.slots
        ]
        table: dict[str, Registry[Any]] = {}
        for key in keys:
            group = choice_group(key)
            registry = group.options() if group is not None else None
            if registry is not None:
                table[key] = registry
        return table

    def __getitem__(self, key: str) -> Registry[Any]:
        return self._table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


CHOICE_SLOTS: Mapping[str, Registry[Any]] = _ChoiceSlots()
"""Key (the last part of a config path) -> the registry its value names an entry of:
``init``, ``weight_init``, ``bias_init``, ``activation``, ... (read-only, live)."""


def layer_slots() -> tuple[str, ...]:
    """The keys of a layer or model node that name an option of a group
    (``weight_init``, ``activation``, ...)."""
    return tuple(slot for _, group in groups.items() for slot in group.slots)


KEYS: Final[Mapping[str, Param]] = {
    "seed": Param(int, 0, "seed of every parameter's generator", low=0, high=2**63 - 1),
    "batch_size": Param(int, 5, "rows in the random input batch", low=1),
    "device": Param(str, "cpu", "cpu, cuda, cuda:N or meta"),
    "dtype": Param(str, "float32", "parameter and input dtype", choices=DTYPES),
    "compile": Param(bool, False, "run the forward pass through torch.compile"),
}
"""The plain top-level keys of a run, in the order ``spec.yaml`` lists them."""


def validate_key(name: str, value: Any) -> Any:
    """The value of the plain top-level key ``name``, checked (see :data:`KEYS`).

    Raises:
        ConfigError: The value is not allowed; the message names the key.
    """
    if name == "device":
        # cuda:N is not one of a fixed set of choices, and a device name has its own
        # look-alikes (gpu, CUDA).
        return validate_device(value)
    return KEYS[name].validate(value, name)


_GPU_WORDS = ("gpu", "nvidia", "cuda")


def validate_device(value: Any) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``meta``; whether it exists is checked when
    the network is built (that needs torch)."""
    if isinstance(value, str) and re.fullmatch(r"cuda:\d+", value):
        return value
    if isinstance(value, str) and value in DEVICES:
        return value
    suggestion = None
    if isinstance(value, str):
        word = ascii_lookalike(value).strip().lower()
        if word in DEVICES:
            suggestion = word
        elif word in _GPU_WORDS or word.startswith(("cuda", "gpu")):
            number = re.search(r"\d+", word)
            suggestion = f"cuda:{number.group()}" if number else "cuda"
        else:
            suggestion = closest_name(value, DEVICES)
    odd = non_ascii_character(value) if isinstance(value, str) else None
    message = f"unknown device {value!r}"
    if odd is not None:
        message += f": it contains the non-ASCII character {odd}"
    message += "." + (f" Did you mean {suggestion!r}?" if suggestion else "")
    raise ConfigError("device", message, "Valid devices: cpu, cuda, cuda:N, meta.")
