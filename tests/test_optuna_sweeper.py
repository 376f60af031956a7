"""The Optuna sweeper (hydra/sweeper=optuna): search space, objective, samplers,
storage, and searches through the command line."""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from annfactory.errors import ConfigError, UnknownNameError
from cli_server import script_server
from hydra_plugins.annfactory_sweeper import _consecutive, sweeper_params
from hydra_plugins.annfactory_sweeper._search_space import (
    grid_of,
    override_value,
    search_space,
)
from hydra_plugins.annfactory_sweeper._study import (
    check_same_search,
    grid_left,
    make_sampler,
    open_storage,
)
from hydra_plugins.annfactory_sweeper._trials import (
    Batch,
    choose_objective,
    objective_never_produced,
    objective_value,
)
from hydra_plugins.annfactory_sweeper.optuna_sweeper import _terminate_as_exit

RUN_PY = Path(__file__).resolve().parents[1] / "scripts" / "run.py"

# ------------------------------------------------------------------------------------
# The search space: Hydra's grammar -> Optuna's distributions
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.width=choice(16,32,64)", CategoricalDistribution([16, 32, 64])),
        ("init=xavier_normal,kaiming_normal", None),  # a simple sweep is a choice
        # Hydra's range excludes its end: range(1,6) is 1..5.
        ("model.depth=range(1,6)", IntDistribution(1, 5)),
        ("model.depth=range(2,10,3)", IntDistribution(2, 8, step=3)),
        ("model.depth=range(5,1,-1)", IntDistribution(2, 5)),
        ("x=range(0.1,0.5,0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("x=interval(0.5,2)", FloatDistribution(0.5, 2.0)),
        (
            "optimizer.lr=tag(log,interval(0.0001,0.1))",
            FloatDistribution(1e-4, 0.1, log=True),
        ),
        # interval() gives floats; tag(int, ...) makes it integers, both ends in.
        ("model.width=tag(int,interval(4,64))", IntDistribution(4, 64)),
        ("model.width=tag(int,log,interval(4,64))", IntDistribution(4, 64, log=True)),
    ],
)
def test_each_grammar_form_becomes_its_distribution(
    override: str, expected: Any
) -> None:
    key = override.split("=", 1)[0]
    space = search_space([override])
    if expected is None:
        expected = CategoricalDistribution(["xavier_normal", "kaiming_normal"])
    assert space.distributions == {key: expected}
    assert space.items == [(key, None)]


def test_a_shuffled_range_is_a_choice_of_its_values() -> None:
    space = search_space(["seed=shuffle(range(1,4))"])
    distribution = space.distributions["seed"]
    assert isinstance(distribution, CategoricalDistribution)
    assert sorted(distribution.choices) == [1, 2, 3]


def test_plain_values_are_fixed_and_keep_their_place() -> None:
    space = search_space(
        ["task=train", "model.width=choice(4,8)", "~init", "+extra=1", "seed=3"]
    )
    assert list(space.distributions) == ["model.width"]
    assert space.overrides({"model.width": 8}) == [
        "task=train",
        "model.width=8",
        "~init",
        "+extra=1",
        "seed=3",
    ]
    assert space.fixed_value("task") == "train"
    assert space.fixed_value("model.width") is None


def test_params_mapping_and_the_command_line_merge_the_command_line_winning() -> None:
    space = search_space(
        ["model.width=choice(4,8)"],
        {"model.width": "choice(16,32)", "model.depth": "range(1,3)"},
    )
    assert space.distributions == {
        "model.depth": IntDistribution(1, 2),
        "model.width": CategoricalDistribution([4, 8]),
    }
    assert space.overrides({"model.width": 4, "model.depth": 2}) == [
        "model.depth=2",
        "model.width=4",
    ]


@pytest.mark.parametrize(
    ("params", "arguments", "match"),
    [
        (
            {},
            ["model.depth=range(3,3)"],
            r"model\.depth: .*is empty .*excludes its end",
        ),
        ({}, ["x=interval(2,1)"], r"x: .*is empty: its low end is above"),
        ({}, ["x=tag(log,interval(0,1))"], r"x: .*log scale needs a low end above 0"),
        ({}, ["x=tag(int,interval(1.5,4))"], r"tag\(int, \.\.\.\) needs whole-number"),
        ({}, ["x=tag(lgo,interval(1,4))"], r"unknown search tag 'lgo'.*'log'"),
        ({}, ["x=choice([1,2],[3])"], r"a choice of list values cannot be searched"),
        ({}, ["init=glob(*)"], r"init: .*glob\(\) is not searchable"),
        ({"model.width": "choice(4,"}, [], r"hydra\.sweeper\.params\.model\.width: "),
    ],
)
def test_a_value_that_cannot_be_searched_names_its_key(
    params: dict[str, str], arguments: list[str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        search_space(arguments, params)


@pytest.mark.parametrize(
    "value",
    ["relu", "a b", "x,y", "it's", "back\\slash", "null", "true", "12", "", 16,
     -3, 0.1, 1e-05, 1e30, True, False, None],
)  # fmt: skip
def test_override_values_parse_back_to_the_same_value(value: Any) -> None:
    text = override_value(value)
    parsed = OverridesParser.create().parse_override(f"key={text}")
    assert not parsed.is_sweep_override()
    assert parsed.value() == value
    assert type(parsed.value()) is type(value)


# ------------------------------------------------------------------------------------
# The objective
# ------------------------------------------------------------------------------------


def test_the_objective_defaults_to_the_tasks_own() -> None:
    assert choose_objective(["train"], None, None) == ("train.val_loss", "minimize")
    assert choose_objective(["train"], "train.val_accuracy", None) == (
        "train.val_accuracy",
        "maximize",
    )
    assert choose_objective(["train"], "train.val_loss", "maximize") == (
        "train.val_loss",
        "maximize",
    )


def test_an_objective_the_task_does_not_produce_names_the_closest() -> None:
    match = r"objective: .*'train\.val_los' for task 'train'.*'train\.val_loss'"
    with pytest.raises(UnknownNameError, match=match):
        choose_objective(["train"], "train.val_los", None)


def test_a_task_without_objectives_cannot_be_searched() -> None:
    with pytest.raises(
        ConfigError, match=r"task 'forward' reports no metric(.|\n)*train"
    ):
        choose_objective(["forward"], None, None)


def test_a_bad_direction_names_the_allowed_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"direction 'minimise'.*'minimize'"):
        choose_objective(["train"], None, "minimise")


def _job(status: str = "ok", error: str | None = None, **train: Any) -> Any:
    return {
        "job": 0,
        "overrides": [],
        "status": status,
        "error": error,
        "wall_time_s": 0.0,
        "metrics": {"total_params": 5, "train": train},
    }


def test_the_objective_is_read_from_the_jobs_metrics() -> None:
    value, problem = objective_value(_job(val_loss=0.25), "train.val_loss")
    assert (value, problem) == (0.25, None)
    value, problem = objective_value(_job(val_loss=float("nan")), "train.val_loss")
    assert value is None
    assert "is nan" in str(problem)
    value, problem = objective_value(_job(val_accuracy=0.9), "train.val_r2")
    assert value is None
    assert "have no 'train.val_r2'. Did you mean 'train.val_accuracy'?" in str(problem)
    value, problem = objective_value(_job("error", "it broke"), "train.val_loss")
    assert (value, problem) == (None, "it broke")


# ------------------------------------------------------------------------------------
# Samplers and storage
# ------------------------------------------------------------------------------------


def test_every_sampler_is_made_and_cmaes_is_available() -> None:
    space = search_space(["model.width=choice(4,8)", "x=range(1,4)"])
    kinds = {
        name: type(make_sampler(name, 0, space)).__name__
        for name in ("tpe", "random", "grid", "cmaes")
    }
    assert kinds == {
        "tpe": "TPESampler",
        "random": "RandomSampler",
        "grid": "GridSampler",
        "cmaes": "CmaEsSampler",
    }


# The README's search space; trials asked two at a time (n_jobs=2: a batch is asked
# before any of it is told), told a made-up value. Trials 0-9 are TPE's random start
# (the same on Optuna 4.0 to 5.x), 10 and 11 its first model-based ones. These are
# what Optuna 4.9 and 5.1 both ask; Optuna 5's own defaults (multivariate TPE) ask
# something else for 10 and 11, and so did Optuna 4.0-4.8.
PINNED_TRIALS = [
    (32, 3, 0.008663279761354562, "kaiming_normal"),
    (16, 3, 0.05981221901152557, "kaiming_normal"),
    (128, 5, 0.0249732861040606, "kaiming_normal"),
    (128, 3, 0.0017538232373118048, "kaiming_normal"),
    (128, 4, 0.0070925432147358365, "xavier_normal"),
    (64, 4, 0.010278118224157015, "xavier_normal"),
    (64, 5, 0.00020236454843648925, "xavier_normal"),
    (16, 1, 0.00021435095535798573, "xavier_normal"),
    (64, 5, 0.0001942205696972693, "xavier_normal"),
    (16, 2, 0.00022939802981311865, "xavier_normal"),
    (32, 1, 0.0013110058873616395, "kaiming_normal"),
    (32, 2, 0.0010031542913003625, "kaiming_normal"),
]


def test_tpe_with_a_seed_asks_the_pinned_trials() -> None:
    space = search_space(
        [
            "model.width=choice(16,32,64,128)",
            "model.depth=range(1,6)",
            "optimizer.lr=tag(log,interval(0.0001,0.1))",
            "init=choice(xavier_normal,kaiming_normal)",
        ]
    )
    study = optuna.create_study(sampler=make_sampler("tpe", 0, space))
    asked = []
    for _ in range(len(PINNED_TRIALS) // 2):
        batch = [study.ask(space.distributions) for _ in range(2)]
        for trial in batch:
            p = trial.params
            asked.append(
                (p["model.width"], p["model.depth"], p["optimizer.lr"], p["init"])
            )
            value = abs(math.log10(p["optimizer.lr"]) + 2) + p["model.depth"] / 5
            study.tell(trial, value + (p["init"] == "xavier_normal"))
    assert [row[:2] + row[3:] for row in asked] == [
        row[:2] + row[3:] for row in PINNED_TRIALS
    ]
    assert [row[2] for row in asked] == pytest.approx(
        [row[2] for row in PINNED_TRIALS], rel=1e-9
    )


def test_the_tpe_sampler_is_made_without_a_warning() -> None:
    # Optuna 4.x calls constant_liar experimental; 5.x deprecates some arguments.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = make_sampler("tpe", 0, search_space(["x=interval(0,1)"]))
    assert isinstance(sampler, optuna.samplers.TPESampler)


def test_an_unknown_sampler_names_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"sampler 'tpee'.*Did you mean 'tpe'"):
        make_sampler("tpee", None, search_space([]))


def test_cmaes_without_its_package_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)  # import cmaes raises
    with pytest.raises(ConfigError, match=r"sampler: cmaes needs the cmaes package"):
        make_sampler("cmaes", None, search_space([]))


def test_the_grid_lists_every_value_and_refuses_intervals() -> None:
    space = search_space(
        ["a=choice(x,y)", "b=range(1,6,2)", "c=range(0.5,1.6,0.5)", "d=7"]
    )
    assert grid_of(space) == {"a": ["x", "y"], "b": [1, 3, 5], "c": [0.5, 1.0, 1.5]}
    with pytest.raises(ConfigError, match=r"lr: sampler=grid needs a finite set"):
        grid_of(search_space(["lr=interval(0.1,1)"]))


def test_grid_left_counts_the_combinations_no_trial_took() -> None:
    space = search_space(["a=choice(x,y)", "b=range(1,3)"])
    grid = grid_of(space)
    study = optuna.create_study(sampler=make_sampler("grid", 0, space))
    assert grid_left(study, grid) == 4
    done = study.ask(space.distributions)
    study.tell(done, 1.0)
    study.ask(space.distributions)  # still running: taken too
    assert grid_left(study, grid) == 2
    assert grid_left(study, {"a": ["x", "y"], "b": [1, 2, 3]}) == 4


def test_a_storage_that_cannot_be_opened_hides_the_password() -> None:
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.storage: ") as caught:
        open_storage("nosuchdb://user:secret@localhost/db")
    assert "secret" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"is not a database URL"):
        open_storage("not a url")


def test_a_search_stops_when_no_job_reports_the_objective() -> None:
    missing = _job("error", "the job's metrics have no 'train.val_r2'.", val_loss=1.0)
    failed = _job("error", "it broke")
    failed["metrics"] = {}
    assert objective_never_produced([missing, missing])
    assert not objective_never_produced([missing, _job(val_loss=1.0)])
    assert not objective_never_produced([failed])


def test_a_cut_short_batch_leaves_no_trial_running() -> None:
    study = optuna.create_study()
    space = search_space(["model.width=choice(4,8)"])
    trials = [study.ask(space.distributions) for _ in range(3)]
    batch = Batch(study, trials, "train.val_loss")
    batch.tell(trials[0].number, _job(val_loss=0.5))
    batch.tell(trials[1].number, _job(val_loss=float("inf")))
    batch.fail_untold()  # trials[2] never ran
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert study.best_value == 0.5
    assert [r["status"] for r in batch.records] == ["ok", "error"]
    assert "is inf (training diverged?)" in str(batch.records[1]["error"])


def test_sigterm_during_a_batch_raises_system_exit() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as caught, _terminate_as_exit():
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_jobs_launch_in_runs_of_consecutive_trial_numbers() -> None:
    jobs = [(4, ["a=4"]), (2, ["a=2"]), (5, ["a=5"]), (7, ["a=7"])]
    assert _consecutive(jobs) == [
        (2, [["a=2"]]),
        (4, [["a=4"], ["a=5"]]),
        (7, [["a=7"]]),
    ]


# ------------------------------------------------------------------------------------
# A resumed study: the same overrides, or refused before any trial
# ------------------------------------------------------------------------------------

DIGITS = ["task=train", "data=digits", "model.width=choice(16,32,64,128)"]


def test_a_study_records_its_overrides_and_a_resume_with_the_same_passes() -> None:
    study = optuna.create_study()
    check_same_search(study, search_space(DIGITS))
    assert study.user_attrs["fixed_overrides"] == ["task=train", "data=digits"]
    searched = study.user_attrs["search_space"]
    assert list(searched) == ["model.width"]
    assert searched["model.width"]["value"] == "choice(16,32,64,128)"
    # The same overrides in another order, a choice written as a simple sweep.
    check_same_search(
        study, search_space(["model.width=16,32,64,128", "data=digits", "task=train"])
    )


@pytest.mark.parametrize(
    ("resumed", "match"),
    [
        (
            ["task=train", "data=digits", "model.width=choice(16,32)"],
            r"^hydra\.sweeper\.study_name: study '.+' was made with "
            r"model\.width=choice\(16,32,64,128\); this command gives "
            r"model\.width=choice\(16,32\) instead\.\n.*another study_name",
        ),
        (
            [*DIGITS, "data=iris", "task.epochs=2"],
            r"was made with data=digits; this command gives data=iris task\.epochs=2 "
            r"instead",
        ),
        ([*DIGITS, "model.depth=3"], r"was made without model\.depth=3\.\n"),
        (DIGITS[1:], r"was made with task=train, which this command leaves out"),
        (
            [*DIGITS, "optimizer.lr=tag(log,interval(0.001,0.1))"],
            r"without optimizer\.lr=tag\(log,interval\(0\.001,0\.1\)\)",
        ),
    ],
)
def test_a_resume_over_other_overrides_names_what_differs(
    resumed: list[str], match: str
) -> None:
    study = optuna.create_study()
    check_same_search(study, search_space(DIGITS))
    with pytest.raises(ConfigError, match=match) as caught:
        check_same_search(study, search_space(resumed))
    assert len(str(caught.value).splitlines()) == 2
    assert study.get_trials() == []
    assert study.user_attrs["fixed_overrides"] == ["task=train", "data=digits"]


def test_a_study_made_before_the_record_is_resumed_and_recorded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An earlier test in this process may have run a logging config that disabled
    # the loggers that existed then, or stopped their propagation to caplog's root.
    logger = logging.getLogger("hydra_plugins.annfactory_sweeper.optuna_sweeper")
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "propagate", True)
    study = optuna.create_study()
    trial = study.ask(search_space(DIGITS).distributions)
    study.tell(trial, 0.5)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with caplog.at_level(logging.WARNING):
            check_same_search(study, search_space(DIGITS))
    finally:
        logger.setLevel(level)
    assert "has no record of its overrides" in caplog.text
    assert study.user_attrs["fixed_overrides"] == ["task=train", "data=digits"]
    with pytest.raises(ConfigError, match="this command gives data=iris instead"):
        check_same_search(study, search_space([*DIGITS, "data=iris"]))


# ------------------------------------------------------------------------------------
# Bad settings: refused before the study is opened
# ------------------------------------------------------------------------------------

#: (the override, the key the message starts with, the bad value, the fix).
SEARCH_SETTING_CASES = [
    pytest.param("hydra.sweeper.seed=-5", "hydra.sweeper.seed", "-5 is out of range",
                 "from 0 to 4294967295", id="seed-negative"),
    pytest.param("hydra.sweeper.seed=5000000000", "hydra.sweeper.seed",
                 "5000000000 is out of range", "or null", id="seed-too-large"),
    pytest.param("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials",
                 "0 is out of range", "an integer >= 1", id="no-trials"),
    pytest.param("hydra.sweeper.params=5", "hydra.sweeper.params",
                 "5 is not a mapping",
                 'hydra.sweeper.params={model.width: "choice(16,32)"}',
                 id="params-not-a-mapping"),
    pytest.param("hydra.sweeper.params={model.width: [16, 32]}",
                 "hydra.sweeper.params.model.width",
                 "[16, 32] is not one override value", "Give it as text",
                 id="params-list-value"),
    pytest.param('hydra.sweeper.params={model.width: "choice(4,"}',
                 "hydra.sweeper.params.model.width", "'choice(4,' is not an override",
                 "Use choice(a,b,...)", id="params-unparsable-value"),
]  # fmt: skip


def _sweeper(override: str) -> Any:
    """The Optuna sweeper as Hydra makes it, with ``override`` applied."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from annfactory.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        config = compose(
            "config",
            overrides=["hydra/sweeper=optuna", override],
            return_hydra_config=True,
        )
    return instantiate(config.hydra.sweeper)


@pytest.mark.parametrize(("override", "key", "value", "fix"), SEARCH_SETTING_CASES)
def test_a_bad_setting_is_refused_in_process(
    override: str, key: str, value: str, fix: str
) -> None:
    sweeper = _sweeper(override)
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}: ") as caught:
        sweeper.checked_space(["task=train", "model.width=choice(4,8)"])
    message = str(caught.value)
    assert value in message
    assert fix in message
    assert len(message.splitlines()) <= 3


@pytest.mark.slow
@pytest.mark.parametrize(("override", "key", "value", "fix"), SEARCH_SETTING_CASES)
def test_a_bad_setting_is_refused_on_the_command_line(
    tmp_path: Path, override: str, key: str, value: str, fix: str
) -> None:
    sweep_dir = tmp_path / "bad"
    done = _run(tmp_path, sweep_dir, *SEARCH, override)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{key}: "), done.stderr
    assert value in done.stderr
    assert fix in done.stderr
    assert not (sweep_dir / "optuna.db").exists()


@pytest.mark.parametrize(
    "override",
    [
        'hydra.sweeper.params={model.width: "choice(16,32)"}',
        "hydra.sweeper.params={model.width: 'choice(16,32)'}",
        'hydra.sweeper.params={model: {width: "choice(16,32)"}}',
    ],
)
def test_the_params_mapping_is_given_on_the_command_line(override: str) -> None:
    from annfactory.config import check_overrides

    # The command line's own checks (an AttributeError in OmegaConf before).
    check_overrides(["hydra/sweeper=optuna", override])
    space = _sweeper(override).checked_space(["task=train"])
    assert space.distributions == {"model.width": CategoricalDistribution([16, 32])}
    assert sweeper_params(None) == {}
    assert sweeper_params({"a": True, "b": None, "c": 0.5}) == {
        "a": "true",
        "b": "null",
        "c": "0.5",
    }


#: The README's ``hydra.sweeper.params`` argument, as quoted there for the shell.
README_PARAMS = next(
    line.strip()
    for line in (RUN_PY.parents[1] / "README.md").read_text().splitlines()
    if line.strip().startswith("'hydra.sweeper.params={")
)
#: Forms of ``hydra.sweeper.params``, as a user types them in a shell.
PARAMS_COMMANDS = [
    # The README's, with fewer trials and epochs.
    "-m hydra/sweeper=optuna task=train model=mlp data=iris task.epochs=2 "
    f"hydra.sweeper.n_trials=2 {README_PARAMS}",
    r'''-m hydra/sweeper=optuna task=train model=mlp data=iris task.epochs=2 \
    hydra.sweeper.n_trials=2 \
    "hydra.sweeper.params={model.width: 'choice(4,8)', model.depth: 'range(1,3)'}"''',
    r"""-m model=demo 'hydra.sweeper.params={seed: "range(0,2)"}'""",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    PARAMS_COMMANDS,
    ids=["readme", "two-keys-double-quoted", "annfactory-sweeper"],
)
def test_the_params_mapping_works_as_typed_in_a_shell(
    tmp_path: Path, command: str
) -> None:
    import shlex

    args = shlex.split(command.replace("\\\n", " "))
    sweep_dir = tmp_path / "params"
    done = _run(tmp_path, sweep_dir, *args)
    assert done.returncode == 0, done.stderr
    rows = _rows(sweep_dir)
    assert len(rows) == 2
    if "model.width" in command:
        searched = [
            dict(o.split("=") for o in row["overrides"].split()) for row in rows
        ]
        assert {row["model.width"] for row in searched} <= {"4", "8", "16", "32"}
        if "optimizer.lr" in command:
            lrs = [float(row["optimizer.lr"]) for row in searched]
            assert all(0.001 <= lr <= 0.1 for lr in lrs)
        if "model.depth" in command:
            assert {row["model.depth"] for row in searched} <= {"1", "2"}
    else:
        assert [row["overrides"] for row in rows] == [
            "seed=0 model=demo",
            "seed=1 model=demo",
        ]


# ------------------------------------------------------------------------------------
# Searches through the command line
# ------------------------------------------------------------------------------------

#: A small, fast search on iris (3 epochs a trial).
SEARCH = (
    "-m",
    "hydra/sweeper=optuna",
    "task=train",
    "model=mlp",
    "data=iris",
    "task.epochs=3",
    "model.width=choice(4,8)",
    "model.depth=range(1,3)",
    "optimizer.lr=tag(log,interval(0.001,0.1))",
    "init=choice(xavier_normal,kaiming_normal)",
)


def _command(sweep_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(RUN_PY), *args, f"hydra.sweep.dir={sweep_dir}"]


def _run(cwd: Path, sweep_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("HYDRA_FULL_ERROR", None)
    return script_server().run(
        _command(sweep_dir, *args),
        timeout=300,
        cwd=cwd,
        env=environment,
    )


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as handle:
        return list(csv.DictReader(handle))


def _results(sweep_dir: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.slow
def test_a_search_agrees_with_its_study_and_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    store = [f"hydra.sweeper.storage={url}", "hydra.sweeper.study_name=iris"]
    first = tmp_path / "first"
    done = _run(
        tmp_path,
        first,
        *SEARCH,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.seed=0",
        *store,
    )
    assert done.returncode == 0, done.stderr
    rows = _rows(first)
    study = _study(url, "iris")
    trials = study.get_trials()
    # Every trial is a row, under its trial number, with the overrides it was given.
    assert [int(row["job"]) for row in rows] == [t.number for t in trials] == [0, 1, 2]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for row, trial in zip(rows, trials, strict=True):
        assert row["status"] == "ok"
        assert f"model.width={trial.params['model.width']}" in row["overrides"]
        assert f"init={trial.params['init']}" in row["overrides"]
        # The CSV keeps full precision: the study's values, exactly.
        assert float(row["train.val_loss"]) == trial.value
        assert (first / row["job"] / "metrics.json").is_file()
    best_row = min(rows, key=lambda row: float(row["train.val_loss"]))
    results = _results(first)
    assert (
        results["best_value"] == study.best_value == float(best_row["train.val_loss"])
    )
    assert results["best_trial"] == int(best_row["job"])
    assert results["best_params"] == study.best_params
    assert results["best_run_dir"] == str(first / best_row["job"])
    assert results["trials"] == {"total": 3, "complete": 3, "fail": 0}
    assert "Best of study 'iris' (3 trials)" in done.stdout

    # A second run with the same storage and study name adds its trials.
    second = tmp_path / "second"
    again = _run(tmp_path, second, *SEARCH, "hydra.sweeper.n_trials=2", *store)
    assert again.returncode == 0, again.stderr
    assert [t.number for t in _study(url, "iris").get_trials()] == [0, 1, 2, 3, 4]
    assert [row["job"] for row in _rows(second)] == ["3", "4"]
    assert sorted(p.name for p in second.iterdir() if p.is_dir()) == ["3", "4"]
    assert _results(second)["trials"]["total"] == 5

    # Another choice set is refused before any trial is asked: no traceback, and
    # no trial left RUNNING (Optuna cannot change a categorical within a study).
    other = [
        "model.width=choice(4,16)" if arg.startswith("model.width=") else arg
        for arg in SEARCH
    ]
    refused = _run(tmp_path, tmp_path / "third", *other, *store)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert (
        "hydra.sweeper.study_name: study 'iris' was made with "
        "model.width=choice(4,8); this command gives model.width=choice(4,16) "
        "instead."
    ) in refused.stderr
    trials = _study(url, "iris").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("HYDRA_FULL_ERROR", None)
    processes = [
        subprocess.Popen(
            _command(
                tmp_path / name,
                *SEARCH[:6],  # task=train on iris, 3 epochs
                # Three trials at once over two values: each batch repeats a set of
                # overrides, and each repeated job still runs on its own.
                "model.width=choice(4,8)",
                "hydra.sweeper.n_trials=3",
                "hydra.sweeper.n_jobs=3",
                f"hydra.sweeper.storage={url}",
                "hydra.sweeper.study_name=shared",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=environment,
        )
        for name in ("a", "b")
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    trials = _study(url, "shared").get_trials()
    # No trial lost or duplicated: six trials, numbered once each, all complete.
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    rows = [row for name in ("a", "b") for row in _rows(tmp_path / name)]
    assert sorted(int(row["job"]) for row in rows) == list(range(6))
    assert all(row["status"] == "ok" for row in rows)
    for name in ("a", "b"):
        overrides = [row["overrides"] for row in _rows(tmp_path / name)]
        assert len(set(overrides)) < len(overrides) == 3
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(run_dirs) == 6
    assert all(Path(run_dir, "metrics.json").is_file() for run_dir in run_dirs)


@pytest.mark.slow
def test_a_grid_runs_each_combination_once_and_failed_trials_go_on(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "grid"
    done = _run(
        tmp_path,
        sweep_dir,
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.n_trials=10",  # more than the grid: capped to its 4
        "hydra.sweeper.n_jobs=3",
        "task=train",
        "model=mlp",
        "data=iris",
        "task.epochs=3",
        "activation=choice(relu,bogus)",
        "optimizer.lr=choice(0.01,1e30)",  # 1e30 diverges to NaN
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "3 of 4 trials failed" in done.stderr
    rows = {
        row["overrides"].split("task.epochs=3 ")[1]: row for row in _rows(sweep_dir)
    }
    assert sorted(rows) == [
        "activation=bogus optimizer.lr=0.01",
        "activation=bogus optimizer.lr=1e+30",
        "activation=relu optimizer.lr=0.01",
        "activation=relu optimizer.lr=1e+30",
    ]
    assert rows["activation=relu optimizer.lr=0.01"]["status"] == "ok"
    bogus = rows["activation=bogus optimizer.lr=0.01"]
    assert "unknown activation 'bogus'" in bogus["error"]
    assert "training diverged" in rows["activation=relu optimizer.lr=1e+30"]["error"]
    results = _results(sweep_dir)
    study = _study(f"sqlite:///{sweep_dir / 'optuna.db'}", results["study_name"])
    states = {t.number: t.state for t in study.get_trials()}
    failed = {int(row["job"]) for row in rows.values() if row["status"] == "error"}
    assert {n for n, s in states.items() if s == TrialState.FAIL} == failed
    assert results["best_params"] == {"activation": "relu", "optimizer.lr": 0.01}
    assert results["trials"] == {"total": 4, "complete": 1, "fail": 3}


@pytest.mark.slow
def test_an_objective_the_task_does_not_produce_stops_before_any_trial(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "none"
    done = _run(
        tmp_path, sweep_dir, *SEARCH, "hydra.sweeper.objective=train.val_acuracy"
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert (
        "hydra.sweeper.objective: unknown objective 'train.val_acuracy' for task "
        "'train'. Did you mean 'train.val_accuracy'?"
    ) in done.stderr
    assert not (sweep_dir / "optuna.db").exists()
    assert not (sweep_dir / "0").exists()


@pytest.mark.slow
def test_ctrl_c_tells_the_study_and_writes_the_summary(
    tmp_path: Path, interrupt_after_first_job: Any
) -> None:
    sweep_dir = tmp_path / "search"
    # Two trials a batch, one after the other: trial 1 (300 epochs on digits, a
    # few seconds) is stopped as it starts.
    command = _command(
        sweep_dir,
        *SEARCH[:4],  # -m hydra/sweeper=optuna task=train model=mlp
        "data=digits",
        "task.epochs=300",
        "model.width=choice(4,8)",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=2",
    )
    done = interrupt_after_first_job(command, sweep_dir, tmp_path)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        "Interrupted (Ctrl-C): 1 of 4 trials finished, trial 1 stopped" in done.stderr
    )
    rows = _rows(sweep_dir)
    assert [(row["job"], row["status"]) for row in rows] == [
        ("0", "ok"),
        ("1", "interrupted"),
    ]
    results = _results(sweep_dir)
    study = _study(f"sqlite:///{sweep_dir / 'optuna.db'}", results["study_name"])
    trials = study.get_trials()
    # The finished trial is COMPLETE (its record read back), none is RUNNING.
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[0].value == float(rows[0]["train.val_loss"])
    assert trials[0].user_attrs["run_dir"] == str(sweep_dir / "0")
    assert trials[1].user_attrs["error"].startswith("stopped by Ctrl-C")
    assert (sweep_dir / "summary.png").is_file()
    # The stopped trial's run keeps its checkpoint (the study records it FAIL).
    assert (sweep_dir / "1" / "checkpoint.safetensors").is_file()
