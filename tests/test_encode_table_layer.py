"""The ``encode_table`` layer type (issue 21): a network's first layer for a user's
table, built from the record of its columns, which spec.yaml keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import annfactory
from annfactory import ConfigError
from annfactory.columns import Column, TableColumns
from annfactory.runs import save_run
from annfactory.spec import RunSpec, parse_run
from annfactory.table_encoding import TableEncoder

pytestmark = pytest.mark.heavy  # each test composes a model (a quarter of a second)

COLUMNS = TableColumns(
    (
        Column("bill", "numeric", median=44.0, mean=43.9, scale=5.4, indicator=True),
        Column(
            "island", "categorical", vocabulary=("Biscoe", "Dream", "Torgersen"),
            encoding="onehot",
        ),
        Column(
            "city", "categorical", vocabulary=tuple(f"c{i}" for i in range(30)),
            missing_level=True, encoding="embedding",
        ),
    )
)  # fmt: skip
ROWS = torch.tensor(
    [[40.0, 0, 3], [float("nan"), 2, -1], [50, -1, float("nan")], [45, 7, 99]]
)


def spec_with(columns: Any = None, seed: int = 0, **model: Any) -> RunSpec:
    node = annfactory.to_spec(
        annfactory.compose(["model=mlp", f"seed={seed}"])
    ).to_dict()
    node["model"]["in_features"] = 3
    node["model"] |= model
    record = COLUMNS.to_dict() if columns is None else columns
    node["model"]["layers"] = {
        "encode": {"type": "encode_table", "columns": record},
        **node["model"]["layers"],
    }
    return parse_run(node)


def test_the_layer_takes_a_column_each_and_gives_the_record_s_width() -> None:
    spec = spec_with()
    encode = spec.network.layers[0]
    assert (encode.input_shape, encode.output_shape) == ((3,), (COLUMNS.width,))
    assert COLUMNS.width == 2 + 3 + 16
    assert [(p.name, p.shape) for p in encode.parameters] == [("embedding_2", (31, 16))]
    # The next layer is sized by it.
    assert spec.network.layers[1].input_shape == (21,)
    model = annfactory.build_network(spec)
    assert isinstance(model.get_submodule("encode"), TableEncoder)
    outputs = model(ROWS)
    assert outputs.shape == (4, 2)
    assert torch.isfinite(outputs).all()


def test_the_embedding_starts_as_torch_s_normal_drawn_from_its_own_stream() -> None:
    first = annfactory.build_network(spec_with(seed=3)).get_submodule("encode")
    again = annfactory.build_network(spec_with(seed=3)).get_submodule("encode")
    other = annfactory.build_network(spec_with(seed=4)).get_submodule("encode")
    table = first.embedding_2.detach()
    assert torch.equal(table, again.embedding_2)
    assert not torch.equal(table, other.embedding_2)
    assert abs(float(table.mean())) < 0.15
    assert float(table.std()) == pytest.approx(1.0, abs=0.15)
    # The fitted values are the record's, not a reset's zeros and ones.
    assert first.median.tolist() == [44.0]
    assert first.scale.tolist() == pytest.approx([5.4])


def test_a_saved_run_keeps_its_columns_in_spec_yaml_and_loads_without_data(
    tmp_path: Path,
) -> None:
    spec = spec_with(seed=1)
    model = annfactory.build_network(spec)
    save_run(tmp_path, spec, model)
    text = (tmp_path / "spec.yaml").read_text(encoding="utf-8")
    assert "type: encode_table" in text
    assert "- Torgersen" in text
    loaded = annfactory.load_run(tmp_path)
    assert torch.equal(loaded(ROWS), model(ROWS))
    assert parse_run(spec.to_dict()) == spec


def test_a_dry_run_counts_the_embedding_without_memory() -> None:
    spec = spec_with()
    meta = annfactory.build_network(parse_run({**spec.to_dict(), "device": "meta"}))
    table = meta.get_submodule("encode").embedding_2
    assert table.is_meta
    assert table.numel() == 31 * 16


def test_an_input_that_is_not_a_column_each_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"one number per column of the table, \[3\]"):
        spec_with(in_features=4)


def test_a_damaged_record_is_refused_by_name() -> None:
    record = COLUMNS.to_dict()
    record["features"][1]["encoding"] = "hashing"
    with pytest.raises(ConfigError, match="'hashing' is not an encoding") as raised:
        spec_with(record)
    assert "model.layers.encode" in raised.value.key
    with pytest.raises(ConfigError, match="is not a mapping") as raised:
        spec_with("island")
    assert raised.value.key == "model.layers.encode.columns"
