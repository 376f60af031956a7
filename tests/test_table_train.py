"""task=train on a user's table: the columns' record in spec.yaml, ``encode_table`` as
the first layer, CSV and Parquet alike, embeddings that learn.

Runs are composed like a command line and run in this process with few epochs, on the
Palmer penguins file (``tests/data/tables/penguins.csv``).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tests.test_task_train import train

import annfactory
from annfactory.columns import TableColumns
from annfactory.data import load_table, parse_data

PENGUINS = Path(__file__).parent / "data" / "tables" / "penguins.csv"


def trained(tmp_path: Path, *overrides: str, path: Path = PENGUINS) -> dict[str, Any]:
    out = io.StringIO()
    metrics = train(
        ["model=mlp", "data=csv", f"data.path={path}", "task.epochs=3", *overrides],
        tmp_path,
        out=out,
    )
    return {"metrics": metrics, "out": out.getvalue()}


def test_a_table_run_prints_its_columns_and_records_them_in_spec_yaml(
    tmp_path: Path,
) -> None:
    data = tmp_path / "penguins.csv"
    shutil.copy(PENGUINS, data)
    run = trained(
        tmp_path / "run",
        "data.target=species",
        "data.types={year: categorical}",
        "data.test_fraction=0.2",
        path=data,
    )
    out = run["out"].splitlines()
    assert out[0] == (
        "data: csv, 344 rows x 7 feature columns (17 inputs), 3 classes; 206 train / "
        "69 validation / 69 test rows"
    )
    table = [line.split() for line in out[1:9]]
    assert table[0] == ["column", "type", "fitted"]
    assert {row[0]: row[1] for row in table[1:]} == {
        "island": "categorical",
        "bill_length_mm": "numeric",
        "bill_depth_mm": "numeric",
        "flipper_length_mm": "numeric",
        "body_mass_g": "numeric",
        "sex": "categorical",
        "year": "categorical",
    }
    assert "sex categorical 2 levels, one-hot, missing -> own level" in " ".join(
        " ".join(row) for row in table
    )
    assert run["metrics"]["train"]["rows_test"] == 69
    saved = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())
    record = saved["data"]["fitted"]["columns"]
    columns = TableColumns.from_dict(record, "columns")
    assert columns.names == (
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    )
    year = columns.features[-1]
    assert (year.type, year.vocabulary) == ("categorical", ("2007", "2008", "2009"))
    assert saved["data"]["types"] == {"year": "categorical"}
    first = next(iter(saved["model"]["layers"].items()))
    assert first[0] == "encode"
    assert first[1]["type"] == "encode_table"
    assert first[1]["columns"] == record
    # The run loads without its data file: the network takes one number per column.
    node = {"name": "csv", "path": str(data), "target": "species"}
    spec = parse_data({**node, "types": {"year": "categorical"}, "test_fraction": 0.2})
    codes = load_table(spec, 0).features
    data.unlink()
    model = annfactory.load_run(tmp_path / "run")
    with torch.no_grad():
        scores = model(torch.tensor(codes))
    assert scores.shape == (344, 3)
    assert torch.isfinite(scores).all()


def test_rows_without_a_target_are_left_out_and_the_run_says_so(
    tmp_path: Path,
) -> None:
    run = trained(tmp_path, "data.target=sex")
    assert "note: 11 of 344 rows have no 'sex': left out." in run["out"]
    assert run["metrics"]["train"]["rows_train"] + run["metrics"]["train"][
        "rows_val"
    ] == (333)


def test_a_parquet_file_trains_exactly_like_its_csv(tmp_path: Path) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    parquet = tmp_path / "penguins.parquet"
    # pyarrow's own CSV defaults keep "NA" as text in a text column, as many a
    # Parquet file has it: data.na_values applies to a Parquet file's text too.
    pq.write_table(pcsv.read_csv(PENGUINS), parquet)
    from_csv = trained(tmp_path / "csv", "data.target=species")
    from_parquet = train(
        ["model=mlp", "data=parquet", f"data.path={parquet}", "data.target=species",
         "task.epochs=3"],
        tmp_path / "parquet",
    )  # fmt: skip

    def losses(metrics: dict[str, Any]) -> list[Any]:
        return [
            {k: v for k, v in row.items() if k != "seconds"}
            for row in metrics["train"]["history"]
        ]

    assert losses(from_parquet) == losses(from_csv["metrics"])
    csv_weights = load_file(tmp_path / "csv" / "weights.safetensors")
    parquet_weights = load_file(tmp_path / "parquet" / "weights.safetensors")
    assert csv_weights.keys() == parquet_weights.keys()
    for name, tensor in csv_weights.items():
        assert torch.equal(tensor, parquet_weights[name]), name


def test_embeddings_learn_and_a_regression_target_keeps_its_units(
    tmp_path: Path,
) -> None:
    options = ("data.target=body_mass_g", "data.max_onehot=2", "task.epochs=20")
    run = trained(tmp_path / "run", *options)
    assert "species            categorical  3 levels, embedding" in run["out"]
    spec = annfactory.load_spec(tmp_path / "run" / "spec.yaml")
    assert spec.extras["data"].fitted["kind"] == "regression"
    weights = load_file(tmp_path / "run" / "weights.safetensors")
    embeddings = sorted(name for name in weights if "embedding" in name)
    # One table per embedded column, named by its index: species, island, sex.
    assert embeddings == [f"encode.embedding_{i}" for i in (0, 1, 5)]
    # The same spec built afresh draws the same initial embeddings: training moved
    # them.
    initial = annfactory.build_network(spec).state_dict()
    for name in embeddings:
        assert weights[name].shape == initial[name].shape
        assert not torch.equal(weights[name], initial[name]), name
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["val_r2"] > 0.3
    # Predictions are in grams (destandardize ends the network).
    model = annfactory.load_run(tmp_path / "run")
    spec_data = parse_data({"name": "csv", "path": str(PENGUINS),
                            "target": "body_mass_g", "max_onehot": 2})  # fmt: skip
    table = load_table(spec_data, 0)
    with torch.no_grad():
        grams = model(torch.tensor(table.features))
    assert 2500 < float(grams.mean()) < 6500


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.types={yeer: categorical}", r"data\.types: no column 'yeer'"),
        ("data.types={year: categoric}", r"data\.types\.year: .*'categoric'"),
        ("data.features=[island,bil_length_mm]", r"data\.features: no column"),
        ("data.target=specis", r"data\.target: no column 'specis'.*'species'"),
    ],
)
def test_unknown_columns_and_types_name_the_key_and_the_closest(
    tmp_path: Path, override: str, message: str
) -> None:
    extra = [] if override.startswith("data.target") else ["data.target=species"]
    with pytest.raises(annfactory.ConfigError, match=message) as caught:
        trained(tmp_path, *extra, override)
    assert len(str(caught.value).splitlines()) <= 3
    assert not (tmp_path / "weights.safetensors").exists()
