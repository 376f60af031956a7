"""``data=ucr``: a UCR/UEA set's rows as sequences [time, dimensions], its own test part
kept, validation from its train part, standardization per dimension, and the models
that take sequences sized by it."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.data import load_table, parse_data, split_three
from annfactory.layouts import SEQUENCE, layout_of
from annfactory.tasks import run_named_task


def spec_of(overrides: Sequence[str]) -> annfactory.RunSpec:
    return annfactory.to_spec(annfactory.compose(["task=train", *overrides]))


def train(overrides: Sequence[str], output_dir: Path | None = None) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", *overrides])
    spec = annfactory.to_spec(cfg)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    return run_named_task(task, spec, output_dir, out=io.StringIO())


def test_the_archives_test_part_is_the_test_split() -> None:
    data = parse_data({"name": "ucr", "dataset": "GunPoint"})
    table = load_table(data, 0)
    assert table.rows == 200
    assert table.sample_shape == (150, 1)
    assert layout_of(table.sample_shape) == SEQUENCE
    train, val, test = split_three(table, 0.2, 0.0, seed=0)
    np.testing.assert_array_equal(test, np.arange(50, 200))
    assert len(val) == 10
    assert len(train) == 40
    assert set(train) | set(val) == set(range(50))
    # Stratified: GunPoint's two classes keep their shares in validation.
    assert sorted(np.bincount(table.target[val])) == [5, 5]
    again, _, _ = split_three(table, 0.2, 0.0, seed=1)
    assert set(again) != set(train)


def test_a_test_fraction_is_refused_for_a_set_with_its_own_test_part() -> None:
    with pytest.raises(ConfigError, match=r"^data\.test_fraction: data=ucr keeps its "):
        parse_data({"name": "ucr", "dataset": "GunPoint", "test_fraction": 0.2})
    table = load_table(parse_data({"name": "ucr", "dataset": "GunPoint"}), 0)
    with pytest.raises(ConfigError, match=r"^data\.test_fraction: data=ucr keeps its "):
        split_three(table, 0.2, 0.2, seed=0)


def test_an_unknown_set_names_the_closest_and_the_list() -> None:
    with pytest.raises(ConfigError) as info:
        parse_data({"name": "ucr", "dataset": "GunPiont"})
    message = str(info.value)
    assert message.startswith("data.dataset: ")
    assert "'GunPiont'" in message
    assert "Did you mean 'GunPoint'?" in message
    assert "ItalyPowerDemand" in message


def test_the_sequence_models_take_the_sets_shape_and_classes() -> None:
    spec = spec_of(["model=lstm", "data=ucr", "data.dataset=BasicMotions"])
    assert spec.network.input_shape == (100, 6)
    assert layout_of(spec.network.input_shape) == SEQUENCE
    assert spec.network.output_shape == (4,)
    assert "model.input_shape [24,1] -> [100,6]" in " ".join(spec.notes)
    mlp = spec_of(["model=mlp", "data=ucr", "data.dataset=GunPoint"])
    assert mlp.network.input_shape == (150,)


def test_sinusoidal_positions_reach_a_long_sets_length_and_learned_ones_do_not() -> (
    None
):
    spec = spec_of(["model=transformer", "data=ucr", "data.dataset=ACSF1"])
    assert spec.network.input_shape == (1460, 1)
    (pos,) = (layer for layer in spec.network.layers if layer.name == "pos")
    assert pos.options["max_length"] == 1460
    assert "model.layers.pos.max_length 1024 -> 1460" in " ".join(spec.notes)
    long_enough = spec_of(["model=transformer", "data=ucr", "data.dataset=GunPoint"])
    assert "max_length" not in " ".join(long_enough.notes)  # 1024 >= 150 steps
    with pytest.raises(ConfigError) as refused:
        spec_of(["model=transformer", "model.layers.pos.kind=learned", "data=ucr",
                 "data.dataset=ACSF1"])  # fmt: skip
    assert refused.value.key == "model.layers.pos"
    assert "max_length 1024 is shorter than the sequence (1460 steps)" in str(
        refused.value
    )


def test_a_model_that_takes_channels_is_refused_with_the_transpose() -> None:
    conv = {"type": "conv1d", "out_channels": 4, "kernel_size": 3}
    with pytest.raises(ConfigError) as info:
        annfactory.parse_run(
            {
                "model": {
                    "input_shape": [24, 1],
                    "layers": {"conv": conv, "flat": {"type": "flatten"},
                               "out": {"type": "linear", "out_features": 2}},
                },
                "data": {"name": "ucr", "dataset": "ItalyPowerDemand"},
            }
        )  # fmt: skip
    message = str(info.value)
    assert message.startswith(
        "model.input_shape: the network's layer 'conv' (conv1d) takes [channels, "
        "length], and data=ucr has sequences [time, dimensions] of shape [24, 1]."
    )
    assert "Put a transpose layer before it" in message


@pytest.mark.heavy  # trains
def test_training_reports_the_test_part_once_and_standardizes_per_dimension(
    tmp_path: Path,
) -> None:
    overrides = [
        "model=gru",
        "model.layers.rnn.hidden_size=8",
        "data=ucr",
        "data.dataset=BasicMotions",
        "task.epochs=3",
    ]
    metrics = train(overrides, tmp_path)
    report = metrics["train"]
    assert set(report) >= {"test_accuracy", "test_loss"}
    assert 0 <= report["test_accuracy"] <= 1
    data = parse_data({"name": "ucr", "dataset": "BasicMotions"})
    table = load_table(data, 0)
    train_rows, _, _ = split_three(table, 0.2, 0.0, seed=0)
    values = table.features[train_rows].reshape(-1, 100, 6)
    network = annfactory.load_run(tmp_path)
    np.testing.assert_allclose(
        network.standardize.mean.numpy(), values.mean(axis=(0, 1)), rtol=1e-5
    )
    assert network.standardize.mean.shape == (6,)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["train"]["test_accuracy"] == report["test_accuracy"]
    # The saved network takes raw rows [N, time, dimensions].
    x = torch.as_tensor(table.features[:3].reshape(3, 100, 6), dtype=torch.float32)
    assert network(x).shape == (3, 4)


@pytest.mark.slow  # starts a process
def test_without_sktime_the_command_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "run.py"
    run_dir = tmp_path / "run"
    # sktime hidden from the process: importing it raises ImportError.
    code = (
        "import runpy, sys; sys.modules['sktime'] = None; "
        f"sys.argv = ['run.py', 'task=train', 'model=lstm', 'data=ucr', "
        f"'hydra.run.dir={run_dir}']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "data: data=ucr needs sktime (the optional extra 'sequences')" in done.stderr
    assert "Install it: pip install 'annfactory[sequences]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not run_dir.exists()


@pytest.mark.slow  # starts a process
def test_a_sweep_over_a_recurrent_layers_options_and_sets(
    run_cli: Any, tmp_path: Path
) -> None:
    import csv

    result = run_cli(
        "-m", "task=train", "model=gru", "data=ucr", "task.epochs=2",
        "data.dataset=ItalyPowerDemand,BasicMotions",
        "model.layers.rnn.hidden_size=4,8", "model.layers.rnn.bidirectional=true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with (tmp_path / "multirun" / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["ok"] * 4
    # Bidirectional GRU(D, H) + head: 2 * 3H(D + H + 2) + (2H * C + C).
    sizes = {(d, h): 2 * 3 * h * (d + h + 2) + 2 * h * c + c
             for d, c in ((1, 2), (6, 4)) for h in (4, 8)}  # fmt: skip
    assert sorted(int(row["total_params"]) for row in rows) == sorted(sizes.values())
    assert all(0 <= float(row["train.test_accuracy"]) <= 1 for row in rows)


@pytest.mark.heavy  # trains
def test_the_readme_block_predicts_a_runs_test_part_with_its_test_accuracy(
    tmp_path: Path,
) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (block,) = (
        textwrap.dedent(b)
        for b in re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
        if "load_UCR_UEA_dataset" in b
    )
    overrides = ["model=gru", "model.layers.rnn.hidden_size=8", "data=ucr",
                 "data.dataset=GunPoint", "task.epochs=3"]  # fmt: skip
    report = train(overrides, tmp_path)["train"]
    code = re.sub(r'^run = ".*?"', f"run = {str(tmp_path)!r}", block, flags=re.M)
    assert code != block
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md ucr predict", "exec", dont_inherit=True), namespace)
    predicted, labels = namespace["predicted"], namespace["labels"]
    assert len(predicted) == len(labels) == report["rows_test"] == 150
    accuracy = float(np.mean(np.asarray(predicted) == labels))
    assert accuracy == pytest.approx(report["test_accuracy"], abs=1e-9)


def test_training_checks_the_memory_of_its_own_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annfactory import factory
    from annfactory.errors import MemoryLimitError

    overrides = ["model=transformer", "data=ucr", "data.dataset=GunPoint",
                 "task.batch_size=64", "task.epochs=1"]  # fmt: skip
    spec = spec_of(overrides)
    five_rows = factory.batch_bytes(spec)  # the build's check: batch_size 5
    steps = factory.batch_bytes(dataclasses.replace(spec, batch_size=40))
    assert 4 * five_rows < steps
    # Room for the build's five rows, not for a step of 40 (GunPoint's rows).
    room = int(2 * five_rows / factory.MEMORY_HEADROOM)
    monkeypatch.setattr(factory, "available_bytes", lambda device: room)
    with pytest.raises(MemoryLimitError) as refused:
        train(overrides, tmp_path)
    assert refused.value.key == "task.batch_size"
    message = str(refused.value)
    assert "for a batch of 40 rows and its activations" in message
    assert "Use a smaller task.batch_size (at most " in message
    assert "device=meta" not in message  # training refuses it
    assert not (tmp_path / "metrics.json").exists()


def test_scoring_rows_fit_a_forward_pass_in_the_scoring_budget() -> None:
    from annfactory import factory
    from annfactory.scoring import VALIDATION_ROWS
    from annfactory.tasks import train as train_task

    def one_row(spec: annfactory.RunSpec) -> int:
        return factory.batch_bytes(dataclasses.replace(spec, batch_size=1))

    # A vector network's rows go the most at a time.
    assert train_task.scoring_rows(spec_of(["model=demo"])) == VALIDATION_ROWS
    # A transformer over PLAID's 1,344 steps keeps ~170 MB a row: a few at a time.
    long = spec_of(["model=transformer", "model.input_shape=[1344,1]",
                    "model.layers.pos.max_length=1344"])  # fmt: skip
    rows = train_task.scoring_rows(long)
    assert one_row(long) > 100e6
    assert rows == train_task.SCORING_BYTES // one_row(long)
    assert 1 <= rows < 10
    # A row beyond the budget still goes, alone.
    longer = spec_of(["model=transformer", "model.input_shape=[8000,1]",
                      "model.layers.pos.max_length=8000"])  # fmt: skip
    assert one_row(longer) > train_task.SCORING_BYTES
    assert train_task.scoring_rows(longer) == 1


@pytest.mark.heavy  # trains
def test_validation_and_test_rows_are_scored_in_chunks_of_scoring_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch.nn.modules.module import register_module_forward_pre_hook

    from annfactory.tasks import train as train_task

    overrides = ["model=gru", "model.layers.rnn.hidden_size=8", "data=ucr",
                 "data.dataset=ItalyPowerDemand", "task.epochs=2"]  # fmt: skip
    whole = train(overrides, tmp_path / "whole")["train"]
    scored: list[int] = []

    def record(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if isinstance(module, torch.nn.GRU) and not module.training:
            scored.append(args[0].shape[0])

    monkeypatch.setattr(train_task, "scoring_rows", lambda spec: 4)
    handle = register_module_forward_pre_hook(record)
    try:
        chunked = train(overrides, tmp_path / "chunked")["train"]
    finally:
        handle.remove()
    # Each epoch's 13 validation rows, then the kept weights' validation and 1,029
    # test rows: 4 at a time.
    assert max(scored) == 4
    assert sum(scored) == 2 * 13 + 13 + 1029
    assert chunked["test_accuracy"] == whole["test_accuracy"]
    assert chunked["test_loss"] == pytest.approx(whole["test_loss"], rel=1e-5)
    assert chunked["val_loss"] == pytest.approx(whole["val_loss"], rel=1e-5)
