"""From Hydra to the spec: compose the bundled config groups, check overrides, and turn
a composed ``DictConfig`` into a validated :class:`~annfactory.spec.RunSpec`.

This is the one place that knows about Hydra and OmegaConf; nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.activations import activations
from annfactory.errors import ConfigError, UnknownNameError
from annfactory.inits import inits
from annfactory.layers import layers
from annfactory.registry import Registry
from annfactory.spec import LAYER_FIELDS, RunSpec, parse_run

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "check_overrides",
    "compose",
    "conf_dir",
    "group_options",
    "rerender",
    "to_spec",
]

CONFIG_NAME = "config"
#: The config groups whose options are registry entries, and the registry.
_GROUP_REGISTRIES: dict[str, Registry[Any]] = {
    "init": inits,
    "activation": activations,
    "layer": layers,
}
#: The config groups annfactory owns (others, like hydra/launcher, are Hydra's).
GROUPS = ("model", "layer", "activation", "init", "task")


def conf_dir() -> Path:
    """The bundled config directory, ``annfactory/conf`` (``conf/`` in a checkout links
    to it). Other Hydra apps reach it as ``pkg://annfactory.conf``."""
    return Path(__file__).resolve().parent / "conf"


@cache
def _bundled_options(group: str) -> tuple[str, ...]:
    return _options_in(conf_dir(), group)


def _options_in(root: Path, group: str) -> tuple[str, ...]:
    folder = root / group
    if not folder.is_dir():
        return ()
    return tuple(sorted(path.stem for path in folder.glob("*.yaml")))


def group_options(group: str, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """The options of a config group: the bundled ones and those in ``extra_dirs``."""
    options = set(_bundled_options(group))
    for root in extra_dirs:
        options.update(_options_in(Path(root), group))
    return sorted(options)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the bundled config with Hydra overrides, from any working directory.

    Works inside a running Hydra application or notebook too: Hydra's global state is
    saved and restored around the call.

    Args:
        overrides: Command-line style overrides, e.g. ``["model=mlp", "init=normal"]``.

    Returns:
        The composed config, as ``scripts/run.py`` would see it.

    Raises:
        ConfigError: An override names an unknown option or parameter, or does not
            parse; the message names the closest valid name.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    check_overrides(overrides)
    # Set Hydra's global state aside (a running app or notebook may hold one), and put
    # it back as it was afterwards.
    saved = Singleton._instances.pop(GlobalHydra, None)
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir()), job_name="annfactory", version_base="1.3"
        ):
            cfg: DictConfig = hydra_compose(
                config_name=CONFIG_NAME, overrides=overrides
            )
    except (HydraException, OmegaConfBaseException) as error:
        raise rerender(error) from error
    finally:
        Singleton._instances.pop(GlobalHydra, None)
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved
    return cfg


def to_spec(cfg: DictConfig | Mapping[str, Any], strict: bool = True) -> RunSpec:
    """Validate a composed config and resolve it into a :class:`RunSpec`.

    Interpolations are resolved and ``???`` values reported with their path. A
    ``hydra`` node, if present, is ignored. ``strict=False`` ignores top-level keys
    that are not annfactory's (see :func:`~annfactory.spec.parse_run`).
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(cfg, DictConfig):
        try:
            data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as error:
            raise rerender(error) from error
    else:
        data = dict(cfg)
    if not isinstance(data, dict):
        raise ConfigError("<root>", "the config is not a mapping.", "Give a mapping.")
    data.pop("hydra", None)
    return parse_run({str(key): value for key, value in data.items()}, strict=strict)


def check_overrides(
    overrides: Sequence[str],
    config_dirs: Iterable[Path] = (),
    skip_sweeps: bool = False,
) -> None:
    """Check command-line overrides before Hydra composes them.

    Catches what Hydra would report without a suggestion, or not at all: an unknown
    option of one of annfactory's config groups (``init=xavier_norml``), an unknown
    parameter of an init or activation chosen in the same overrides
    (``init=normal init.sdt=0.1``), a group set to null, an empty mapping that would
    change nothing (``model.layers={}``), and a parameter set under a slot that a
    shorthand string replaced.

    Args:
        overrides: Command-line overrides.
        config_dirs: Extra config directories (``--config-dir``) whose options count.
        skip_sweeps: Leave sweep overrides (``init=a,b``) alone: the sweeper checks
            each job, so one bad value fails its job, not the whole sweep.

    Raises:
        ConfigError: Names the override, the bad value and the fix (the closest valid
            name where there is one).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as error:
        raise rerender(error) from error
    if skip_sweeps:
        kept = [
            i for i, override in enumerate(parsed) if not override.is_sweep_override()
        ]
        parsed = [parsed[i] for i in kept]
        overrides = [overrides[i] for i in kept]
    chosen = _check_group_options(parsed, list(config_dirs))
    _check_parameters(parsed, chosen)
    _check_values(parsed)
    _check_unknown_keys(parsed, list(overrides))


def _check_group_options(parsed: list[Any], config_dirs: list[Path]) -> dict[str, Any]:
    """Check group options; return config path -> (group, option) for each choice."""
    searchpath_changed = any(o.key_or_group == "hydra.searchpath" for o in parsed)
    chosen: dict[str, tuple[str, str]] = {}
    for override in parsed:
        group = override.key_or_group
        if group not in GROUPS or override.is_delete():
            continue
        key = _override_key(override)
        for option in _override_values(override):
            if option is None:
                raise ConfigError(
                    key,
                    "null is not an option on the command line.",
                    f"Leave {key} out, or write ~{key}, to drop the choice.",
                )
            valid = group_options(group, config_dirs)
            if option not in valid and not searchpath_changed:
                kind = {"model": "model", "layer": "layer type"}.get(group, group)
                raise UnknownNameError(key, kind, option, valid)
            path = override.package if override.package else group
            chosen[path] = (group, str(option))
    return chosen


def _check_parameters(parsed: list[Any], chosen: dict[str, Any]) -> None:
    """Parameters set under a group option chosen in the same overrides must exist."""
    for override in parsed:
        parent, _, parameter = override.key_or_group.rpartition(".")
        if parent not in chosen or override.is_delete():
            continue
        group, option = chosen[parent]
        registry = _GROUP_REGISTRIES.get(group)
        if registry is None or option not in registry:
            continue
        schema = dict(registry.get(option).params)
        # Keys that sit beside the parameters: an entry's name, a layer's slots.
        extra = LAYER_FIELDS if group == "layer" else ("name",)
        if parameter not in schema and parameter not in extra:
            is_layer = group == "layer"
            raise UnknownNameError(
                override.key_or_group,
                "layer key" if is_layer else "parameter",
                parameter,
                [*LAYER_FIELDS, *schema] if is_layer else schema,
                where=f" for {registry.kind} {option!r}",
            )


def _check_values(parsed: list[Any]) -> None:
    """Value overrides that Hydra would apply silently or reject obscurely."""
    shorthands: dict[str, str] = {}  # slot path -> the option a string set it to
    for override in parsed:
        if override.is_delete() or override.is_sweep_override() or override.package:
            continue
        key = override.key_or_group
        value = override.value()
        if isinstance(value, dict) and not value:
            raise ConfigError(
                key,
                "an empty mapping merges into the node and changes nothing.",
                f"To remove the node, write ~{key}.",
            )
        parent = next((slot for slot in shorthands if key.startswith(slot + ".")), None)
        if parent is not None:
            group = "activation" if parent.endswith("activation") else "init"
            raise ConfigError(
                key,
                f"{parent} was set to the name {shorthands[parent]!r}, which has no "
                "parameters to set.",
                f"Choose it with the group syntax: {group}@{parent}="
                f"{shorthands[parent]} {key}=...",
            )
        if isinstance(value, str) and "." in key and key.endswith(_SLOTS):
            shorthands[key] = value


def _check_unknown_keys(parsed: list[Any], overrides: list[str]) -> None:
    """A value override of a key that the config lacks: name the closest existing key.

    Hydra would say only that the key "is not in struct" and suggest adding it with
    ``+``. Composing costs about 0.1 s, so it happens only when a command line sets a
    nested key (``model.depth=3``).
    """
    from hydra.errors import HydraException
    from omegaconf import DictConfig, OmegaConf

    suspects = [
        override
        for override in parsed
        if not (override.is_delete() or override.is_add() or override.is_force_add())
        and not override.package
        and not override.is_sweep_override()
        and not override.key_or_group.startswith("hydra.")
        and "." in override.key_or_group
    ]
    if not suspects:
        return
    rest = [
        line for line, o in zip(overrides, parsed, strict=True) if o not in suspects
    ]
    try:
        cfg = compose(rest)
    except (HydraException, ConfigError):
        return  # another override is wrong; Hydra or our checks report it
    for override in suspects:
        node: Any = cfg
        path: list[str] = []
        for part in override.key_or_group.split("."):
            if not isinstance(node, DictConfig) or part not in node:
                where = ".".join(path) or "the config"
                raise UnknownNameError(
                    ".".join([*path, part]),
                    "key",
                    part,
                    list(node) if isinstance(node, DictConfig) else [],
                    where=f" in {where}",
                )
            node = OmegaConf.select(node, part, throw_on_missing=False)
            path.append(part)


#: Layer slots that take a registry name (the shorthand) or a mapping.
_SLOTS = ("weight_init", "bias_init", "activation")


def _override_values(override: Any) -> list[str | None]:
    if override.is_sweep_override():
        if override.is_choice_sweep():
            return [
                None if v == "null" else v for v in override.sweep_string_iterator()
            ]
        return []
    value = override.value()
    return [value if isinstance(value, str) or value is None else str(value)]


def _override_key(override: Any) -> str:
    if override.package:
        return f"{override.key_or_group}@{override.package}"
    return str(override.key_or_group)


def rerender(error: Exception) -> ConfigError:
    """An annfactory error with the essence of a Hydra or OmegaConf error."""
    key = str(getattr(error, "full_key", "") or "")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [
        line for line in lines if not line.startswith(("full_key:", "object_type="))
    ]
    message = lines[0] if lines else type(error).__name__
    hint = " ".join(lines[1:3]) if len(lines) > 1 else None
    if hint and len(hint) > 300:
        hint = hint[:297] + "..."
    return ConfigError(key, message, hint)


def config_dirs_from_argv(argv: Sequence[str]) -> list[Path]:
    """The ``--config-dir``/``-cd`` folders named on a command line."""
    dirs = []
    for index, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and index + 1 < len(argv):
            dirs.append(Path(argv[index + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def overrides_from_argv(argv: Sequence[str]) -> list[str]:
    """The overrides on a ``scripts/run.py`` command line (flags and their values
    removed), parsed the way Hydra parses them."""
    from hydra._internal.utils import get_args_parser

    try:
        args, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # argparse reports its own errors; let Hydra do that
        return []
    return list(args.overrides)


def full_error_requested() -> bool:
    """Whether ``HYDRA_FULL_ERROR=1`` asks for tracebacks."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"
