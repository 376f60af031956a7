"""``model=cnn`` on ``data=digits``: the data's rows come as [1, 8, 8] images when the
model takes images (and stay 64-vectors for an mlp), standardized per channel; the
default recipe reaches 98 % validation accuracy; the saved network takes raw images.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.data import fit_standardization, load_table, split_rows
from annfactory.tasks import run_named_task


def train(overrides: Sequence[str], output_dir: Path | None = None) -> dict[str, Any]:
    cfg = annfactory.compose(["task=train", *overrides])
    spec = annfactory.to_spec(cfg)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    return run_named_task(task, spec, output_dir, out=io.StringIO())


@pytest.mark.heavy  # composes model=cnn with data=digits
def test_digits_come_as_images_for_a_cnn_and_as_vectors_for_an_mlp() -> None:
    cnn = annfactory.to_spec(
        annfactory.compose(["task=train", "model=cnn", "data=digits"])
    )
    assert cnn.network.input_shape == (1, 8, 8)
    assert cnn.network.output_shape == (10,)
    mlp = annfactory.to_spec(
        annfactory.compose(["task=train", "model=mlp", "data=digits"])
    )
    assert mlp.network.input_shape == (64,)


@pytest.mark.heavy  # composes model=cnn with data=digits
def test_a_null_input_shape_takes_the_datas_image_shape_or_its_features() -> None:
    images = annfactory.to_spec(
        annfactory.compose(
            ["task=train", "model=cnn", "data=digits", "model.input_shape=null"]
        )
    )
    assert images.network.input_shape == (1, 8, 8)
    layers = {"out": {"type": "linear", "out_features": 3}}
    vectors = annfactory.parse_run(
        {"model": {"input_shape": None, "layers": layers}, "data": "iris"}
    )
    assert vectors.network.input_shape == (4,)


@pytest.mark.heavy  # composes model=cnn with data=digits
def test_a_cnn_on_data_without_images_names_the_input_shape() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.input_shape: the network takes images of shape \[1, 8, 8\], "
        r"and data=iris has rows of 4 features, no images\.\n  A network for images "
        r"needs data with images: use data=digits, or model=mlp for these rows\.$",
    ):
        annfactory.to_spec(annfactory.compose(["task=train", "model=cnn", "data=iris"]))
    with pytest.raises(
        ConfigError,
        match=r"data=digits has images of shape \[1, 8, 8\]\.\n  Use "
        r"'model\.input_shape=\[1,8,8\]' if its layers fit that size",
    ):
        annfactory.to_spec(
            annfactory.compose(
                ["task=train", "model=cnn", "data=digits", "model.input_shape=[2,8,8]"]
            )
        )


def test_images_are_standardized_per_channel() -> None:
    rng = np.random.default_rng(0)
    # Two channels of 3 x 2 pixels: channel 0 around 5, channel 1 around -1.
    rows = np.concatenate(
        [rng.normal(5, 2, (50, 1, 6)), rng.normal(-1, 0.5, (50, 1, 6))], axis=1
    ).reshape(50, 12)
    stats = fit_standardization(rows, (2, 3, 2))
    channels = rows.reshape(50, 2, 6)
    np.testing.assert_allclose(stats.mean, channels.mean(axis=(0, 2)))
    np.testing.assert_allclose(stats.scale, channels.std(axis=(0, 2)))
    # A vector sample keeps one mean and scale per feature.
    assert fit_standardization(rows, (12,)).mean.shape == (12,)


@pytest.mark.heavy
def test_the_saved_cnn_takes_raw_images_and_scores_the_runs_accuracy(
    tmp_path: Path,
) -> None:
    # One epoch: what is checked is that the saved network gives the run's accuracy.
    metrics = train(["model=cnn", "data=digits", "task.epochs=1"], tmp_path)
    model = annfactory.load_run(tmp_path).eval()  # batch norm: running statistics
    standardize = model.get_submodule("standardize")
    assert standardize.mean.shape == (1, 1, 1)
    table = load_table(_data_spec(tmp_path), seed=0)
    train_index, val_index = split_rows(table, 0.2, seed=0)
    pixels = table.features[train_index]
    assert standardize.mean.item() == pytest.approx(pixels.mean())
    assert standardize.scale.item() == pytest.approx(pixels.std())
    images = torch.tensor(table.features[val_index], dtype=torch.float32)
    with torch.no_grad():
        predicted = model(images.reshape(-1, 1, 8, 8)).argmax(-1).numpy()
    accuracy = float((predicted == table.target[val_index]).mean())
    assert accuracy == pytest.approx(metrics["train"]["val_accuracy"], abs=1e-9)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["output_shape"] == [len(val_index), 10]


def _data_spec(run: Path) -> Any:
    return annfactory.load_spec(run).extras["data"]


@pytest.mark.heavy
def test_the_default_recipe_of_the_cnn_reaches_98_percent_on_digits() -> None:
    metrics = train(["model=cnn", "data=digits"])
    assert metrics["train"]["val_accuracy"] >= 0.98
