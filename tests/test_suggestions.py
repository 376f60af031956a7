"""Every fix that a message suggests is a command that works as written (issue 19).

:func:`follow` takes a failing command line, reads the commands its message suggests
(by the convention of :mod:`annfactory.fixes`), applies each as a user would, runs
again, and goes on until the command runs or stops at an error that suggests no
command. It fails where a suggestion is refused (the next error is about the key it
set), where an error comes back (the suggestions loop), or after too many steps. It
runs in this process over every case of the bad-input corpus whose message suggests a
command, and on the command line for a few (slow).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.config import check_overrides
from annfactory.fixes import (
    apply_command,
    command,
    flow,
    override_key,
    shell_word,
    suggested_commands,
)
from annfactory.groups import groups, run_keys
from annfactory.tasks import run_named_task
from test_bad_inputs import (
    CASES,
    HEAVY,
    SHAPE_CASES,
    Bad,
    RunCli,
    fast,
    message_lines,
)

#: The first parts of the config paths an override may name.
ROOTS = (*run_keys(), *groups.names(), "hydra")
#: More steps than any chain of suggestions needs.
MAX_STEPS = 5


@dataclass(frozen=True)
class Failure:
    """An error as the user sees it: its config path, what is wrong, the fix."""

    key: str
    problem: str
    hint: str

    @classmethod
    def of(cls, error: ConfigError) -> Failure:
        return cls(error.key, error.problem, error.hint or "")

    @classmethod
    def from_lines(cls, lines: Sequence[str]) -> Failure:
        key, _, problem = lines[0].partition(": ")
        return cls(key, problem, "\n".join(line.strip() for line in lines[1:]))

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}\n  {self.hint}"


@dataclass
class Chain:
    """One chain of suggestions followed from a failing command line."""

    commands: list[list[str]] = field(default_factory=list)
    end: Failure | None = None  # None: the last command line ran

    @property
    def ran(self) -> bool:
        return self.end is None


Attempt = Callable[[list[str]], Failure | None]


def follow(
    overrides: list[str],
    attempt: Attempt,
    *,
    seen: tuple[Failure, ...] = (),
    applied: Sequence[str] = (),
    path: Chain | None = None,
) -> list[Chain]:
    """Follow every suggested command from ``overrides``; return each chain.

    Raises:
        AssertionError: A suggestion is refused, an error comes back, or a chain
            grows longer than :data:`MAX_STEPS`.
    """
    path = path or Chain()
    failure = attempt(overrides)
    if failure is None:
        return [path]
    chain = " -> ".join([*(str(f).split("\n")[0] for f in seen), str(failure)])
    assert all((failure.key, failure.problem) != (f.key, f.problem) for f in seen), (
        f"the suggestions loop: {chain}"
    )
    for key in filter(None, map(override_key, applied)):
        # The error is about the key the suggestion set, or the layer it is in.
        inside = "." in failure.key and key.startswith(f"{failure.key}.")
        refused = failure.key == key or inside
        assert not refused, f"the suggested {command(*applied)} is refused: {chain}"
    suggestions = suggested_commands(failure.hint, ROOTS)
    if not suggestions:
        path.end = failure
        return [path]
    assert len(seen) < MAX_STEPS, f"too many steps: {chain}"
    instead = failure.key if "instead" in failure.hint else None
    paths = []
    for suggestion in suggestions:
        branch = Chain([*path.commands, suggestion])
        paths += follow(
            apply_command(overrides, suggestion, replaces=instead),
            attempt,
            seen=(*seen, failure),
            applied=suggestion,
            path=branch,
        )
    return paths


def one_epoch(overrides: list[str]) -> list[str]:
    """A training run is cut to one epoch: the run is checked, not the result."""
    train = "task=train" in overrides
    if train and not any(o.startswith("task.epochs=") for o in overrides):
        return [*overrides, "task.epochs=1"]
    return overrides


def in_process(config_dirs: Sequence[Path]) -> Attempt:
    """What the command line does, in this process: check the overrides, compose,
    validate, build the network (forward) or run the task (train, export)."""

    def attempt(overrides: list[str]) -> Failure | None:
        overrides = one_epoch(overrides)
        try:
            if config_dirs:  # annfactory.compose checks them itself, without dirs
                check_overrides(overrides, list(config_dirs))
            extra = [f"hydra.searchpath=[file://{d}]" for d in config_dirs]
            cfg = annfactory.compose([*overrides, *extra])
            spec = annfactory.to_spec(cfg)
            task = OmegaConf.to_container(cfg.task, resolve=True)
            assert isinstance(task, dict)
            if task["name"] == "forward":
                annfactory.build_network(spec)
            else:
                run_named_task(task, spec, None, out=io.StringIO())
        except ConfigError as error:
            return Failure.of(error)
        return None

    return attempt


def on_the_command_line(run_cli: RunCli, config_dirs: Sequence[Path]) -> Attempt:
    def attempt(overrides: list[str]) -> Failure | None:
        dirs = [arg for d in config_dirs for arg in ("--config-dir", str(d))]
        result = run_cli(*dirs, *one_epoch(overrides), timeout=120)
        if result.returncode == 0:
            return None
        assert "Traceback" not in result.stderr, result.stderr
        return Failure.from_lines(message_lines(result.stderr))

    return attempt


# ------------------------------------------------------------------------------------
# The convention
# ------------------------------------------------------------------------------------


def test_a_hint_s_commands_are_its_overrides_between_prose() -> None:
    hint = (
        "Use data=digits (images), or model=mlp for these rows; "
        "~model.layers.out '+model.layers.flat={type: flatten}' (the layer's "
        "settings), not data=<name>, nor e.g. task.run=outputs/x, nor key=value."
    )
    assert suggested_commands(hint, ROOTS) == [
        ["data=digits"],
        ["model=mlp"],
        ["~model.layers.out", "+model.layers.flat={type: flatten}"],
    ]
    assert suggested_commands("Set model.in_features=<value>.", ROOTS) == []


def test_a_suggestion_replaces_what_the_command_line_set() -> None:
    overrides = ["+model.in_features=4", "~model.layers.flatten", "data=iris"]
    suggestion = ["model.in_features=4", "+model.layers.flatten={type: flatten}"]
    assert apply_command(overrides, suggestion) == [
        "~model.layers.flatten", "data=iris", *suggestion
    ]  # fmt: skip
    assert override_key("init@=xavier_normal") == "init"
    assert override_key("+init@model.layers.x.weight_init=zeros") == (
        "model.layers.x.weight_init"
    )


def test_a_deletion_replaces_a_deletion_and_instead_replaces_the_key() -> None:
    assert apply_command(["~seed=3", "model=mlp"], ["~seed"]) == ["model=mlp", "~seed"]
    assert apply_command(["seed=3"], ["~seed"]) == ["~seed"]
    overrides = ["task=train", "batch_size=7"]
    assert apply_command(overrides, ["task.batch_size=7"], replaces="batch_size") == [
        "task=train", "task.batch_size=7"
    ]  # fmt: skip
    assert apply_command(overrides, ["task.batch_size=7"]) == [
        *overrides, "task.batch_size=7"
    ]  # fmt: skip


def test_commands_are_written_as_shell_words() -> None:
    mapping = {"type": "linear", "out_features": 3, "activation": {"name": "elu"}}
    assert flow(mapping) == "{type: linear, out_features: 3, activation: {name: elu}}"
    assert flow([1, 8, 8]) == "[1, 8, 8]"
    assert command("~model.layers.out", "+model.input_shape=[1,8,8]") == (
        "~model.layers.out '+model.input_shape=[1,8,8]'"
    )
    assert shell_word("device=cpu") == "device=cpu"


def test_follow_catches_a_refused_suggestion_and_a_loop() -> None:
    def refuses(overrides: list[str]) -> Failure | None:
        if "model.out_features=3" in overrides:
            return Failure("model.out_features", "unknown key", "Valid keys: layers.")
        return Failure("model.in_features", "3 inputs", "Set model.out_features=3.")

    with pytest.raises(AssertionError, match="is refused"):
        follow([], refuses)

    def loops(overrides: list[str]) -> Failure | None:
        if overrides and overrides[-1] == "'model.input_shape=[4]'":
            return Failure("model.layers.conv1", "rank", "Use model.input_shape=[1].")
        return Failure("model.input_shape", "images", "Use model.input_shape=[4].")

    with pytest.raises(AssertionError, match="the suggestions loop"):
        follow([], loops)


# ------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------

ALL_CASES = CASES + SHAPE_CASES
BY_ID = {param.id: param.values[0] for param in ALL_CASES}
#: Cases whose every suggestion, followed, runs: the four of issue 19 and the other
#: sizes and shapes.
MUST_RUN = {
    "cnn-on-data-without-images",  # use data=digits, or model=mlp
    "file-conv_without_flatten",  # a flatten layer before the linear one
    "cnn-without-flatten",
    "file-empty_residual",  # a quoted + override whose size is the block's input
    "file-conv_on_vector",  # an image input for a first conv
    "cnn-on-images-of-another-shape",
    "resmlp-ending-with-a-block",  # a linear head
    "in-features-against-data",
    "out-features-against-data",
    "file-residual_mismatch",
    "resmlp-block-changes-the-width",
    "add-existing-key",
    "train-on-meta",
    "demo-softmax-on-a-regression-target",
}


@pytest.mark.parametrize(
    "bad",
    [
        # The fast tier follows the cases test_bad_inputs checks in it; make test all.
        param
        if fast(param) and param.id not in MUST_RUN
        else pytest.param(*param.values, id=param.id, marks=(*param.marks, HEAVY))
        for param in ALL_CASES
    ],
)
def test_a_suggested_command_works_in_process(
    bad: Bad, request: pytest.FixtureRequest
) -> None:
    """Each case's suggestions, followed: they run, or stop at a new problem that
    suggests no command (a message with no command is followed zero steps)."""
    chains = follow(list(bad.overrides), in_process(bad.config_dirs))
    if request.node.callspec.id in MUST_RUN:
        assert all(chain.ran and chain.commands for chain in chains), chains


@pytest.mark.heavy  # trains twice
def test_a_cnn_on_iris_suggests_two_commands_that_both_train() -> None:
    bad = BY_ID["cnn-on-data-without-images"]
    chains = follow(list(bad.overrides), in_process(bad.config_dirs))
    assert [chain.commands for chain in chains] == [[["data=digits"]], [["model=mlp"]]]
    assert all(chain.ran for chain in chains)


@pytest.mark.heavy  # trains
@pytest.mark.parametrize(
    "overrides",
    [
        ["task=train", "model=demo", "data=iris"],
        ["task=train", "model=resmlp", "data=iris"],
        ["task=train", "model=demo", "data=wine"],
    ],
)
def test_a_sequential_model_trains_on_other_data_without_an_override(
    overrides: list[str],
) -> None:
    assert follow(overrides, in_process([])) == [Chain()]


# ------------------------------------------------------------------------------------
# On the command line
# ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "id",
    [
        # cnn-on-data-without-images is followed in process (two trainings of a cnn
        # on digits: 17 s here); these three check the command line's side of it.
        "file-conv_without_flatten",
        "file-empty_residual",
        "file-conv_on_vector",
    ],
)
def test_a_suggested_command_works_on_the_command_line(
    run_cli: RunCli, id: str
) -> None:
    bad = BY_ID[id]
    chains = follow(list(bad.overrides), on_the_command_line(run_cli, bad.config_dirs))
    assert all(chain.ran and chain.commands for chain in chains), chains


@pytest.mark.slow
def test_the_demo_trains_on_iris_on_the_command_line(run_cli: RunCli) -> None:
    result = run_cli("task=train", "model=demo", "data=iris", "task.epochs=2")
    assert result.returncode == 0, result.stderr
    assert (
        "note: sized for data=iris (4 features, 3 classes): model.in_features 3 -> 4, "
        "model.layers.out.out_features 2 -> 3." in result.stdout.splitlines()
    )
    assert (result.run_dir / "weights.safetensors").exists()
