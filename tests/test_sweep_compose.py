"""Each job of a sweep is composed once (``annfactory.sweep.ComposeOnce``): through
Hydra's public ``ConfigLoader.load_sweep_config``, up front by the sweeper, and the
launcher is handed that same config. Pinned here against Hydra's own composition:
config, ``hydra`` node, flags and errors."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from annfactory.config import CONFIG_NAME, bundled_hydra
from annfactory.sweep import ComposeOnce
from loaders import Counting


@pytest.fixture(scope="module")
def hydra_app() -> Iterator[Any]:
    with bundled_hydra():
        yield GlobalHydra.instance().hydra


def master(hydra: Any, hydra_overrides: list[str] = ()) -> DictConfig:  # type: ignore[assignment]
    """The sweep's config, as Hydra composes it before the sweeper runs."""
    cfg: DictConfig = hydra.compose_config(
        config_name=CONFIG_NAME,
        overrides=["hydra.mode=MULTIRUN", *hydra_overrides],
        run_mode=RunMode.MULTIRUN,
        with_log_configuration=False,
    )
    return cfg


def described(cfg: DictConfig) -> tuple[Any, ...]:
    """Everything a job sees of its config: the text (``hydra`` node included), the
    flags, the node types, and the recorded overrides."""
    return (
        OmegaConf.to_yaml(cfg),
        OmegaConf.is_struct(cfg),
        OmegaConf.is_readonly(cfg),
        OmegaConf.is_readonly(cfg.hydra),
        OmegaConf.get_type(cfg, "hydra"),
        list(cfg.hydra.overrides.task),
        list(cfg.hydra.overrides.hydra),
        cfg.hydra.job.override_dirname,
    )


#: Sweeps of the kinds of overrides a job has: per job, its overrides.
SWEEPS = {
    "values only": [["seed=0"], ["seed=1"], ["seed=2", "batch_size=3"]],
    "group choices and values": [
        ["model=mlp", "model.width=7", "init=normal", "init.std=0.2"],
        ["model=mlp", "model.width=9", "init=normal", "init.std=0.3"],
        ["model=mlp", "model.width=9", "init=xavier_uniform"],
    ],
    "values before choices": [["seed=1", "model=mlp"], ["seed=2", "model=mlp"]],
    "a key set twice": [["seed=1", "seed=2"], ["seed=3", "seed=1"]],
    "a mapping value": [
        ["model.layers.linear1={out_features: 4}"],
        ["model.layers.linear1={out_features: 5}", "seed=1"],
    ],
    "null, lists and interpolations": [
        ["model=mlp", "model.in_features=null", "batch_size=${seed}"],
        ["model=mlp", "model.in_features=4", "+tags=[a,b]"],
    ],
    "adds and deletes": [["+extra=1", "++seed=5"], ["++fresh.key=x", "~compile"]],
    "package choices": [
        ["init@model.layers.linear1.weight_init=orthogonal", "seed=2"],
        ["init@model.layers.linear1.weight_init=orthogonal", "seed=3"],
    ],
    "another task": [
        ["task=train", "data=iris", "task.epochs=2"],
        ["task=train", "data=iris", "task.epochs=3", "optimizer.lr=0.1"],
    ],
    "repeated jobs": [["seed=1"], ["seed=1"], ["seed=1"]],
    "quoted and odd strings": [
        ["device='cpu'", "dtype=float64"],
        ["device=cpu", "dtype='float32'", "+note='a b: c'"],
    ],
}

#: Hydra overrides of the sweep (on the command line, outside the jobs).
MASTERS = {
    "plain": [],
    "with hydra overrides": [
        "hydra.sweep.dir=elsewhere",
        "hydra/launcher=basic",
        "hydra.job.chdir=false",
        "hydra.job.config.override_dirname.exclude_keys=[seed]",
    ],
}


@pytest.mark.parametrize("hydra_overrides", MASTERS.values(), ids=MASTERS.keys())
@pytest.mark.parametrize("jobs", SWEEPS.values(), ids=SWEEPS.keys())
def test_each_job_is_hydras_composition_made_once(
    hydra_app: Any, jobs: list[list[str]], hydra_overrides: list[str]
) -> None:
    sweep = master(hydra_app, hydra_overrides)
    counting = Counting(hydra_app.config_loader)
    loader = ComposeOnce(counting)
    ours = [loader.compose(sweep, overrides) for overrides in jobs]
    # What a launcher then asks for, job after job: the same configs.
    launched = [loader.load_sweep_config(sweep, overrides) for overrides in jobs]
    assert [id(cfg) for cfg in launched] == [id(cfg) for cfg in ours]
    assert counting.calls == jobs  # one composition per job, none doubled
    hydras = [hydra_app.config_loader.load_sweep_config(sweep, job) for job in jobs]
    for job, mine, own in zip(jobs, ours, hydras, strict=True):
        assert described(mine) == described(own), job


def test_each_job_gets_its_own_config(hydra_app: Any) -> None:
    sweep = master(hydra_app)
    loader = ComposeOnce(hydra_app.config_loader)
    first = loader.compose(sweep, ["seed=1"])
    # What a launcher does to a job's config: number it, make its hydra node
    # read-only.
    before = HydraConfig.instance().cfg
    first.hydra.job.num = 7
    HydraConfig.instance().set_config(first)
    HydraConfig.instance().cfg = before
    second = loader.compose(sweep, ["seed=1"])
    assert second is not first
    assert OmegaConf.is_missing(second.hydra.job, "num")
    assert not OmegaConf.is_readonly(second.hydra)
    own = hydra_app.config_loader.load_sweep_config(sweep, ["seed=1"])
    assert described(second) == described(own)


#: Jobs that do not compose: each gets Hydra's own error.
BAD_JOBS = [
    ["model.widht=3"],
    ["seed=1", "init=nope"],
    ["+seed=1"],
    ["~nokey"],
    ["seed=abc", "model=mlp", "model.width=[1"],
    ["nogroup@model.x=1"],
    ["model=mlp", "model.width=1", "model.nope.deeper=2"],
]


@pytest.mark.parametrize("job", BAD_JOBS, ids=[" ".join(job) for job in BAD_JOBS])
def test_a_bad_job_gets_hydras_error_and_is_not_kept(
    hydra_app: Any, job: list[str]
) -> None:
    sweep = master(hydra_app)
    loader = ComposeOnce(hydra_app.config_loader)
    with pytest.raises(Exception) as ours:  # noqa: PT011 (Hydra's, whatever it is)
        loader.compose(sweep, job)
    with pytest.raises(Exception) as own:  # noqa: PT011
        hydra_app.config_loader.load_sweep_config(sweep, job)
    assert type(ours.value) is type(own.value)
    assert str(ours.value) == str(own.value)
    assert str(ours.value.__cause__) == str(own.value.__cause__)
    assert loader.kept == {}


def test_a_worker_process_composes_with_hydra(hydra_app: Any) -> None:
    sweep = master(hydra_app)
    loader = ComposeOnce(Counting(hydra_app.config_loader))
    loader.compose(sweep, ["model=mlp", "seed=1"])
    # What the joblib launcher sends to a worker (loky pickles with cloudpickle).
    import cloudpickle

    copy = pickle.loads(cloudpickle.dumps(loader))
    assert copy.kept == {}
    assert isinstance(copy.loader, Counting)
    mine = copy.load_sweep_config(sweep, ["model=mlp", "seed=4"])
    assert copy.loader.calls == [["model=mlp", "seed=1"], ["model=mlp", "seed=4"]]
    own = hydra_app.config_loader.load_sweep_config(sweep, ["model=mlp", "seed=4"])
    assert described(mine) == described(own)


def test_everything_else_is_the_wrapped_loaders(hydra_app: Any) -> None:
    inner = hydra_app.config_loader
    loader = ComposeOnce(inner)
    assert isinstance(loader, ConfigLoader)
    assert loader.get_group_options("model") == inner.get_group_options("model")
    assert loader.list_groups("hydra") == inner.list_groups("hydra")
    assert loader.get_search_path() is inner.get_search_path()
    assert loader.get_sources() == inner.get_sources()
    run = RunMode.MULTIRUN
    defaults = loader.compute_defaults_list(CONFIG_NAME, ["model=mlp"], run)
    assert [d.config_path for d in defaults.defaults] == [
        d.config_path
        for d in inner.compute_defaults_list(CONFIG_NAME, ["model=mlp"], run).defaults
    ]
    cfg = loader.load_configuration(CONFIG_NAME, ["seed=3"], RunMode.RUN)
    assert cfg.seed == 3
    assert "model" in cfg
