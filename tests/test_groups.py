"""The top level of a run, declared once in ``annfactory.groups``: the keys the spec
accepts and writes, and what the override check knows, come from there."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import annfactory
from annfactory import ConfigError, Param, Registry, UnknownNameError
from annfactory.activations import activations
from annfactory.config import check_overrides, conf_dir
from annfactory.data import datasets
from annfactory.groups import (
    CHOICE_SLOTS,
    KEYS,
    ConfigGroup,
    groups,
    layer_slots,
    run_keys,
    top_level_groups,
)
from annfactory.inits import inits
from annfactory.optimizers import optimizers
from annfactory.params import validate_params
from annfactory.spec import RunSpec, parse_run
from annfactory.tasks import TaskContext, run_named_task, tasks

DEMO = annfactory.to_spec(annfactory.compose(["model=demo"])).to_dict()["model"]


def test_the_run_keys_are_the_primary_config_s_keys() -> None:
    cfg = annfactory.compose(["init=normal", "activation=relu"])
    for_every_task = [
        name for name in run_keys() if name in KEYS or not groups.get(name).per_task
    ]
    assert set(cfg) == set(for_every_task)
    assert top_level_groups() == [
        "activation", "data", "init", "model", "optimizer", "task"
    ]  # fmt: skip
    # data and optimizer come with task=train (its option file declares them).
    per_task = [name for name, group in groups.items() if group.per_task]
    assert list(tasks.get("train").groups) == per_task
    train = annfactory.compose(["task=train", "data=iris", "init=normal",
                                "activation=relu"])  # fmt: skip
    assert set(train) == set(run_keys())
    assert run_keys()[-len(KEYS) :] == (
        "seed",
        "batch_size",
        "device",
        "dtype",
        "compile",
    )


def test_the_primary_config_holds_each_key_s_default() -> None:
    primary = yaml.safe_load((conf_dir() / "config.yaml").read_text())
    assert {name: primary[name] for name in KEYS} == {
        name: param.default for name, param in KEYS.items()
    }


def test_the_spec_has_a_field_for_each_key_and_writes_them_in_order() -> None:
    fields = [field.name for field in dataclasses.fields(RunSpec)]
    assert fields == ["network", *KEYS, "extras", "notes"]
    spec = parse_run({"model": DEMO, "seed": 3})
    assert list(spec.to_dict()) == ["model", *KEYS]
    assert spec.extras == {}


def test_an_unknown_top_level_key_lists_the_run_keys() -> None:
    with pytest.raises(
        UnknownNameError,
        match=r"^sede: unknown top-level key 'sede'\. Did you mean 'seed'\?\n"
        r"  Valid top-level keys: activation, batch_size, compile, data, device, "
        r"dtype, init, model, optimizer, seed, task\.$",
    ):
        parse_run({"model": DEMO, "sede": 1})
    # A group that only fills slots is no top-level key.
    with pytest.raises(UnknownNameError, match=r"^layer: unknown top-level key"):
        parse_run({"model": DEMO, "layer": "linear"})
    assert parse_run({"model": DEMO, "sede": 1}, strict=False).seed == 0


def test_the_slots_that_name_an_entry_come_from_the_groups() -> None:
    assert dict(CHOICE_SLOTS) == {
        "init": inits,
        "weight_init": inits,
        "bias_init": inits,
        "activation": activations,
        "hidden_activation": activations,
        "output_activation": activations,
        "data": datasets,
        "optimizer": optimizers,
    }
    assert set(layer_slots()) == set(CHOICE_SLOTS) - {"init", "data", "optimizer"}


# ------------------------------------------------------------------------------------
# A group of one's own, as a plugin registers it
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    params: Mapping[str, Param]


def parse_noise(node: Any, key: str) -> dict[str, Any]:
    """A name, or a mapping with ``name`` and the noise's parameters."""
    node = {"name": node} if isinstance(node, str) else node
    if not isinstance(node, Mapping):
        raise ConfigError(key, f"{node!r} is not a noise.", "Name one.")
    name = node.get("name")
    entry = noises.get(name, key=f"{key}.name")
    given = {k: v for k, v in node.items() if k != "name"}
    return {
        "name": name,
        **validate_params(given, entry.params, key, f"noise {name!r}"),
    }


noises: Registry[Noise] = Registry("noise")
noises.register("gaussian", Noise({"std": Param(float, 0.1, "spread", low=0)}))


@pytest.fixture
def noise_group(tmp_path: Path) -> Path:
    """The ``noise`` group registered, and a config dir with its option files."""
    groups.register(
        "noise",
        ConfigGroup(doc="input noise", registry=noises, parse=parse_noise, choice=True),
    )
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "gaussian.yaml").write_text("name: gaussian\nstd: 0.1\n")
    return tmp_path


@pytest.mark.usefixtures("noise_group")
def test_a_group_s_value_lands_in_the_spec_s_extras_and_round_trips() -> None:
    spec = parse_run({"model": DEMO, "noise": {"name": "gaussian", "std": 0.5}})
    assert spec.extras == {"noise": {"name": "gaussian", "std": 0.5}}
    assert "noise" in run_keys()
    data = spec.to_dict()
    assert data["noise"] == {"name": "gaussian", "std": 0.5}
    assert parse_run(data) == spec
    assert parse_run({"model": DEMO, "noise": "gaussian"}).extras["noise"]["std"] == 0.1
    with pytest.raises(ConfigError, match=r"^noise\.std: -1\.0 is out of range"):
        parse_run({"model": DEMO, "noise": {"name": "gaussian", "std": -1}})


@pytest.mark.usefixtures("noise_group")
def test_a_task_reads_a_group_s_value_from_the_spec() -> None:
    seen: list[Any] = []

    @tasks.register("noisy")
    def run(context: TaskContext) -> dict[str, Any]:
        seen.append(context.spec.extras["noise"])
        return {"std": context.spec.extras["noise"]["std"]}

    spec = parse_run({"model": DEMO, "noise": {"name": "gaussian", "std": 0.2}})
    assert run_named_task({"name": "noisy"}, spec, None) == {
        "task": "noisy",
        "std": 0.2,
    }


def test_the_override_check_reads_a_group_s_options_and_their_keys(
    noise_group: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_composing(overrides: list[str]) -> None:
        raise AssertionError(f"composed {overrides}")

    monkeypatch.setattr("annfactory.config.precheck_keys.compose_bundled", no_composing)
    with pytest.raises(
        UnknownNameError,
        match=r"^noise\.sdt: unknown parameter 'sdt' for noise 'gaussian'\. "
        r"Did you mean 'std'\?\n  Valid parameters: std\.$",
    ):
        check_overrides(["+noise=gaussian", "noise.sdt=1"], [noise_group])
    with pytest.raises(
        UnknownNameError,
        match=r"^noise: unknown noise 'gausian'\. Did you mean 'gaussian'\?",
    ):
        check_overrides(["+noise=gausian"], [noise_group])
    with pytest.raises(
        ConfigError,
        match=r"^noise\._target_: configs name registered entries.*\n"
        r"  Use noise\.name with one of: gaussian\.$",
    ):
        parse_run({"model": DEMO, "noise": {"_target_": "os.system"}})


def test_task_options_are_checked_before_composing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_composing(overrides: list[str]) -> None:
        raise AssertionError(f"composed {overrides}")

    monkeypatch.setattr("annfactory.config.precheck_keys.compose_bundled", no_composing)
    with pytest.raises(
        UnknownNameError,
        match=r"^task\.los: unknown key 'los' for task 'diagnose'\. "
        r"Did you mean 'loss'\?\n"
        r"  Valid keys: batch_size, exploding_above, loss, vanishing_below\.$",
    ):
        check_overrides(["task=diagnose", "task.los=ce"])
    with pytest.raises(
        UnknownNameError, match=r"^task\.nmes: unknown key 'nmes' for task "
    ):
        check_overrides(["task=activations", "task.nmes=[relu]"])
    with pytest.raises(UnknownNameError, match=r"^task\.binz: .*Did you mean 'bins'"):
        check_overrides(["task=init_report", "task.binz=3"])
