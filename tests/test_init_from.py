"""Issue 22's fine-tuning: ``task.init_from=<run dir>`` loads a saved run's parameters
by name (its preprocessing where the data set is the same), ``task.init_skip`` leaves
layers to the config's init, and ``task.freeze`` keeps layers' parameters bit for bit;
every mistake names the key, the value and the fix."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

import annfactory
from annfactory.errors import ConfigError
from annfactory.tasks import run_named_task


def train(overrides: list[str], output_dir: Path | None = None) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", "model=mlp", "model.width=8", *overrides])
    node = OmegaConf.to_container(cfg.task, resolve=True)
    out = io.StringIO()
    metrics = run_named_task(node, annfactory.to_spec(cfg), output_dir, out=out)
    metrics["printed"] = out.getvalue()
    return metrics


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved run on moons (2 features), shared by the tests."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    train(["data=moons", "task.epochs=3"], run_dir)
    return run_dir


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "weights.safetensors"))


def test_a_run_starts_from_the_saved_parameters_and_frozen_layers_stay(
    base: Path, tmp_path: Path
) -> None:
    metrics = train(
        ["data=moons", "task.epochs=2", f"task.init_from={base}",
         "task.freeze=[hidden1]"],
        tmp_path / "tuned",
    )  # fmt: skip
    report = metrics["init_from"]
    assert report["loaded"] == [
        "standardize.mean", "standardize.scale", "hidden1.weight", "hidden1.bias",
        "hidden2.weight", "hidden2.bias", "out.weight", "out.bias",
    ]  # fmt: skip
    assert (report["new"], report["unused"], report["skipped"]) == ([], [], [])
    assert report["preprocessing"] == "from the run"
    assert metrics["frozen"] == ["hidden1.weight", "hidden1.bias"]
    before, after = _weights(base), _weights(tmp_path / "tuned")
    for name in before:
        same = torch.equal(before[name], after[name])
        # Frozen and preprocessing tensors are the run's bit for bit; the rest trained.
        assert same == name.startswith(("hidden1.", "standardize.")), name
    assert "init_from " in metrics["printed"]
    assert "frozen: hidden1.weight, hidden1.bias (24 parameters)" in metrics["printed"]
    # The first epoch starts where the saved run ended, not from a fresh init.
    fresh = train(["data=moons", "task.epochs=2"])
    assert (
        metrics["train"]["history"][0]["train_loss"]
        < fresh["train"]["history"][0]["train_loss"]
    )


def test_another_data_set_with_as_many_features_fits_its_own_preprocessing(
    base: Path,
) -> None:
    metrics = train(["data=spirals", "task.epochs=1", f"task.init_from={base}"])
    report = metrics["init_from"]
    assert report["preprocessing"] == "fitted on this data"
    assert report["new"] == ["standardize.mean", "standardize.scale"]
    assert "hidden1.weight" in report["loaded"]


def test_another_shape_is_refused_with_both_shapes_and_the_skip(
    base: Path, tmp_path: Path
) -> None:
    overrides = ["data=moons", "task.epochs=1", f"task.init_from={base}",
                 "model.width=16"]  # fmt: skip
    with pytest.raises(ConfigError) as error:
        train(overrides)
    assert str(error.value).startswith(
        "task.init_from: parameter 'hidden1.weight' is [8, 2] in "
    )
    assert "and [16, 2] in this network" in str(error.value)
    assert "task.init_skip=[hidden1]" in str(error.value)
    skipped = train([*overrides, "task.init_skip=[hidden1,hidden2,out]"])
    report = skipped["init_from"]
    assert report["loaded"] == ["standardize.mean", "standardize.scale"]
    assert len(report["skipped"]) == 6


def test_names_on_one_side_only_are_listed(base: Path) -> None:
    deeper = train(["data=moons", "task.epochs=1", f"task.init_from={base}",
                    "model.depth=3"])["init_from"]  # fmt: skip
    assert deeper["new"] == ["hidden3.weight", "hidden3.bias"]
    shallower = train(["data=moons", "task.epochs=1", f"task.init_from={base}",
                       "model.depth=1"])["init_from"]  # fmt: skip
    assert sorted(shallower["unused"]) == ["hidden2.bias", "hidden2.weight"]


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["data=iris"], "task.init_from", "trained on 2 features, and this data has 4"),
        (["task.freeze=[hiden1]"], "task.freeze", "Did you mean 'hidden1'?"),
        (["task.freeze=hidden1"], "task.freeze", "task.freeze=[hidden1]"),
        (["task.freeze=[hidden1,hidden2,out]"], "task.freeze", "nothing would train"),
        (["task.freeze=[standardize]"], "task.freeze", "has no parameters"),
        (["task.init_skip=[outt]"], "task.init_skip", "Did you mean 'out'?"),
    ],
)
def test_fine_tuning_mistakes_are_refused(
    base: Path, overrides: list[str], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as error:
        train(["data=moons", "task.epochs=1", f"task.init_from={base}", *overrides])
    message = str(error.value)
    assert message.startswith(f"{key}: ")
    assert words in message


def test_init_from_a_directory_that_is_no_run(tmp_path: Path, base: Path) -> None:
    with pytest.raises(ConfigError, match=r"no run directory .* Did you mean"):
        train(["data=moons", f"task.init_from={base.parent / 'rn'}"])
    with pytest.raises(ConfigError, match=r"task\.init_skip: .*not set"):
        train(["data=moons", "task.init_skip=[out]"])
    with pytest.raises(ConfigError, match=r"^task\.init_from: is empty\."):
        train(["data=moons", "task.init_from= "])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^task\.init_from: "):
        train(["data=moons", f"task.init_from={tmp_path / 'empty'}"])


def test_a_run_that_fails_keeps_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 22: only a run that finishes removes its checkpoint. A loss that turns
    # infinite at epoch 3 (the loop's check, made to fail there) leaves epoch 2's.
    import annfactory.training as training

    check = training._check_finite

    def diverge_at_3(record: Any, optimizer: Any) -> None:
        if record.epoch == 3:
            record = type(record)(**{**vars(record), "train_loss": float("inf")})
        check(record, optimizer)

    monkeypatch.setattr(training, "_check_finite", diverge_at_3)
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"training diverged: the train loss of "):
        train(["data=moons", "task.epochs=5", "task.checkpoint_seconds=0"], run_dir)
    from annfactory.checkpoints import load_checkpoint

    state, _ = load_checkpoint(run_dir / "checkpoint.safetensors")
    assert (state.epoch, state.step) == (2, 0)
    assert not (run_dir / "metrics.json").exists()
