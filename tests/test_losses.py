"""The ``losses`` and ``schedules`` registries: the built-in rules, and entries of a
user's own that ``task.loss`` and ``task.schedule`` then accept."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError, RegistrationError, UnknownNameError
from annfactory.losses import LossChoice, loss_for, losses
from annfactory.optimizers import SCHEDULES, build_schedule, schedules
from annfactory.spec import ActivationSpec
from annfactory.tasks import run_named_task, tasks
from annfactory.tasks.train import LOSSES


@pytest.fixture(autouse=True)
def restore_losses_and_schedules() -> Iterator[None]:
    saved = [(registry, registry.snapshot()) for registry in (losses, schedules)]
    yield
    for registry, state in saved:
        registry.restore(state)


def train(overrides: Sequence[str]) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", "model=mlp", "task.epochs=2", *overrides])
    node = OmegaConf.to_container(cfg.get("task"), resolve=True)
    return run_named_task(node, annfactory.to_spec(cfg), None, out=io.StringIO())


def test_the_built_in_entries_in_the_order_task_loss_lists_them() -> None:
    assert losses.names_in_order() == ["cross_entropy", "nll", "bce", "mse"]
    assert list(LOSSES) == losses.names_in_order()
    assert SCHEDULES == ("none", "cosine", "step")
    assert tasks.get("train").params["loss"].choices == LOSSES


@pytest.mark.parametrize(
    ("option", "activation", "kind", "units", "expected"),
    [
        (None, "identity", "classification", 3,
         LossChoice("cross_entropy", "cross_entropy(output as logits)", False)),
        (None, "softmax", "classification", 3,
         LossChoice("nll", "nll_loss(log_softmax(pre-activation, dim=-1))", True)),
        ("cross_entropy", "log_softmax", "classification", 3,
         LossChoice("nll", "nll_loss(output), output = log-probabilities", True)),
        (None, "sigmoid", "classification", 1,
         LossChoice("bce", "binary_cross_entropy_with_logits(pre-activation)", True)),
        ("mse", "identity", "regression", 1,
         LossChoice("mse", "mse_loss(output, standardized target)", False)),
    ],
)  # fmt: skip
def test_the_loss_follows_the_output(
    option: str | None, activation: str, kind: str, units: int, expected: LossChoice
) -> None:
    choice = loss_for(option, ActivationSpec(activation, {}), kind, units, units)
    assert choice == expected


@pytest.mark.parametrize(
    ("option", "activation", "kind", "units", "message"),
    [
        ("cross_entropy", "softmax", "classification", 3,
         r"^task\.loss: cross_entropy applies a softmax of its own"),
        ("nll", "sigmoid", "classification", 3,
         r"^task\.loss: nll takes log-probabilities, and a sigmoid output gives none"),
        ("bce", "identity", "classification", 3,
         r"^task\.loss: bce takes one sigmoid unit on two classes; the network has 3"),
        ("nll", "relu", "classification", 1,
         r"^model\.output_activation: one output unit after relu cannot give"),
        (None, "softmax", "regression", 1,
         r"^model\.output_activation: a regression network cannot end with softmax"),
    ],
)  # fmt: skip
def test_a_loss_that_contradicts_the_output_says_why(
    option: str | None, activation: str, kind: str, units: int, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        loss_for(option, ActivationSpec(activation, {}), kind, units, units)


def _huber() -> Any:
    """Huber loss on the standardized target."""
    from torch.nn import functional

    def huber(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return functional.huber_loss(output.reshape(target.shape), target)

    return huber


def test_a_loss_of_ones_own_trains_and_is_refused_where_it_does_not_fit() -> None:
    losses.register(
        "huber", _huber, kinds=("regression",), formula="huber_loss(output, target)"
    )
    result = train(["data=diabetes", "task.loss=huber"])["train"]
    assert (result["loss"], result["loss_formula"]) == (
        "huber",
        "huber_loss(output, target)",
    )
    assert result["val_loss"] == pytest.approx(result["history"][-1]["val_loss"])
    with pytest.raises(
        ConfigError,
        match=r"^task\.loss: huber takes regression data, and the data is "
        r"classification\.",
    ):
        train(["data=iris", "task.loss=huber"])
    with pytest.raises(
        UnknownNameError,
        match=r"^task\.loss: unknown loss 'hubr'\. Did you mean 'huber'",
    ):
        train(["data=diabetes", "task.loss=hubr"])


def test_a_loss_that_takes_one_activation_names_it() -> None:
    losses.register("on_tanh", _huber, activations=("tanh",))
    with pytest.raises(
        ConfigError,
        match=r"^task\.loss: on_tanh takes an output after tanh, and the network "
        r"ends with identity\.",
    ):
        loss_for("on_tanh", ActivationSpec("identity", {}), "regression", 1, 1)
    choice = loss_for("on_tanh", ActivationSpec("tanh", {}), "regression", 1, 1)
    assert choice == LossChoice("on_tanh", "on_tanh(output)", False)


def test_a_taken_or_badly_declared_loss_is_refused() -> None:
    with pytest.raises(RegistrationError, match=r"loss 'mse' is already registered"):
        losses.register("mse", _huber)
    with pytest.raises(RegistrationError, match=r"kinds must be some of"):
        losses.register("odd", _huber, kinds=("images",))


def test_a_schedule_of_ones_own_sets_the_rate_each_epoch() -> None:
    @schedules.register("halving")
    def halving(
        optimizer: torch.optim.Optimizer, *, epochs: int, step_size: int, gamma: float
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """The rate halved every epoch."""
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)

    assert schedules.get("halving").doc == "The rate halved every epoch."
    result = train(
        ["data=iris", "optimizer=sgd", "optimizer.lr=0.1", "task.schedule=halving"]
    )["train"]
    assert [row["lr"] for row in result["history"]] == [0.1, 0.05]
    with pytest.raises(
        UnknownNameError,
        match=r"^task\.schedule: unknown schedule 'halvng'\. Did you mean 'halving'",
    ):
        train(["data=iris", "task.schedule=halvng"])


def test_an_unknown_schedule_names_the_closest() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(
        UnknownNameError,
        match=r"^task\.schedule: unknown schedule 'cosin'\. Did you mean 'cosine'\?",
    ):
        build_schedule("cosin", optimizer, epochs=3, step_size=1, gamma=0.5)


def test_the_readme_example_registers_a_loss_and_a_schedule_that_train() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(# my_training\.py\n.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md my_training", "exec"), {})
    result = train(
        ["data=diabetes", "optimizer=sgd", "optimizer.lr=0.1", "task.loss=huber",
         "task.schedule=exponential", "task.gamma=0.9"]
    )["train"]  # fmt: skip
    assert result["loss_formula"] == "huber_loss(output, standardized target)"
    assert [row["lr"] for row in result["history"]] == pytest.approx([0.1, 0.09])
    assert losses.get("huber").doc.startswith("Huber loss")
    with pytest.raises(ConfigError, match=r"huber takes regression data, and the"):
        train(["data=iris", "task.loss=huber"])
