"""Where the config comes from: the bundled config directory, the options of its
groups (and of a ``--config-dir``), the files read to check overrides, and Hydra
initialized with the bundled config for one composition."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annfactory.errors import (
    ConfigError,
)
from annfactory.groups import (
    groups,
)

if TYPE_CHECKING:
    from omegaconf import DictConfig


CONFIG_NAME = "config"


#: annfactory's own config groups (others, like hydra/launcher, are Hydra's); a
#: plugin's groups join :data:`annfactory.groups.groups` when it loads.
GROUPS = tuple(groups.names())


def conf_dir() -> Path:
    """The bundled config directory, ``annfactory/conf`` (``conf/`` in a checkout links
    to it). Other Hydra apps reach it as ``pkg://annfactory.conf``."""
    return Path(__file__).resolve().parent.parent / "conf"


@cache
def _bundled_options(group: str) -> tuple[str, ...]:
    return options_in(conf_dir(), group)


def options_in(root: Path, group: str) -> tuple[str, ...]:
    folder = root / group
    if not folder.is_dir():
        return ()
    return tuple(sorted(path.stem for path in folder.glob("*.yaml")))


def group_options(group: str, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """The options of a config group: the bundled ones and those in ``extra_dirs``."""
    options = set(_bundled_options(group))
    for root in extra_dirs:
        options.update(options_in(Path(root), group))
    return sorted(options)


@contextmanager
def bundled_hydra() -> Iterator[None]:
    """Hydra initialized with the bundled config dir, for the ``with`` block.

    Hydra's global state is set aside (a running app or notebook may hold one) and
    put back as it was afterwards, through ``GlobalHydra``'s public methods: the
    app's ``Hydra`` object is kept, Hydra cleared for the block, and the same object
    initialized again after it.
    """
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    state = GlobalHydra.instance()
    saved = state.hydra if state.is_initialized() else None
    state.clear()
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir()), job_name="annfactory", version_base="1.3"
        ):
            yield
    finally:
        # initialize_config_dir puts back a copy of the cleared state: ask again.
        GlobalHydra.instance().clear()
        if saved is not None:
            GlobalHydra.instance().initialize(saved)


@cache
def hydra_group_options(group: str) -> tuple[str, ...]:
    """The options of one of Hydra's own groups (``hydra/launcher``), with those of
    installed plugins and the bundled config."""
    from hydra.core.global_hydra import GlobalHydra

    with bundled_hydra():
        loader = GlobalHydra.instance().config_loader()
        return tuple(loader.get_group_options(group))


def user_option_file(group: str, option: str, config_dirs: list[Path]) -> Path | None:
    """The file Hydra would load for ``group=option``, if it is a user's."""
    if option in _bundled_options(group):
        return None  # the bundled config comes first in Hydra's search path
    for root in config_dirs:
        path = Path(root) / group / f"{option}.yaml"
        if path.is_file():
            return path
    return None


def load_yaml(path: Path, key: str) -> dict[str, Any]:
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


@cache
def bundled_yaml(path: Path) -> Any:
    """The data of a bundled YAML file, read once per process and shared: callers
    only read it. libyaml's loader where PyYAML has it (a tenth of the time of the
    pure Python one, which the checks before every composition would otherwise
    spend on the same few files)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text("utf-8"), Loader=loader)


@cache
def primary_default(group: str) -> str | None:
    """The option of ``group`` in the primary config's defaults list."""
    data = bundled_yaml(conf_dir() / f"{CONFIG_NAME}.yaml")
    for entry in data.get("defaults", []):
        if isinstance(entry, dict) and group in entry:
            option = entry[group]
            return option if isinstance(option, str) else None
    return None


def compose_bundled(overrides: list[str]) -> DictConfig:
    """Hydra's composition of the bundled config, with Hydra's errors as they are."""
    from hydra import compose as hydra_compose

    with bundled_hydra():
        cfg: DictConfig = hydra_compose(config_name=CONFIG_NAME, overrides=overrides)
    return cfg


@cache
def primary_keys() -> frozenset[str]:
    """Top-level keys and groups of the bundled primary config (``seed``, ``model``,
    ...), annfactory's own groups, and ``hydra``."""
    data = bundled_yaml(conf_dir() / f"{CONFIG_NAME}.yaml")
    keys = {str(key) for key in data if key != "defaults"}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            keys.update(str(name).split("@")[0] for name in entry)
    return frozenset({*keys, *GROUPS, "hydra"})
