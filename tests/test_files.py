"""Run files: ``to_yaml`` writes what ``OmegaConf.to_yaml`` writes, faster."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hydra import compose
from omegaconf import OmegaConf

from annfactory.config import bundled_hydra
from annfactory.files import to_yaml

RUNS = [
    ["model=demo"],
    ["model=mlp", "init=normal", "init.std=0.02", "activation=tanh"],
    ["task=train", "data=iris", "optimizer=sgd", "optimizer.lr=1e-3"],
    ["task=diagnose", "hydra.job.chdir=true"],
]


def hydra_config(overrides: list[str]) -> Any:
    with bundled_hydra():
        return compose("config", overrides, return_hydra_config=True)


@pytest.mark.parametrize("overrides", RUNS, ids=[" ".join(r) for r in RUNS])
def test_a_run_config_reads_back_as_omegaconf_writes_it(overrides: list[str]) -> None:
    cfg = hydra_config(overrides)
    job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
    hydra_node = OmegaConf.to_container(cfg.hydra, enum_to_str=True)
    for data, theirs in [
        (job, OmegaConf.to_yaml(job)),
        ({"hydra": hydra_node}, OmegaConf.to_yaml({"hydra": cfg.hydra})),
        (list(cfg.hydra.overrides.task), OmegaConf.to_yaml(cfg.hydra.overrides.task)),
    ]:
        ours = to_yaml(data)
        assert yaml.safe_load(ours) == yaml.safe_load(theirs)
        assert OmegaConf.to_container(OmegaConf.create(ours)) == OmegaConf.to_container(
            OmegaConf.create(theirs)
        )
    # Short strings only (no folding): the very same text.
    assert to_yaml(job) == OmegaConf.to_yaml(job)


TRICKY = {
    "bool-like": ["true", "no", "off", "Yes", "~", "null"],
    "numbers": ["1", "1e3", "1_000", ".5", "0x1f", "inf", "-.inf", "nan", "1:30"],
    "yaml syntax": ["a: b", "- x", "#c", "{x}", "[1]", "'q'", '"d"', "&a", "*b", "!t"],
    "space and lines": [" lead", "trail ", "two\nlines", "tab\tin", ""],
    "unicode": ["é", "日本", "emoji 🙂"],
    "interpolation": ["${seed}", "${oc.env:HOME}", "\\${escaped}"],
    "values": [None, True, 0, -3, 2.5, 1e-12, [1, [2, {"k": "v"}]], {"n": {}}],
}


@pytest.mark.parametrize("values", TRICKY.values(), ids=TRICKY.keys())
def test_odd_values_read_back_as_written(values: list[Any]) -> None:
    data = {f"k{index}": value for index, value in enumerate(values)}
    cfg = OmegaConf.create(data)
    ours = to_yaml(cfg)
    if not any(ord(c) > 0xFFFF for value in values for c in str(value)):
        assert ours == OmegaConf.to_yaml(cfg)
    # libyaml writes characters beyond the BMP as escapes: the same data.
    assert OmegaConf.to_container(OmegaConf.create(ours)) == OmegaConf.to_container(cfg)


def test_a_tuple_is_a_list_not_a_python_tag() -> None:
    # yaml.Dumper would tag a tuple !!python/tuple; the safe dumper writes a list.
    assert to_yaml({"shape": (1, 2)}) == "shape:\n- 1\n- 2\n"


SPECS = [
    ["model=demo"],
    ["model=mlp", "init=trunc_normal", "activation=leaky_relu", "dtype=float64"],
    ["model=mlp", "model.depth=0", "device=meta"],
    ["task=train", "model=mlp", "data=iris"],
]


@pytest.mark.parametrize("overrides", SPECS, ids=[" ".join(s) for s in SPECS])
def test_spec_yaml_is_the_text_omegaconf_writes(
    overrides: list[str], tmp_path: Any
) -> None:
    import annfactory
    from annfactory.config import to_spec
    from annfactory.runs import FORMAT_KEY, FORMAT_VERSION, SPEC_FILE, save_run

    spec = to_spec(annfactory.compose(overrides))
    model = annfactory.build_network(spec)
    save_run(tmp_path, spec, model)
    data = {FORMAT_KEY: FORMAT_VERSION, **spec.to_dict()}
    text = (tmp_path / SPEC_FILE).read_text()
    assert text == OmegaConf.to_yaml(OmegaConf.create(data))


STRINGS = ["null", "1e3", "yes", "", "a: b", "two\nlines", "é", "日本", "Off", "~"]


@pytest.mark.parametrize("dumper", ["CSafeDumper", "SafeDumper"])
def test_strings_are_written_as_omegaconf_writes_them(dumper: str) -> None:
    # The representer is PyYAML's public API with OmegaConf's rule: quote what would
    # read back as a bool or a number; libyaml's and the pure Python dumper agree.
    from annfactory.files import _dumper_over

    base = getattr(yaml, dumper, None)
    if base is None:
        pytest.skip(f"this PyYAML has no {dumper}")
    data = {f"k{index}": value for index, value in enumerate(STRINGS)}
    ours = yaml.dump(
        data,
        Dumper=_dumper_over(base),
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=False,
    )
    assert ours == OmegaConf.to_yaml(OmegaConf.create(data))
    assert "k0: 'null'\nk1: '1e3'\nk2: 'yes'\nk3: ''\nk4: 'a: b'\n" in ours
    assert yaml.safe_load(ours) == data
