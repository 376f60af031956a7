"""A sweep job whose overrides only set values is a copy of a template, not a new
composition (``annfactory.sweep.ComposeOnce``): pinned here against Hydra's own
``load_sweep_config`` on the pinned Hydra, config, ``hydra`` node, flags and errors."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from annfactory.config import CONFIG_NAME, _bundled_hydra
from annfactory.sweep import ComposeOnce


@pytest.fixture(scope="module")
def hydra_app() -> Iterator[Any]:
    with _bundled_hydra():
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


#: Sweeps whose jobs the template path composes: per job, its overrides.
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
def test_a_value_job_is_hydras_own_composition(
    hydra_app: Any,
    compositions: list[list[str]],
    jobs: list[list[str]],
    hydra_overrides: list[str],
) -> None:
    sweep = master(hydra_app, hydra_overrides)
    loader = ComposeOnce(hydra_app.config_loader)
    compositions.clear()
    ours = [loader.compose(sweep, overrides) for overrides in jobs]
    templates = {tuple(o for o in job if o.split("=")[0] in _GROUPS) for job in jobs}
    # One composition per distinct set of group choices, not one per job.
    assert len(compositions) == len(templates)
    hydras = [hydra_app.config_loader.load_sweep_config(sweep, job) for job in jobs]
    for job, mine, own in zip(jobs, ours, hydras, strict=True):
        assert described(mine) == described(own), job


_GROUPS = {"model", "init", "activation", "task", "data", "optimizer"} | {
    "init@model.layers.linear1.weight_init"
}


def test_each_job_gets_its_own_copy(hydra_app: Any) -> None:
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


#: Jobs the template path cannot compose: each gets Hydra's own error.
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
def test_a_bad_job_gets_hydras_error(hydra_app: Any, job: list[str]) -> None:
    sweep = master(hydra_app)
    loader = ComposeOnce(hydra_app.config_loader)
    loader.compose(sweep, ["seed=0"])  # a template exists for the plain choices
    with pytest.raises(Exception) as ours:  # noqa: PT011 (Hydra's, whatever it is)
        loader.compose(sweep, job)
    with pytest.raises(Exception) as own:  # noqa: PT011
        hydra_app.config_loader.load_sweep_config(sweep, job)
    assert type(ours.value) is type(own.value)
    assert str(ours.value) == str(own.value)
    assert str(ours.value.__cause__) == str(own.value.__cause__)


def test_hydra_overrides_in_a_job_are_composed_by_hydra(
    hydra_app: Any, compositions: list[list[str]]
) -> None:
    sweep = master(hydra_app)
    loader = ComposeOnce(hydra_app.config_loader)
    compositions.clear()
    jobs = [["seed=1", "hydra.job.name=a"], ["seed=2", "hydra.job.name=b"]]
    ours = [loader.compose(sweep, job) for job in jobs]
    assert len(compositions) == 2  # no template: each job composed by Hydra
    for job, mine in zip(jobs, ours, strict=True):
        own = hydra_app.config_loader.load_sweep_config(sweep, job)
        assert described(mine) == described(own)


def test_a_worker_process_composes_with_hydra(
    hydra_app: Any, compositions: list[list[str]]
) -> None:
    sweep = master(hydra_app)
    loader = ComposeOnce(hydra_app.config_loader)
    loader.compose(sweep, ["model=mlp", "seed=1"])
    # What the joblib launcher sends to a worker (loky pickles with cloudpickle).
    import cloudpickle

    copy = pickle.loads(cloudpickle.dumps(loader))
    assert copy._kept == {}
    compositions.clear()
    mine = copy.load_sweep_config(sweep, ["model=mlp", "seed=4"])
    assert compositions == [["hydra.mode=MULTIRUN", "model=mlp", "seed=4"]]  # Hydra
    own = hydra_app.config_loader.load_sweep_config(sweep, ["model=mlp", "seed=4"])
    assert described(mine) == described(own)


def _nodes(node: Any) -> Iterator[Any]:
    yield node
    if OmegaConf.is_dict(node):
        for key in node._content if isinstance(node._content, dict) else ():
            yield from _nodes(node._get_node(key))
    elif OmegaConf.is_list(node) and isinstance(node._content, list):
        for index in range(len(node._content)):
            yield from _nodes(node._get_node(index))


@pytest.mark.parametrize(
    "hydra_overrides",
    [[], ["hydra/sweeper=optuna"], ["hydra/launcher=basic"]],
    ids=["annfactory", "optuna sweeper", "basic launcher"],
)
def test_templates_are_copied_from_their_pickle(
    hydra_app: Any, hydra_overrides: list[str]
) -> None:
    # The plugin configs (annfactory's sweepers and launcher) pickle: their classes
    # live in a module Hydra's plugin scan does not run twice.
    sweep = master(hydra_app, hydra_overrides)
    loader = ComposeOnce(hydra_app.config_loader)
    first = loader.compose(sweep, ["model=mlp", "seed=1"])
    second = loader.compose(sweep, ["model=mlp", "seed=2"])
    ((template, pickled),) = loader._templates.values()  # type: ignore[union-attr]
    assert isinstance(pickled, bytes)
    for cfg in (first, second):
        nodes = list(_nodes(cfg))
        assert len(nodes) > 100
        assert all(node._get_root() is cfg for node in nodes)
        assert not any(node is other for node in nodes for other in _nodes(template))
    assert (first.seed, second.seed) == (1, 2)
    own = hydra_app.config_loader.load_sweep_config(sweep, ["model=mlp", "seed=2"])
    assert described(second) == described(own)
