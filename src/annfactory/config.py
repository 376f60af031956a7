"""From Hydra to the spec: compose the bundled config groups, check overrides, and turn
a composed ``DictConfig`` into a validated :class:`~annfactory.spec.RunSpec`.

This is the one place that knows about Hydra and OmegaConf; nothing here imports torch.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.errors import (
    AnnFactoryError,
    ConfigError,
    UnknownNameError,
    ascii_lookalike,
    closest_name,
    non_ascii_character,
)
from annfactory.fixes import shell_word as _shell
from annfactory.groups import (
    CHOICE_SLOTS,
    ConfigGroup,
    choice_group,
    groups,
    layer_slots,
    top_level_groups,
)
from annfactory.plugins import load_plugins
from annfactory.spec import (
    RunSpec,
    layers_set_by_groups,
    mlp_layer_names,
    parse_run,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "argv_for_hydra",
    "check_overrides",
    "compose",
    "composed_once",
    "conf_dir",
    "group_options",
    "overrides_for_hydra",
    "quote_free_text",
    "rerender",
    "rerender_composition",
    "to_spec",
]

CONFIG_NAME = "config"
#: annfactory's own config groups (others, like hydra/launcher, are Hydra's); a
#: plugin's groups join :data:`annfactory.groups.groups` when it loads.
GROUPS = tuple(groups.names())


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


def compose(overrides: Sequence[str] | str = ()) -> DictConfig:
    """Compose the bundled config with Hydra overrides, from any working directory.

    Works inside a running Hydra application or notebook too: Hydra's global state is
    saved and restored around the call.

    Args:
        overrides: Command-line style overrides, e.g. ``["model=mlp", "init=normal"]``;
            a single string is one override (``"model=mlp"``).

    Returns:
        The composed config, as ``scripts/run.py`` would see it.

    Raises:
        ConfigError: An override names an unknown option or parameter, or does not
            parse; the message names the closest valid name.
    """
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for_hydra = check_overrides(overrides)

    def compose_with(given: list[str], hydra_node: bool = False) -> DictConfig:
        with _bundled_hydra():
            cfg: DictConfig = hydra_compose(
                config_name=CONFIG_NAME,
                overrides=given,
                return_hydra_config=hydra_node,
            )
        return cfg

    try:
        return compose_with(for_hydra)
    except (HydraException, OmegaConfBaseException) as error:
        # Not "from error": Hydra prints an OmegaConf cause after our message. The
        # original stays the context, which a full traceback shows.
        raise rerender_composition(  # noqa: B904
            error, for_hydra, lambda given: compose_with(given, hydra_node=True)
        )


@contextmanager
def _bundled_hydra() -> Iterator[None]:
    """Hydra initialized with the bundled config dir, for the ``with`` block.

    Hydra's global state is set aside (a running app or notebook may hold one) and
    put back as it was afterwards.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.singleton import Singleton

    saved = Singleton._instances.pop(GlobalHydra, None)
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir()), job_name="annfactory", version_base="1.3"
        ):
            yield
    finally:
        Singleton._instances.pop(GlobalHydra, None)
        if saved is not None:
            Singleton._instances[GlobalHydra] = saved


@contextmanager
def composed_once() -> Iterator[None]:
    """A Hydra application started in the ``with`` block composes its config once
    per run, not twice.

    Before a run or a sweep, ``@hydra.main`` composes the whole config only to read
    ``hydra.mode`` (``Hydra.get_mode``: multirun mode, sweep overrides not checked),
    then composes it again for the run with the same overrides and, where the config
    set no mode, ``hydra.mode=RUN`` (or ``MULTIRUN``) after them. The two differ
    only in that check, in that last override, and in that multirun mode skips a
    group whose option is ``???``, where run mode stops. So the first composition is
    kept, and the second one, when it follows with those overrides, is derived from
    it: the sweep overrides are checked as Hydra checks them and the mode override is
    applied and recorded as Hydra does. A run with a ``???`` choice is composed again,
    for Hydra's own error. Any other composition (a sweep's jobs, ``compose()``) is
    Hydra's own. Composing costs 0.1-0.3 s, a tenth of a run.

    Where the composition fails on one override (a key that does not exist, set
    without ``+``), the error is Hydra's in annfactory's words
    (:func:`rerender_composition`): key, value, closest key and the ``+`` form.

    This relies on Hydra's internal ``ConfigLoaderImpl`` (hydra-core 1.3, pinned in
    pyproject); where its methods are not as expected, Hydra composes twice as usual.
    """
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import ConfigCompositionException
        from hydra.types import RunMode
        from omegaconf import OmegaConf

        from annfactory.hydra_report import ReportedError
    except ImportError:  # pragma: no cover - another Hydra: compose as it does
        yield
        return
    original = ConfigLoaderImpl.load_configuration
    needed = ("validate_sweep_overrides_legal", "_apply_overrides_to_config")
    if not all(hasattr(ConfigLoaderImpl, name) for name in needed):
        yield  # pragma: no cover - another Hydra: compose as it does
        return
    # The composition that only reads the mode: (loader, config name, overrides,
    # from_shell, config); used once.
    kept: list[tuple[Any, str | None, list[str], bool, DictConfig]] = []

    def load_configuration(
        self: Any,
        config_name: str | None,
        overrides: list[str],
        run_mode: Any,
        from_shell: bool = True,
        validate_sweep_overrides: bool = True,
    ) -> DictConfig:
        def compose_with(given: list[str]) -> DictConfig:
            cfg: DictConfig = original(
                self,
                config_name=config_name,
                overrides=given,
                run_mode=run_mode,
                from_shell=from_shell,
                validate_sweep_overrides=validate_sweep_overrides,
            )
            return cfg

        def compose() -> DictConfig:
            try:
                return compose_with(list(overrides))
            except ConfigCompositionException as error:
                # Hydra's message about one override, in ours, which Hydra prints
                # alone (HYDRA_FULL_ERROR=1 shows the chain).
                translated = override_error(error, overrides, compose_with)
                if translated is None:
                    raise
                translated.__cause__ = error
                raise ReportedError(str(translated)) from translated

        if run_mode == RunMode.MULTIRUN and not validate_sweep_overrides:
            kept.clear()
            cfg = compose()
            kept.append((self, config_name, list(overrides), from_shell, cfg))
            return cfg
        if not kept:
            return compose()
        loader, name, first, shell, cfg = kept.pop()
        added = list(overrides[len(first) :])
        mode = {RunMode.RUN: "hydra.mode=RUN", RunMode.MULTIRUN: "hydra.mode=MULTIRUN"}
        same = (
            loader is self
            and name == config_name
            and shell == from_shell
            and list(overrides[: len(first)]) == first
            and added in ([], [mode.get(run_mode)])
            and validate_sweep_overrides
        )
        choices = cfg.hydra.runtime.choices
        missing = any(OmegaConf.is_missing(choices, group) for group in choices)
        if not same or (run_mode == RunMode.RUN and missing):
            return compose()
        parser = OverridesParser.create()
        ConfigLoaderImpl.validate_sweep_overrides_legal(
            overrides=parser.parse_overrides(overrides=first),
            run_mode=run_mode,
            from_shell=from_shell,
        )
        for override in parser.parse_overrides(overrides=added):
            ConfigLoaderImpl._apply_overrides_to_config([override], cfg)
            cfg.hydra.overrides.hydra.append(override.input_line)
        return cfg

    ConfigLoaderImpl.load_configuration = load_configuration  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = original  # type: ignore[method-assign]


@cache
def _hydra_group_options(group: str) -> tuple[str, ...]:
    """The options of one of Hydra's own groups (``hydra/launcher``), with those of
    installed plugins and the bundled config."""
    from hydra.core.global_hydra import GlobalHydra

    with _bundled_hydra():
        loader = GlobalHydra.instance().config_loader()
        return tuple(loader.get_group_options(group))


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
            # Not "from error": Hydra would print the OmegaConf error after ours.
            raise rerender(error, cfg)  # noqa: B904
    else:
        data = dict(cfg)
    if not isinstance(data, dict):
        raise ConfigError("<root>", "the config is not a mapping.", "Give a mapping.")
    data.pop("hydra", None)
    return parse_run({str(key): value for key, value in data.items()}, strict=strict)


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
    parsed = _parse_overrides(overrides)
    _check_override_shapes(parsed, overrides)
    for_hydra = _for_hydra(parsed, overrides)
    if skip_sweeps:
        kept = [
            i for i, override in enumerate(parsed) if not override.is_sweep_override()
        ]
        parsed = [parsed[i] for i in kept]
        overrides = [overrides[i] for i in kept]
    chosen = _check_group_options(parsed, config_dirs)
    _check_task_groups(parsed)
    _check_parameters(parsed, chosen)
    _check_values(parsed)
    cfg = _check_unknown_keys(parsed, list(overrides), config_dirs)
    for note in _overridden_settings(parsed, list(overrides), cfg):
        print(f"note: {note}", file=sys.stderr)
    return for_hydra


def overrides_for_hydra(overrides: Sequence[str] | str) -> list[str]:
    """The overrides as Hydra must receive them to do what they say.

    A mapping with a ``name`` set on an activation or init slot
    (``model.layers.linear1.activation={name: elu, alpha: 0.3}``, with or without
    ``+``/``++``) replaces what the slot held, as a name alone does. Hydra would merge
    it into the option there: refused under ``=`` (the new option's parameters are
    not the old one's keys), and under ``++`` the old option's parameters would stay.
    It becomes ``++key=null ++key={...}``; ``++activation={...}`` for the top-level
    groups. Every other override is passed on as written.
    """
    overrides = quote_free_text(overrides)
    return _for_hydra(_parse_overrides(overrides), overrides)


def _for_hydra(parsed: list[Any], overrides: list[str]) -> list[str]:
    result: list[str] = []
    for override, line in zip(parsed, overrides, strict=True):
        if not _replaces_slot(override):
            result.append(line)
            continue
        key = override.key_or_group
        value = _value_text(override, line)
        if "." not in key:
            # The top-level init and activation are config groups, which Hydra does
            # not let ++ set to null; they are absent unless a group option is chosen.
            result.append(f"++{key}={value}")
        else:
            result.extend([f"++{key}=null", f"++{key}={value}"])
    return result


def _replaces_slot(override: Any) -> bool:
    """A mapping that names an option, set on an activation or init slot."""
    if override.package is not None or override.is_delete():
        return False
    if override.is_sweep_override():
        return False
    value = override.value()
    if not (isinstance(value, dict) and "name" in value):
        return False
    key = str(override.key_or_group)
    if "." not in key:
        # A top-level group whose node is a choice (init, activation).
        return key in groups and groups.get(key).choice
    return key.startswith("model.") and key.endswith(layer_slots())


def _value_text(override: Any, line: str) -> str:
    """The value of an override as the user wrote it."""
    key = override.get_key_element()
    if line.startswith(f"{key}="):
        return line[len(key) + 1 :]
    return str(override.get_value_element_as_str())


def argv_for_hydra(argv: Sequence[str]) -> list[str]:
    """A ``scripts/run.py`` command line with its overrides as Hydra must receive
    them (:func:`overrides_for_hydra`); flags stay as they are."""
    overrides = overrides_from_argv(argv)
    pending = list(zip(overrides, _for_each(overrides), strict=True))
    result: list[str] = []
    for arg in argv:
        if pending and arg == pending[0][0]:
            result.extend(pending.pop(0)[1])
        else:
            result.append(arg)
    return result


def _for_each(overrides: list[str]) -> list[list[str]]:
    """What each override becomes for Hydra (one or two overrides)."""
    overrides = quote_free_text(overrides)
    try:
        parsed = _parse_overrides(overrides)
    except ConfigError:
        return [[line] for line in overrides]  # reported by the check, or by Hydra
    return [
        _for_hydra([override], [line])
        for override, line in zip(parsed, overrides, strict=True)
    ]


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


def quote_free_text(overrides: Sequence[str] | str) -> list[str]:
    """The overrides, with non-ASCII free text quoted for Hydra's grammar.

    Hydra's grammar takes only ASCII in an unquoted value, but a path, a column name
    or a directory may be in any script (``data.target=ラベル``): where the value of
    such a key is refused for a non-ASCII character, its text is quoted
    (``data.target='ラベル'``). Names of registry entries stay as written, so that a
    look-alike letter there (``activation=relu`` typed with a Cyrillic e) is
    reported.
    """
    overrides = [overrides] if isinstance(overrides, str) else list(overrides)
    return [_quoted_text(line) or line for line in overrides]


def _quoted_text(line: str) -> str | None:
    """``line`` with its non-ASCII text quoted, or None if it is left as it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if line.isascii():
        return None
    key, equals, value = line.partition("=")
    name = key.lstrip("+~")
    if not equals or "@" in name or not name.isascii() or not _holds_text(name):
        return None
    parser = OverridesParser.create()
    try:
        parser.parse_overrides([line])
        return None  # already quoted where it must be
    except HydraException:
        pass
    # Each element quoted (a list, a sweep, choice(...)): [größe, höhe] ->
    # ['größe', 'höhe']; else the whole value (a path with a colon or parentheses).
    for quoted in (_ELEMENT.sub(_quote_element, value), _quote_element(value)):
        candidate = f"{key}={quoted}"
        try:
            parser.parse_overrides([candidate])
        except HydraException:
            continue
        return candidate
    return None  # something else is wrong: reported as it is


#: An unquoted element of a value, a list, a mapping or a sweep: the text between
#: separators.
_ELEMENT = re.compile(r"""(?:^|(?<=[\[{(,:]))[^\[\]{}(),:'"]+(?=[\]}),:]|$)""")


def _quote_element(match: re.Match[str] | str) -> str:
    text = match if isinstance(match, str) else match.group()
    core = text.strip()
    if core.isascii() or (("'" in core) and ('"' in core)):
        return text
    quote = '"' if "'" in core else "'"
    return text.replace(core, f"{quote}{core}{quote}", 1)


def _holds_text(key: str) -> bool:
    """Whether the value at ``key`` is free text: a directory of Hydra's
    (``hydra.run.dir``), or a string option of a group's entries that names no
    registry entry (``data.path``, ``data.target``, ``data.features``,
    ``task.run``)."""
    if key.startswith("hydra."):
        return True
    group_name, dot, option = key.partition(".")
    if not dot or "." in option or option in CHOICE_SLOTS:
        return False
    group = groups.get(group_name) if group_name in groups else None
    registry = group.options() if group is not None else None
    if registry is None:
        return False
    for _, entry in registry.items():
        param = getattr(entry, "params", {}).get(option)
        if param is not None and param.kind is str and param.choices is None:
            return True
    return False


def _parse_overrides(overrides: list[str]) -> list[Any]:
    """Hydra's parse of the overrides; an error names the override that fails."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    try:
        return list(parser.parse_overrides(overrides))
    except HydraException as error:
        for line in overrides:
            try:
                parser.parse_overrides([line])
            except HydraException as own:
                raise _unparsable(line, own) from own
        raise rerender(error) from error


def _unparsable(line: str, error: Exception) -> ConfigError:
    """The error for an override that Hydra's grammar rejects."""
    key, equals, value = line.partition("=")
    key = key.lstrip("+~") or line
    if value.startswith("~") and _holds_text(key):
        # The shell expands ~ only at the start of a word, and Hydra's grammar
        # refuses it unquoted: give the path the user meant, where it is one that
        # works (Hydra's directories are made; a file to read must exist).
        expanded = os.path.expanduser(value)
        problem = (
            f"{value!r}: '~' is not expanded here (the shell expands it only at the "
            "start of a word)"
        )
        if key.startswith("hydra.") or os.path.exists(expanded):
            return ConfigError(
                key,
                f"{problem}.",
                f"Give the absolute path: {_shell(f'{key}={expanded}')}",
            )
        return ConfigError(
            key,
            f"{problem}, and {expanded}, what it would name, does not exist either.",
            "Give the absolute path of an existing file.",
        )
    odd = non_ascii_character(line)
    if odd is not None:
        # Unquoted names must be ASCII in Hydra's grammar: a look-alike letter
        # (a Cyrillic i in "sigmoid") is the usual cause.
        where = f"the key {key!r}" if non_ascii_character(key) else repr(value)
        fixed = ascii_lookalike(line)
        return ConfigError(
            key,
            f"{where} contains the non-ASCII character {odd}.",
            f"Type it in ASCII: {_shell(fixed)}"
            if fixed.isascii()
            else "Type it in ASCII.",
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if reason.startswith("LexerNoViableAltException") or not reason:
        reason = "a character is not allowed there"
    return ConfigError(
        key if equals else line,
        f"cannot parse the override {line!r}: {reason}.",
        "Write key=value, and quote a value with spaces, commas or brackets, "
        "inside the shell's quotes: \"key='a, b'\".",
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
            option = _value_text(override, line)
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
        key = _override_key(override)
        for option in _override_values(override):
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


def _check_task_groups(parsed: Sequence[Any]) -> None:
    """A group that only some tasks declare (``data``, ``optimizer``: task=train) is
    set only with one of them; Hydra would say that it found no match in the
    defaults list, or that the key is not in the config."""
    tasks: list[str] = ["forward"]
    for override in parsed:
        if override.key_or_group == "task" and not override.is_delete():
            tasks = [str(value) for value in _override_values(override) if value]
    for override in parsed:
        name = str(override.key_or_group).split(".")[0].split("/")[0]
        if override.package is not None or name == "task":
            continue
        group = _group_of(name) if name in groups else None
        if group is None or not group.per_task:
            continue
        readers = _tasks_reading(name, tasks)
        if not readers or set(tasks) & set(readers):
            continue
        needed = " or ".join(f"task={task}" for task in readers)
        raise ConfigError(
            _override_key(override),
            f"{name} is read by {needed} only, and the task is "
            f"{' or '.join(tasks) if tasks else 'forward'}.",
            f"Add {needed}, e.g. python scripts/run.py {needed} {override.input_line}",
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
    if "." in name or "/" in name or name in _primary_keys():
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
    return _hydra_group_options(group)


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
        _override_key(override), "config group", group, {*groups.names(), *extra}
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
    valid = set(_hydra_group_options(group))
    for root in config_dirs:
        valid.update(_options_in(Path(root), group))
    if option not in valid:
        kind = group.rpartition("/")[2]
        raise UnknownNameError(_override_key(override), kind, option, valid)


def _check_yaml_files(
    group: str, option: str, key: str, config_dirs: list[Path], seen: set[Path]
) -> None:
    """A user's option file must be valid YAML, and each entry of its defaults list
    must name an existing option; Hydra would report the first with a traceback and
    the second with its whole search path. The files those entries name are checked
    the same way.

    Only files in ``config_dirs`` are read: the bundled ones are tested.
    """
    path = _user_option_file(group, option, config_dirs)
    if path is None or path in seen:
        return
    seen.add(path)
    defaults = _load_yaml(path, key).get("defaults")
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


def _user_option_file(group: str, option: str, config_dirs: list[Path]) -> Path | None:
    """The file Hydra would load for ``group=option``, if it is a user's."""
    if option in _bundled_options(group):
        return None  # the bundled config comes first in Hydra's search path
    for root in config_dirs:
        path = Path(root) / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def _load_yaml(path: Path, key: str) -> dict[str, Any]:
    """The mapping in a YAML file, loaded as Hydra loads it (OmegaConf)."""
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        loaded = OmegaConf.load(path)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        near = ""
        if error.context and error.context_mark is not None:
            near = f" ({error.context} at line {error.context_mark.line + 1})"
        raise ConfigError(
            key,
            f"{path}{where}: not valid YAML: {error.problem}.",
            f"Fix the file there{near}.",
        ) from None
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(
            key, f"{path}: cannot be loaded: {first}", "Fix the file."
        ) from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(
            key, f"{path} does not hold a mapping.", "Write key: value pairs."
        )
    container = OmegaConf.to_container(loaded, resolve=False)
    assert isinstance(container, dict)
    return {str(name): value for name, value in container.items()}


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


def _check_unknown_keys(
    parsed: list[Any], overrides: list[str], config_dirs: list[Path]
) -> DictConfig | None:
    """Overrides of keys and group slots that do not exist, and ``+`` on keys that do.

    A value override (``model.depht=3``) or a deletion (``~model.nope``) of a key that
    the config lacks names the closest existing key (a missing layer: the layers and
    how ``+`` adds one); Hydra would say only that the key "is not in struct" or "does
    not exist". A mapping set with ``=`` may only hold existing keys. An addition
    (``+model.in_features=4``) of a key that has a value says to drop the ``+``. A
    group slot (``init@model.layers.linear9.weight_init``) that no defaults entry
    fills names the closest one, or says that ``+`` adds it to an existing layer.

    Composing costs about 0.1 s, so it happens only when a command line sets, deletes
    or adds a nested key, fills a group slot, or sets a top-level key that the primary
    config lacks (``sede=1``; not a config group of Hydra's or of a ``--config-dir``).

    Returns:
        The config composed without the checked keys, or None if none was composed.
    """
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    searchpath_changed = any(o.key_or_group == "hydra.searchpath" for o in parsed)

    def unknown_top_level(key: str) -> bool:
        return not (
            "/" in key  # a group path such as hydra/launcher
            or key in _primary_keys()
            or key in groups
            or searchpath_changed
            or any((Path(root) / key).is_dir() for root in config_dirs)
        )

    def plain_key(override: Any) -> bool:
        return not (
            override.package is not None
            or override.is_sweep_override()
            or override.key_or_group.startswith("hydra.")
            or override.is_force_add()
        )

    suspects = [
        override
        for override in parsed
        if plain_key(override)
        and not override.is_add()
        and (
            "." in override.key_or_group
            or (not override.is_delete() and unknown_top_level(override.key_or_group))
        )
    ]
    additions = [o for o in parsed if plain_key(o) and o.is_add()]
    listed = _listed_slots(parsed, config_dirs)
    slots = [
        o
        for o in parsed
        if o.package
        and o.key_or_group in groups
        and not (o.is_add() or o.is_delete() or o.is_sweep_override())
        and _override_key(o) not in listed
    ]
    if not (suspects or additions or slots) or searchpath_changed:
        return None
    lines = dict(zip(map(id, parsed), overrides, strict=True))
    checked = {id(o) for o in [*suspects, *additions]}
    rest = [(o, line) for o, line in zip(parsed, overrides, strict=True)]
    rest = [(o, line) for o, line in rest if id(o) not in checked]
    try:
        cfg = _hydra_compose(_for_hydra([o for o, _ in rest], [x for _, x in rest]))
    except (HydraException, OmegaConfBaseException) as error:
        _check_slot_failure(error, slots, rest, lines)
        return None  # another override is wrong; Hydra or our checks report it
    added = [o.key_or_group for o in additions]
    for override in suspects:
        key = override.key_or_group
        if any(key.startswith(f"{prefix}.") for prefix in added):
            continue  # under a key that a + adds
        _check_key_path(cfg, override, lines[id(override)])
    for override in additions:
        if _replaces_slot(override):
            continue  # replaces whatever the slot holds
        key = override.key_or_group
        parent, _, last = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
        # A ??? value counts as absent, as Hydra counts it.
        if not _has_key(node, last) or OmegaConf.is_missing(node, last):
            continue
        if isinstance(override.value(), dict) and _is_mapping(node[last]):
            continue  # Hydra merges a mapping into a mapping under +
        value = override.get_value_element_as_str()
        raise ConfigError(
            key,
            "already has a value; + adds a key that is not there.",
            f"Write {_shell(f'{key}={value}')} to change it.",
        )
    return cfg


#: What each top-level group replaces: the field of a layer, the mlp's own key for
#: all its layers, and the layers it sets, in words.
_GROUP_FIELDS = {
    "init": ("weight_init", "weight_init", "weight init of every dense layer"),
    "activation": (
        "activation",
        "hidden_activation",
        "activation of every dense layer but the last",
    ),
}


def _overridden_settings(
    parsed: list[Any], overrides: list[str], cfg: DictConfig | None
) -> list[str]:
    """A note for each top-level group (``init=zeros``) that replaces a per-layer
    setting given on the same command line
    (``model.layers.linear1.weight_init=orthogonal``), which would otherwise be
    dropped in silence."""
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    groups = {
        str(o.key_or_group): line
        for o, line in zip(parsed, overrides, strict=True)
        if o.key_or_group in _GROUP_FIELDS
        and o.package is None
        and not (o.is_delete() or o.is_sweep_override())
    }
    if not groups:
        return []
    # Per-layer settings as (group, layer or None for the mlp's own key, line).
    settings: list[tuple[str, str | None, str]] = []
    for override, line in zip(parsed, overrides, strict=True):
        if override.is_delete() or override.is_sweep_override():
            continue
        path = str(override.package or override.key_or_group)
        for group in groups:
            field, mlp_key, _ = _GROUP_FIELDS[group]
            layer = re.fullmatch(rf"model\.layers\.(\w+)\.{field}(\..+)?", path)
            if layer:
                settings.append((group, layer.group(1), line))
            elif re.fullmatch(rf"model\.{mlp_key}(\..+)?", path):
                settings.append((group, None, line))
    if not settings:
        return []
    try:
        if cfg is None:
            cfg = _hydra_compose(_for_hydra(parsed, overrides))
        container = OmegaConf.to_container(cfg.model, resolve=True)
        assert isinstance(container, dict)
        model = {str(key): value for key, value in container.items()}
        set_by_init, set_by_activation = layers_set_by_groups(model)
    except (HydraException, OmegaConfBaseException, AnnFactoryError):
        return []  # the overrides are wrong; their error says so
    replaced = {"init": set_by_init, "activation": set_by_activation}
    is_mlp = model.get("type") == "mlp"
    notes = []
    for group, line in groups.items():
        dropped = [
            setting
            for chosen, layer, setting in settings
            if chosen == group
            and (layer in replaced[group] if layer is not None else is_mlp)
        ]
        if dropped:
            verb = "has" if len(dropped) == 1 else "have"
            notes.append(
                f"{line} sets the {_GROUP_FIELDS[group][2]}, so "
                f"{', '.join(dropped)} {verb} no effect."
            )
    return notes


def _listed_slots(parsed: list[Any], config_dirs: list[Path]) -> set[str]:
    """Group slots that the defaults list of the chosen model or task surely has
    (``init@model.layers.linear1.weight_init``), read from its file, so that the
    usual ``group@slot=option`` needs no composition to be checked (0.1 s or more).
    Slots that come from elsewhere are checked by composing."""
    chosen = {group: _primary_default(group) for group in ("model", "task")}
    for override in parsed:
        group = override.key_or_group
        value = override.value() if not override.is_sweep_override() else None
        if group in chosen and override.package is None and not override.is_delete():
            chosen[group] = value if isinstance(value, str) else None
    listed: set[str] = set()
    for group, option in chosen.items():
        if option is None:
            continue
        path = _user_option_file(group, option, config_dirs)
        if path is not None:
            listed.update(_slots_in(group, _load_yaml(path, group).get("defaults")))
        else:
            listed.update(_bundled_slots(group, option))
    return listed


@cache
def _bundled_slots(group: str, option: str) -> frozenset[str]:
    path = conf_dir() / group / f"{option}.yaml"
    if not path.is_file():
        return frozenset()
    data = _bundled_yaml(path)
    return frozenset(_slots_in(group, data.get("defaults")))


@cache
def _bundled_yaml(path: Path) -> Any:
    """The data of a bundled YAML file, read once per process and shared: callers
    only read it. libyaml's loader where PyYAML has it (a tenth of the time of the
    pure Python one, which the checks before every composition would otherwise
    spend on the same few files)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text("utf-8"), Loader=loader)


def _slots_in(group: str, defaults: Any) -> set[str]:
    """The slots (``init@model.layers.linear1.weight_init``) of a defaults list in an
    option file of ``group``: only absolute groups with a plain package, which is
    relative to the file's; Hydra's package keywords (``_global_``, ...) are left to
    Hydra."""
    slots = set()
    for entry in defaults if isinstance(defaults, list) else []:
        if not (isinstance(entry, dict) and len(entry) == 1):
            continue
        target = str(next(iter(entry)))
        if target.startswith("/") and "@" in target:
            slot_group, _, package = target[1:].partition("@")
            if not re.search(r"(^|\.)_\w+_($|\.)", package):
                slots.add(f"{slot_group}@{group}.{package}")
    return slots


@cache
def _primary_default(group: str) -> str | None:
    """The option of ``group`` in the primary config's defaults list."""
    data = _bundled_yaml(conf_dir() / f"{CONFIG_NAME}.yaml")
    for entry in data.get("defaults", []):
        if isinstance(entry, dict) and group in entry:
            option = entry[group]
            return option if isinstance(option, str) else None
    return None


def _hydra_compose(overrides: list[str]) -> DictConfig:
    """Hydra's composition of the bundled config, with Hydra's errors as they are."""
    from hydra import compose as hydra_compose

    with _bundled_hydra():
        cfg: DictConfig = hydra_compose(config_name=CONFIG_NAME, overrides=overrides)
    return cfg


def _has_key(node: Any, key: str) -> bool:
    """``key`` is in the mapping ``node``, a ``???`` value included (which is not
    "in" its node for OmegaConf, yet there to be set)."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(node, DictConfig):
        return False
    return key in node or OmegaConf.is_missing(node, key)


def _is_mapping(node: Any) -> bool:
    from omegaconf import DictConfig

    return isinstance(node, DictConfig)


def _check_key_path(cfg: DictConfig, override: Any, line: str) -> None:
    """Each part of the override's key exists; so does each key of a mapping it sets
    with ``=``, which Hydra merges into what is there."""
    from omegaconf import OmegaConf

    node: Any = cfg
    path: list[str] = []
    for part in override.key_or_group.split("."):
        if not _has_key(node, part):
            raise _unknown_key(cfg, node, path, part, override, line)
        node = OmegaConf.select(node, part, throw_on_missing=False)
        path.append(part)
    value = override.value()
    if override.is_delete() or _replaces_slot(override):
        return
    if isinstance(value, dict) and _is_mapping(node):
        _check_mapping_keys(cfg, node, path, value, override, line)


def _check_mapping_keys(
    cfg: DictConfig,
    node: Any,
    path: list[str],
    value: dict[str, Any],
    override: Any,
    line: str,
) -> None:
    from omegaconf import OmegaConf

    for name, child in value.items():
        name = str(name)
        if not _has_key(node, name):
            group = choice_group(path[-1]) if path else None
            option = node.get("name") if "name" in node else None
            if group is not None and isinstance(option, str):
                group.check_option_keys(option, [name], ".".join(path))
            raise _unknown_key(cfg, node, path, name, override, line)
        inner = OmegaConf.select(node, name, throw_on_missing=False)
        if isinstance(child, dict) and _is_mapping(inner):
            _check_mapping_keys(cfg, inner, [*path, name], child, override, line)


def _unknown_key(
    cfg: DictConfig, node: Any, path: list[str], part: str, override: Any, line: str
) -> ConfigError:
    """The error for a key that the config lacks; for a layer, the layers there are
    and how ``+`` adds one (or, in an mlp, a setting to one)."""
    from omegaconf import DictConfig

    key = ".".join([*path, part])
    where = f" in {'.'.join(path) or 'the config'}"
    if path != ["model", "layers"] or override.is_delete():
        valid = set(node) if isinstance(node, DictConfig) else set()
        if not path:  # the top-level groups are absent while no option is chosen
            valid.update(top_level_groups())
        return UnknownNameError(key, "key", part, valid, where=where)
    names = _mlp_layer_names(cfg)
    if names is not None:
        if part in names:
            return ConfigError(
                key,
                f"mlp layer {part!r} has no settings of its own yet (its layers are "
                "made from depth and width).",
                f"+ adds one: {_shell('+' + line)}",
            )
        number = re.fullmatch(r"hidden(\d+)", part)
        if number and int(number.group(1)) > len(names) - 1:
            depth = int(number.group(1))
            advice = f"with {part}: model.depth={depth} {_shell('+' + line)}"
        else:
            example = closest_name(part, names) or names[0]
            edited = line.replace(f"model.layers.{part}", f"model.layers.{example}", 1)
            advice = f"+ gives one a setting: {_shell('+' + edited.lstrip('+'))}"
        return UnknownNameError(
            key,
            "layer",
            part,
            names,
            where=f" (mlp, depth={len(names) - 1})",
            advice=advice,
        )
    layers_node = node if isinstance(node, DictConfig) else {}
    return UnknownNameError(
        key,
        "layer",
        part,
        list(layers_node),
        advice=f"+ adds one: {_command_adding_layer(cfg, part, override, line)}",
    )


def _mlp_layer_names(cfg: DictConfig) -> list[str] | None:
    """The layers of an mlp model (generated from its depth), or None."""
    from omegaconf import OmegaConf

    if OmegaConf.select(cfg, "model.type", throw_on_missing=False) != "mlp":
        return None
    depth = OmegaConf.select(cfg, "model.depth", throw_on_missing=False)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        return None
    return mlp_layer_names(depth)


def _command_adding_layer(cfg: DictConfig, name: str, override: Any, line: str) -> str:
    """A command line that adds the layer ``name`` with what ``line`` sets."""
    from omegaconf import OmegaConf

    key = override.key_or_group
    if key in ("model.layers", f"model.layers.{name}"):
        return _shell("+" + line.lstrip("+"))  # a whole layer: + merges it in
    parts = [f"+layer@model.layers.{name}=linear"]
    if key != f"model.layers.{name}.out_features":
        # A linear layer's out_features has no default (???).
        sizes = [
            OmegaConf.select(cfg, f"model.layers.{layer}.out_features", default=None)
            for layer in OmegaConf.select(cfg, "model.layers", default={}) or {}
        ]
        size = next((s for s in reversed(sizes) if isinstance(s, int)), 1)
        parts.append(f"model.layers.{name}.out_features={size}")
    parts.append(_shell(line))
    return " ".join(parts)


def _check_slot_failure(
    error: Exception,
    slots: list[Any],
    rest: list[tuple[Any, str]],
    lines: dict[int, str],
) -> None:
    """If Hydra failed on a group slot that no defaults entry fills
    (``init@model.layers.linear9.weight_init=orthogonal``), raise our error: ``+``
    adds the choice to an existing layer; otherwise the closest slot there is."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    found = re.match(r"Could not override '([^']+)'", str(error))
    override = next(
        (o for o in slots if found and o.get_key_element() == found.group(1)), None
    )
    if override is None:
        return
    slot_ids = {id(o) for o in slots}
    base = [line for o, line in rest if id(o) not in slot_ids]
    base_parsed = [o for o, _ in rest if id(o) not in slot_ids]
    base = _for_hydra(base_parsed, base)
    try:
        cfg = _hydra_compose(base)
        with _bundled_hydra():
            loader = GlobalHydra.instance().config_loader()
            defaults = loader.compute_defaults_list(CONFIG_NAME, base, RunMode.RUN)
    except (HydraException, OmegaConfBaseException):
        return
    group = str(override.key_or_group)
    key = _override_key(override)
    line = lines[id(override)]
    layer, _, _ = str(override.package).rpartition(".")
    name = layer.removeprefix("model.layers.")
    layers_node = OmegaConf.select(cfg, "model.layers", default=None)
    existing = list(layers_node) if isinstance(layers_node, DictConfig) else []
    if layer.startswith("model.layers.") and name in [
        *existing,
        *(_mlp_layer_names(cfg) or []),
    ]:
        raise ConfigError(
            key,
            f"no defaults entry chooses the {group} of layer {name!r}, so there is "
            "nothing to override.",
            f"+ adds the choice: {_shell('+' + line)}",
        )
    known = defaults.overrides.known_choices_per_group.get(group, set())
    raise UnknownNameError(key, f"{group} slot", key, sorted(known))


def _quoted(match: re.Match[str]) -> str:
    return _shell(match.group(1))


@cache
def _primary_keys() -> frozenset[str]:
    """Top-level keys and groups of the bundled primary config (``seed``, ``model``,
    ...), annfactory's own groups, and ``hydra``."""
    data = _bundled_yaml(conf_dir() / f"{CONFIG_NAME}.yaml")
    keys = {str(key) for key in data if key != "defaults"}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            keys.update(str(name).split("@")[0] for name in entry)
    return frozenset({*keys, *GROUPS, "hydra"})


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


def rerender(error: Exception, cfg: Any = None) -> ConfigError:
    """An annfactory error with the essence of a Hydra or OmegaConf error.

    Args:
        error: The Hydra or OmegaConf error.
        cfg: The config being resolved, if any: an interpolation error then quotes
            the interpolation as written.
    """
    from omegaconf.errors import (
        GrammarParseError,
        InterpolationResolutionError,
        InterpolationToMissingValueError,
        MissingMandatoryValue,
    )

    key = str(getattr(error, "full_key", "") or "")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [
        line for line in lines if not line.startswith(("full_key:", "object_type="))
    ]
    message = lines[0] if lines else type(error).__name__
    if key and isinstance(error, MissingMandatoryValue):
        return ConfigError(
            key, "has no value (???): it must be given.", f"Set {key}=<value>."
        )
    if key and isinstance(error, InterpolationResolutionError | GrammarParseError):
        written = _raw_value(cfg, key)
        what = f"{written!r}" if isinstance(written, str) else "the interpolation"
        if isinstance(error, InterpolationToMissingValueError):
            message = "it refers to a value that is missing (???)"
        return ConfigError(
            key,
            f"{what} cannot be resolved: {message.rstrip('.')}.",
            "Interpolate an existing config path, e.g. ${model.in_features}, "
            "or give a plain value.",
        )
    # Hydra's hints give overrides as Hydra reads them; a shell needs some quoted.
    hints = [re.sub(r"(?<= use )([+~]\S.*)$", _quoted, line) for line in lines[1:3]]
    hint = " ".join(hints) if hints else None
    if hint and len(hint) > 300:
        hint = hint[:297] + "..."
    return ConfigError(key, message, hint)


#: Hydra's messages about one override that it could not apply to the config.
_COULD_NOT_OVERRIDE = re.compile(r"^Could not override '(?P<key>[^']+)'")
_NOTHING_TO_DELETE = re.compile(
    r"^Could not delete from config\. '(?P<key>[^']+)' does"
)
_OTHER_VALUE = re.compile(
    r"^Could not delete from config\. The value of '(?P<key>[^']+)' is "
    r"(?P<actual>.*) and not (?P<given>.*)\.$",
    re.S,
)
_ALREADY_THERE = re.compile(
    r"^Could not append to config\. An item is already at "
    r"'(?P<key>[^']+)'"
)
_NOT_VALID = re.compile(r"is not a valid (?P<type>\w+)")


def rerender_composition(
    error: Exception,
    overrides: Sequence[str],
    compose_with: Callable[[list[str]], DictConfig] | None = None,
) -> ConfigError:
    """Our message for an error Hydra raised composing ``overrides``: that of
    :func:`override_error`, else :func:`rerender`'s."""
    translated = override_error(error, overrides, compose_with)
    return rerender(error) if translated is None else translated


def override_error(
    error: Exception,
    overrides: Sequence[str],
    compose_with: Callable[[list[str]], DictConfig] | None = None,
) -> ConfigError | None:
    """Our message for an error Hydra raised composing ``overrides`` about one of
    them; None for any other error.

    Hydra's own about one override (a key that does not exist, set without ``+``: "Key
    'fc1' is not in struct"; ``~`` of a missing key; ``+`` of a key that has a value;
    a value of the wrong type) name the key, the value, the closest valid key and, where
    a ``+`` adds what the override meant (an open mapping such as
    ``hydra.job.env_set``, a layer key that the model file leaves out), the ``+``
    form.

    Args:
        error: What Hydra raised.
        overrides: The overrides as Hydra received them.
        compose_with: Composes the same config with other overrides; used to list the
            keys there are (without the failing override). None: no keys listed.
    """
    from hydra.errors import ConfigCompositionException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    if not isinstance(error, ConfigCompositionException):
        return None
    message, cause = str(error), error.__cause__
    missing = _COULD_NOT_OVERRIDE.match(message)
    if missing and isinstance(cause, ConfigAttributeError | ConfigKeyError):
        return _missing_key(missing["key"], overrides, compose_with)
    missing = _NOTHING_TO_DELETE.match(message)
    if missing:
        return _missing_key(missing["key"], overrides, compose_with)
    other = _OTHER_VALUE.match(message)
    if other:
        key = other["key"]
        return ConfigError(
            key,
            f"~{key}={other['given']} deletes it only where its value is "
            f"{other['given']}; it is {other['actual']}.",
            f"Write {_shell('~' + key)} to delete it whatever its value.",
        )
    there = _ALREADY_THERE.match(message)
    if there:
        key = there["key"]
        found = _find_override(key, overrides)
        value = _value_text(*found) if found else "<value>"
        return ConfigError(
            key,
            "already has a value; + adds a key that is not there.",
            f"Write {_shell(f'{key}={value}')} to change it.",
        )
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        return _invalid_value(cause)
    return None


def _find_override(key: str, overrides: Sequence[str]) -> tuple[Any, str] | None:
    """The last override of ``key`` (parsed) and its line, or None."""
    found = None
    for line in overrides:
        try:
            (override,) = _parse_overrides([line])
        except AnnFactoryError:
            continue
        if override.key_or_group == key:
            found = (override, line)
    return found


def _missing_key(
    key: str,
    overrides: Sequence[str],
    compose_with: Callable[[list[str]], DictConfig] | None,
) -> ConfigError | None:
    """The error for an override of a key that the composed config lacks, from the
    config composed without it; None where that cannot be worked out."""
    from hydra.errors import HydraException
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    found = _find_override(key, overrides)
    if found is None or compose_with is None:
        return None
    override, line = found
    rest = [other for other in overrides if other != line]
    try:
        cfg = compose_with(rest)
    except (HydraException, OmegaConfBaseException):
        return None  # another override is wrong too: Hydra's message
    node: Any = cfg
    path: list[str] = []
    for part in key.split("."):
        if not _has_key(node, part):
            break
        node = OmegaConf.select(node, part, throw_on_missing=False)
        path.append(part)
    else:
        return None
    part = key.split(".")[len(path)]
    adding = None if override.is_delete() else f"+ adds it: {_shell('+' + line)}"
    layer_keys = _layer_keys_of(node) if path[:2] == ["model", "layers"] else []
    if len(path) == 3 and layer_keys:
        if adding and part in layer_keys:
            return ConfigError(
                ".".join([*path, part]),
                f"layer {path[2]!r} has no {part!r} in its config, so {line} has "
                "nothing to set.",
                adding,
            )
        # The keys its type takes, not only those its file happens to set.
        return UnknownNameError(
            ".".join([*path, part]),
            "layer key",
            part,
            layer_keys,
            where=f" for layer type {node.get('type')!r}",
        )
    if path[:1] == ["model"]:
        return _unknown_key(cfg, node, path, part, override, line)
    where = f" in {'.'.join(path) or 'the config'}"
    valid = list(node) if isinstance(node, DictConfig) else []
    # An open mapping (hydra.job.env_set, a logging config) takes new keys with +; a
    # schema's node (hydra.job, a launcher's settings) takes only its own.
    open_mapping = isinstance(node, DictConfig) and OmegaConf.get_type(node) is dict
    return UnknownNameError(
        ".".join([*path, part]),
        "key",
        part,
        valid,
        where=where,
        advice=adding if open_mapping and adding else "",
    )


def _layer_keys_of(node: Any) -> list[str]:
    """The keys that a layer node may hold, from its type's schema (none if the type
    is not a registered one)."""
    from annfactory.layers import layers

    type_name = node.get("type") if hasattr(node, "get") else None
    if not isinstance(type_name, str) or type_name not in layers:
        return []
    keys = groups.get("layer").option_keys(layers.get(type_name))
    return list(keys.allowed)


def _invalid_value(cause: Exception) -> ConfigError:
    """A value that a typed node (Hydra's own config, a plugin's schema) refuses."""
    key = str(getattr(cause, "full_key", ""))
    first = str(cause).strip().splitlines()[0].rstrip(".")
    expected = _NOT_VALID.search(first)
    root = "hydra" if key.startswith("hydra") else "job"
    if expected:
        shown = f"--cfg {root} --package {key.rpartition('.')[0] or key}"
        hint = f"Give a {expected['type']}; {shown} shows the values there."
    else:  # a mapping of settings given one value
        shown = f"--cfg {root} --package {key}"
        hint = f"Set one of its keys, e.g. {key}.<key>=<value>; {shown} lists them."
    return ConfigError(key, f"{first}.", hint)


def _raw_value(cfg: Any, key: str) -> Any:
    """The value at ``key`` as written (interpolations unresolved), or None."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return None
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


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
