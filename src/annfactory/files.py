"""Writing run outputs safely, and quickly."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Final

__all__ = ["to_yaml", "write_atomic"]


def write_atomic(path: Path, data: str | bytes, *, sync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` so that readers see the old file
    or the new one, never a half-written one (a temporary file beside it, then a
    rename). ``sync``: flushed to the disk before the rename, so that the new file
    is whole even after the machine goes down (a checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    content = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as file:
            file.write(content)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def to_yaml(data: Any) -> str:
    """The YAML text of ``data`` (an OmegaConf config or plain lists and mappings) as
    ``OmegaConf.to_yaml`` writes it, emitted by libyaml.

    Every run writes its config and Hydra's (``.hydra/*.yaml``) and its ``spec.yaml``.
    OmegaConf's pure Python emitter takes about five times as long, a large part of a
    sweep job's own cost. Strings are represented by OmegaConf's rule (those that
    would read back as a bool or a number are quoted), so the data read back is the
    same; libyaml only folds long quoted strings at other points
    (``tests/test_files.py``). Without libyaml, PyYAML's pure Python safe dumper.
    """
    import yaml
    from omegaconf import OmegaConf

    if OmegaConf.is_config(data):
        data = OmegaConf.to_container(data, resolve=False, enum_to_str=True)
    text: str = yaml.dump(
        data,
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=False,
        Dumper=_dumper(),
    )
    return text


#: The words YAML 1.1 reads as a bool (PyYAML's resolver, and so OmegaConf's).
_YAML_BOOLS: Final = frozenset(
    word
    for base in ("y", "yes", "n", "no", "true", "false", "on", "off")
    for word in (base, base.capitalize(), base.upper())
)


def _reads_as_other_type(text: str) -> bool:
    """Whether ``text``, written plainly, would read back as a bool or a number:
    OmegaConf quotes those (``"yes"``, ``"1e3"``, ``"1_000"``, ``"nan"``)."""
    if text in _YAML_BOOLS:
        return True
    for number in (int, float):
        try:
            number(text)
        except ValueError:
            continue
        return True
    return False


def _represent_str(dumper: Any, text: str) -> Any:
    """A string as OmegaConf writes it: single-quoted where it would read back as a
    bool or a number, else in the style PyYAML chooses (which quotes what YAML would
    read as null or syntax, and writes multi-line strings so they read back)."""
    return dumper.represent_scalar(
        "tag:yaml.org,2002:str",
        text,
        style="'" if _reads_as_other_type(text) else None,
    )


@cache
def _dumper() -> Any:
    """PyYAML's safe dumper (libyaml's where PyYAML has it) with OmegaConf's rule for
    strings."""
    import yaml

    return _dumper_over(getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def _dumper_over(base: type) -> Any:
    """A subclass of the PyYAML dumper ``base`` with OmegaConf's rule for strings."""

    class _Dumper(base):  # type: ignore[misc]
        pass

    _Dumper.add_representer(str, _represent_str)
    return _Dumper
