"""The override pre-check (:func:`check_overrides`): what Hydra would report without
a suggestion, or not at all, caught before it composes, by reading the options'
files and the registries' schemas.

Group options, their parameters and values here; keys that need a composed config
in :mod:`annfactory.config.precheck_keys`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.config.precheck_keys import check_unknown_keys, overridden_settings
from annfactory.config.rewriting import (
    override_key,
    override_values,
    parsed_overrides,
    quote_free_text,
    rewritten_for_hydra,
    value_text,
)
from annfactory.config.sources import (
    conf_dir,
    group_options,
    hydra_group_options,
    load_yaml,
    options_in,
    primary_keys,
    user_option_file,
)
from annfactory.errors import (
    AnnFactoryError,
    ConfigError,
    UnknownNameError,
)
from annfactory.fixes import shell_word as _shell
from annfactory.groups import (
    ConfigGroup,
    groups,
    layer_slots,
)
from annfactory.plugins import load_plugins

if TYPE_CHECKING:
    pass


def check_overrides(
    overrides: Sequence[str] | str,
    config_dirs: Iterable[Path] = (),
    skip_sweeps: bool = False,
) -> list[str]:
    """Check command-line overrides before Hydra composes them.

    Catches what Hydra would report without a suggestion, or not at all: an unknown
    option of one of annfactory's config groups (``init=xavier_norml``), an unknown
    parameter of an init or activation chosen in the same overrides
    (``init=normal init.sdt=0.1``), a group set to null, an empty mapping that would
    change nothing (``model.layers={}``), and a parameter set under a slot that a
    shorthand string replaced.

    Args:
        overrides: Command-line overrides (a single string is one override).
        config_dirs: Extra config directories (``--config-dir``) whose options count.
        skip_sweeps: Leave sweep overrides (``init=a,b``) alone: the sweeper checks
            each job, so one bad value fails its job, not the whole sweep.

    Returns:
        The overrides as Hydra must receive them (see :func:`overrides_for_hydra`).

    Raises:
        ConfigError: Names the override, the bad value and the fix (the closest valid
            name where there is one).
    """
    overrides = quote_free_text(overrides)
    config_dirs = list(config_dirs)
    _check_config_dirs(config_dirs)
    parsed = parsed_overrides(overrides)
    _check_override_shapes(parsed, overrides)
    for_hydra = rewritten_for_hydra(parsed, overrides)
    # A data set chosen by a sweep (data=iris,wine) is chosen too.
    data_chosen = any(str(override.key_or_group) == "data" for override in parsed)
    if skip_sweeps:
        kept = [
            i for i, override in enumerate(parsed) if not override.is_sweep_override()
        ]
        parsed = [parsed[i] for i in kept]
        overrides = [overrides[i] for i in kept]
    chosen = _check_group_options(parsed, config_dirs)
    _check_task_groups(parsed, data_chosen)
    _check_parameters(parsed, chosen)
    _check_values(parsed)
    cfg = check_unknown_keys(parsed, list(overrides), config_dirs)
    for note in overridden_settings(parsed, list(overrides), cfg):
        print(f"note: {note}", file=sys.stderr)
    return for_hydra


def _check_config_dirs(config_dirs: list[Path]) -> None:
    """Each ``--config-dir`` must exist; Hydra would ignore a missing one and then
    report its options as unknown."""
    for root in config_dirs:
        folder = Path(root)
        if folder.is_dir():
            continue
        where = folder if folder.is_absolute() else Path.cwd() / folder
        problem = "is not a directory" if folder.exists() else "does not exist"
        raise ConfigError(
            "--config-dir",
            f"{str(root)!r} {problem} ({where}).",
            "Give the folder that holds your option folders (model/, init/, ...), "
            "e.g. --config-dir my_configs.",
        )


def _check_override_shapes(parsed: list[Any], overrides: list[str]) -> None:
    """Overrides that parse but name nothing: ``=3``, ``init@=xavier_normal``."""
    for override, line in zip(parsed, overrides, strict=True):
        if not override.key_or_group:
            raise ConfigError(
                line, "the override has no key.", "Write key=value, e.g. seed=3."
            )
        if override.package == "" and not override.is_delete():
            group = override.key_or_group
            option = value_text(override, line)
            raise ConfigError(
                f"{group}@",
                f"nothing follows the @ in {line!r}.",
                f"Write {_shell(f'{group}={option}')}, or "
                f"{group}@<config path>={option} to fill one slot.",
            )


def _check_group_options(parsed: list[Any], config_dirs: list[Path]) -> dict[str, Any]:
    """Check group options; return config path -> (group, option) for each choice."""
    searchpath_changed = any(o.key_or_group == "hydra.searchpath" for o in parsed)
    chosen: dict[str, tuple[str, str]] = {}
    for override in parsed:
        group = override.key_or_group
        if group.startswith("hydra/") and not searchpath_changed:
            _check_hydra_option(override, config_dirs)
        if override.package is not None and not searchpath_changed:
            _check_group_exists(override, config_dirs)
        if _group_of(group) is None or override.is_delete():
            continue
        if isinstance(override.value(), dict):
            continue  # Hydra sets a mapping as a value, not as an option
        key = override_key(override)
        for option in override_values(override):
            if option is None:
                raise ConfigError(
                    key,
                    "null is not an option on the command line.",
                    f"Leave {key} out, or write ~{key}, to drop the choice.",
                )
            valid = _options_of(group, config_dirs, option)
            if option not in valid and not searchpath_changed:
                kind = {"layer": "layer type", "data": "data set"}.get(group, group)
                raise UnknownNameError(
                    key, kind, option, valid, note=_plugin_failure(group, option)
                )
            _check_yaml_files(group, str(option), key, config_dirs, set())
            path = override.package if override.package else group
            chosen[path] = (group, str(option))
    return chosen


def _check_task_groups(parsed: Sequence[Any], data_chosen: bool) -> None:
    """A group that only some tasks declare (``data``, ``optimizer``: task=train) is
    set only with one of them; Hydra would say that it found no match in the
    defaults list, or that the key is not in the config."""
    tasks: list[str] = ["forward"]
    for override in parsed:
        if override.key_or_group == "task" and not override.is_delete():
            tasks = [str(value) for value in override_values(override) if value]
    for override in parsed:
        name = str(override.key_or_group).split(".")[0].split("/")[0]
        if override.package is not None or name == "task":
            continue
        group = _group_of(name) if name in groups else None
        if group is None or not group.per_task:
            continue
        if name == "data" and _check_file_data(override, tasks):
            continue
        readers = _tasks_reading(name, tasks)
        if not readers:
            continue
        if set(tasks) & set(readers):
            if not data_chosen:
                _check_data_chosen(override)
            continue
        needed = " or ".join(f"task={task}" for task in readers)
        raise ConfigError(
            override_key(override),
            f"{name} is read by {needed} only, and the task is "
            f"{' or '.join(tasks) if tasks else 'forward'}.",
            f"Add {needed}, e.g. python scripts/run.py {needed} {override.input_line}",
        )


def _check_data_chosen(override: Any) -> None:
    """``data.path=x.csv`` with task=train sets an option of a data set: one must be
    chosen (``data=csv``); Hydra would only say that ``data`` is not in the config."""
    key = str(override.key_or_group)
    if not key.startswith("data.") or override.is_delete():
        return
    raise ConfigError(
        override_key(override),
        "no data set is chosen, so there is nothing to set.",
        "Add data=csv (or data=parquet) for a file of yours, e.g. python "
        f"scripts/run.py task=train data=csv {override.input_line}",
    )


def _check_file_data(override: Any, tasks: Sequence[str]) -> bool:
    """A ``data`` override for the tasks that read a file with a saved run
    (``task=predict``, ``task=evaluate``): only the file's keys, never a data set.
    True where the override is theirs and fine; False where it is for others.

    Raises:
        ConfigError: ``data=<name>`` or another ``data.*`` key with those tasks.
    """
    from annfactory.tasks.predict import FILE_KEYS, FILE_TASKS

    reading = [task for task in tasks if task in FILE_TASKS]
    if not reading:
        return False
    key = str(override.key_or_group)
    option = key.partition(".")[2]
    task = f"task={reading[0]}"
    if option in FILE_KEYS:
        # In a sweep over task=train too, the usual rule applies.
        return len(reading) == len(tasks)
    if not option:
        raise ConfigError(
            "data",
            f"{task} reads the file with the saved run's data options, so "
            f"{override.input_line} would be ignored.",
            "Drop it, and give the file as data.path=<file>.",
        )
    raise ConfigError(
        key,
        f"{task} reads the file with the saved run's data options; it takes "
        f"{', '.join(f'data.{name}' for name in FILE_KEYS)} only.",
        f"Drop {key} (the run's own {option.split('.')[0]} applies).",
    )


def _tasks_reading(group: str, chosen: Sequence[str]) -> list[str]:
    """The tasks that declare ``group`` among the groups they read
    (``Task(groups=...)``); a chosen task that is not registered yet (a plugin's)
    is looked up first, which loads the plugins."""
    from annfactory.tasks import tasks

    for name in chosen:
        if name not in tasks:
            with suppress(AnnFactoryError):
                tasks.get(name)
    return [name for name, task in tasks.items() if group in task.groups]


def _group_of(name: str) -> ConfigGroup | None:
    """The config group called ``name``, if there is one.

    A name that is no top-level key of the primary config (``sede``, a plugin's
    group) loads the plugins first: one may add it. Known keys (``seed=3``) never
    do, so the usual overrides stay free of the plugin scan.
    """
    if name in groups:
        return groups.get(name)
    if "." in name or "/" in name or name in primary_keys():
        return None
    try:
        return groups.get(name)
    except UnknownNameError:
        return None


def _options_of(group: str, config_dirs: list[Path], option: Any) -> list[str]:
    """The options of ``group``: the bundled ones, those of ``config_dirs``, and, when
    ``option`` is none of them, those that plugins add to Hydra's search path."""
    valid = group_options(group, config_dirs)
    if option in valid:
        return valid
    return sorted({*valid, *_plugin_options(group)})


def _plugin_options(group: str) -> tuple[str, ...]:
    """The options of ``group`` on Hydra's whole search path, where plugin packages
    add theirs (a ``SearchPathPlugin``).

    Asked of Hydra only when an annfactory plugin is installed: Hydra finds its
    plugins by importing every ``hydra_plugins`` module, which costs about 50 ms.
    """
    try:
        if not load_plugins():
            return ()
    except AnnFactoryError:
        pass  # a plugin that failed to load may still have put its configs there
    return hydra_group_options(group)


def _plugin_failure(group: str, option: str) -> str:
    """Why plugins failed to load, if they did, as a line for an unknown option's
    error: the option may have been meant as a broken plugin's entry."""
    entry = groups.get(group) if group in groups else None
    registry = entry.options() if entry is not None else None
    if registry is None:
        return ""
    try:
        registry.get(option)
    except UnknownNameError as error:
        return error.note
    return ""


def _check_group_exists(override: Any, config_dirs: list[Path]) -> None:
    """The group of ``group@slot=option`` must exist; Hydra would not say which
    group was meant."""
    group = str(override.key_or_group)
    if group.startswith("hydra/") or (conf_dir() / group).is_dir():
        return
    if _group_of(group) is not None:
        return
    if any((Path(root) / group).is_dir() for root in config_dirs):
        return
    extra = {
        path.name
        for root in config_dirs
        if Path(root).is_dir()
        for path in Path(root).iterdir()
        if path.is_dir()
    }
    raise UnknownNameError(
        override_key(override), "config group", group, {*groups.names(), *extra}
    )


def _check_hydra_option(override: Any, config_dirs: list[Path]) -> None:
    """An option of one of Hydra's groups (``hydra/launcher=joblib``) must exist;
    Hydra would list its whole search path."""
    if override.is_delete() or override.is_sweep_override():
        return
    group = override.key_or_group
    option = override.value()
    if not isinstance(option, str):
        return  # Hydra reports a list or a null itself, in a line or two
    valid = set(hydra_group_options(group))
    for root in config_dirs:
        valid.update(options_in(Path(root), group))
    if option not in valid:
        kind = group.rpartition("/")[2]
        raise UnknownNameError(override_key(override), kind, option, valid)


def _check_yaml_files(
    group: str, option: str, key: str, config_dirs: list[Path], seen: set[Path]
) -> None:
    """A user's option file must be valid YAML, and each entry of its defaults list
    must name an existing option; Hydra would report the first with a traceback and
    the second with its whole search path. The files those entries name are checked
    the same way.

    Only files in ``config_dirs`` are read: the bundled ones are tested.
    """
    path = user_option_file(group, option, config_dirs)
    if path is None or path in seen:
        return
    seen.add(path)
    defaults = load_yaml(path, key).get("defaults")
    for entry in defaults if isinstance(defaults, list) else []:
        if not (isinstance(entry, dict) and len(entry) == 1):
            continue
        ((target, choice),) = entry.items()
        if not (isinstance(target, str) and isinstance(choice, str)):
            continue
        if target.startswith("override ") or "${" in choice:
            continue
        optional = target.startswith("optional ")
        target, _, package = target.removeprefix("optional ").partition("@")
        if not target.startswith("/"):  # relative to the file's own group
            target = f"{group}/{target}"
        target = target.strip("/")
        if choice not in _options_of(target, config_dirs, choice) and not optional:
            where = f"{group.replace('/', '.')}.{package}" if package else target
            kind = {"layer": "layer type"}.get(target, target)
            raise UnknownNameError(
                where,
                kind,
                choice,
                _options_of(target, config_dirs, choice),
                where=f" in the defaults list of {path}",
            )
        _check_yaml_files(target, choice, key, config_dirs, seen)


def _check_parameters(parsed: list[Any], chosen: dict[str, Any]) -> None:
    """Keys set under a group option chosen in the same overrides must be keys of
    that option (``init=normal init.sdt=0.1``), by the option's schema: the same rule
    as the spec's and the task's, applied before Hydra composes."""
    for override in parsed:
        parent, _, parameter = override.key_or_group.rpartition(".")
        if parent not in chosen or override.is_delete():
            continue
        group, option = chosen[parent]
        entry = _group_of(group)
        if entry is not None:
            entry.check_option_keys(option, [parameter], parent)


def _check_values(parsed: list[Any]) -> None:
    """Value overrides that Hydra would apply silently or reject obscurely."""
    # slot path -> (the override's + or ++ prefix, the option a string set it to)
    shorthands: dict[str, tuple[str, str]] = {}
    for override in parsed:
        if override.is_delete() or override.is_sweep_override() or override.package:
            continue
        key = override.key_or_group
        value = override.value()
        if isinstance(value, dict) and not value:
            raise ConfigError(
                key,
                "an empty mapping merges into the node and changes nothing.",
                f"To remove the node, write {_shell('~' + key)}.",
            )
        parent = next((slot for slot in shorthands if key.startswith(slot + ".")), None)
        if parent is not None:
            prefix, name = shorthands[parent]
            fields = [f"name: {name}"]
            for other in parsed:
                field = other.key_or_group.removeprefix(parent + ".")
                if other.key_or_group.startswith(parent + ".") and "." not in field:
                    fields.append(f"{field}: {other.get_value_element_as_str()}")
            mapping = "{" + ", ".join(fields) + "}"
            raise ConfigError(
                key,
                f"{parent} was set to the name {name!r}, which has no parameters to "
                "set.",
                "Give the name and its parameters in one mapping: "
                f"{_shell(f'{prefix}{parent}={mapping}')}",
            )
        if isinstance(value, str) and "." in key and key.endswith(layer_slots()):
            prefix = (
                "++" if override.is_force_add() else "+" if override.is_add() else ""
            )
            shorthands[key] = (prefix, value)
