"""Writing run outputs safely, and quickly."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["to_yaml", "write_atomic"]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one,
    never a half-written one (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def to_yaml(data: Any) -> str:
    """The YAML text of ``data`` (an OmegaConf config or plain lists and mappings) as
    ``OmegaConf.to_yaml`` writes it, emitted by libyaml.

    Every run writes its config and Hydra's (``.hydra/*.yaml``) and its ``spec.yaml``.
    OmegaConf's pure Python emitter takes about five times as long, a large part of a
    sweep job's own cost. The representer is OmegaConf's (strings that would read back
    as a bool or a number are quoted), so the data read back is the same; libyaml
    only folds long quoted strings at other points (``tests/test_files.py``).
    Without libyaml, OmegaConf's own emitter.
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


@cache
def _dumper() -> Any:
    """libyaml's dumper with OmegaConf's representer for strings (OmegaConf's own
    dumper without libyaml)."""
    import yaml
    from omegaconf._utils import get_omega_conf_dumper

    omegaconf_dumper = get_omega_conf_dumper()
    if not hasattr(yaml, "CSafeDumper"):
        return omegaconf_dumper

    class _Dumper(yaml.CSafeDumper):  # type: ignore[misc]
        pass

    _Dumper.add_representer(str, omegaconf_dumper.str_representer)
    return _Dumper
