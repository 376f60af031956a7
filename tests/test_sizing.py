"""The data sizes both ends of any sequential model (issue 19, annfactory.sizing).

``task=train model=demo data=iris``, ``model=resmlp data=iris`` and a model file of
one's own train without an override: the input takes the data's features, the last
linear layer the data's classes (1 for regression), with one note naming what
changed. Without data the models keep their own sizes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

import annfactory
from annfactory import ConfigError
from annfactory.tasks import run_named_task


def spec_of(overrides: Sequence[str], config_dir: Path | None = None) -> Any:
    extra = [f"hydra.searchpath=[file://{config_dir}]"] if config_dir else []
    return annfactory.to_spec(annfactory.compose([*overrides, *extra]))


def sizes(spec: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return spec.network.input_shape, spec.network.output_shape


def test_the_demo_trains_on_iris_sized_by_the_data(tmp_path: Path) -> None:
    cfg = annfactory.compose(["task=train", "model=demo", "data=iris", "task.epochs=3"])
    spec = annfactory.to_spec(cfg)
    assert sizes(spec) == ((4,), (3,))
    assert [layer.output_shape for layer in spec.network.layers] == [(3,), (2,), (3,)]
    assert spec.notes == (
        "sized for data=iris (4 features, 3 classes): model.in_features 3 -> 4, "
        "model.layers.out.out_features 2 -> 3.",
    )
    out = io.StringIO()
    task = OmegaConf.to_container(cfg.task, resolve=True)
    assert isinstance(task, dict)
    metrics = run_named_task(task, spec, tmp_path, out=out)
    lines = out.getvalue().splitlines()
    assert lines[1] == (
        "network: 4 -> linear1(3, sigmoid) -> linear2(2, relu) -> out(3, "
        "softmax(dim=-1))"
    )
    assert lines[2] == f"note: {spec.notes[0]}"
    assert metrics["train"]["epochs_run"] == 3
    # The saved run takes iris rows and gives 3 classes, and loads without a note.
    loaded = annfactory.load_spec(tmp_path / "spec.yaml")
    assert loaded.network.layers[1].input_shape == (4,)  # after standardize
    assert loaded.network.output_shape == (3,)
    assert loaded.notes == ()


def test_the_demo_without_data_keeps_its_own_sizes() -> None:
    spec = spec_of(["model=demo"])
    assert sizes(spec) == ((3,), (2,))
    assert spec.network.num_params == 26
    assert spec.notes == ()


@pytest.mark.parametrize(
    ("overrides", "shapes", "note"),
    [
        (["model=resmlp", "data=iris"], ((4,), (3,)),
         "model.in_features 64 -> 4, model.layers.out.out_features 10 -> 3."),
        (["model=resmlp", "data=digits"], ((64,), (10,)), None),
        (["model=demo", "data=diabetes", "model.layers.out.activation=identity"],
         ((10,), (1,)),
         "(10 features, 1 target): model.in_features 3 -> 10, "
         "model.layers.out.out_features 2 -> 1."),
        # One unit on two classes stays (binary cross-entropy); only the input moves.
        (["model=demo", "data=moons", "model.layers.out.out_features=1",
          "model.layers.out.activation=sigmoid"], ((2,), (1,)),
         "model.in_features 3 -> 2."),
        (["model=cnn", "data=digits"], ((1, 8, 8), (10,)), None),
        # An mlp's sizes are null: the data's, without a note.
        (["model=mlp", "data=wine"], ((13,), (3,)), None),
    ],
)  # fmt: skip
def test_the_data_sizes_a_model_s_ends(
    overrides: list[str], shapes: tuple[Any, Any], note: str | None
) -> None:
    spec = spec_of(["task=train", *overrides])
    assert sizes(spec) == shapes
    if note is None:
        assert spec.notes == ()
    else:
        assert len(spec.notes) == 1
        assert note in spec.notes[0]


def test_a_model_file_of_one_s_own_trains_on_any_data(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "own.yaml").write_text(
        "type: sequential\n"
        "in_features: 16\n"
        "layers:\n"
        "  fc1: {type: linear, out_features: 8, activation: relu}\n"
        "  norm: {type: layer_norm}\n"
        "  head: {type: linear, out_features: 4}\n"
    )
    spec = spec_of(["task=train", "model=own", "data=wine"], tmp_path)
    assert sizes(spec) == ((13,), (3,))
    assert (
        "model.in_features 16 -> 13, model.layers.head.out_features 4 -> 3"
        in (spec.notes[0])
    )


def test_a_model_without_an_input_takes_the_data_s_rows() -> None:
    vectors = {"layers": {"fc": {"type": "linear", "out_features": 3}}}
    spec = annfactory.parse_run({"model": vectors, "data": "digits"})
    # A linear first layer takes digits as 64-vectors, not as [1, 8, 8] images.
    assert sizes(spec) == ((64,), (10,))
    conv = {"type": "conv2d", "out_channels": 2, "kernel_size": 3}
    images = {
        "input_shape": None,
        "layers": {
            "conv": conv,
            "flat": {"type": "flatten"},
            "out": vectors["layers"]["fc"],
        },
    }
    spec = annfactory.parse_run({"model": images, "data": "digits"})
    assert sizes(spec) == ((1, 8, 8), (10,))


def test_an_mlp_s_size_set_on_purpose_must_agree() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.in_features: the network takes 3 inputs, and data=digits has "
        r"64 features\.\n  Set model\.in_features=64 \(or null: the data's\)\.$",
    ):
        spec_of(["task=train", "model=mlp", "data=digits", "model.in_features=3"])


def test_a_sequential_model_without_an_input_size_needs_data() -> None:
    layers = {"fc": {"type": "linear", "out_features": 3}}
    with pytest.raises(
        ConfigError,
        match=r"^model\.in_features: the model has no input size \(in_features and "
        r"input_shape are null\)\.\n  Set model\.in_features=<N>",
    ):
        annfactory.parse_run({"model": {"layers": layers}})
    with_null = {"in_features": None, "input_shape": [5], "layers": layers}
    assert annfactory.parse_run({"model": with_null}).network.input_shape == (5,)
    spec = annfactory.parse_run({"model": with_null, "data": "iris"})
    assert spec.network.input_shape == (4,)
    assert "model.input_shape [5] -> [4]" in spec.notes[0]
