"""The data sets of task=train: the ``data`` registry, its options, the CSV reader,
the seeded split and the standardization (``annfactory.data``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from annfactory import ConfigError, RegistrationError, UnknownNameError
from annfactory.config import conf_dir
from annfactory.data import (
    DataSet,
    DataSpec,
    Table,
    data_sizes,
    datasets,
    fit_standardization,
    load_table,
    parse_data,
    split_rows,
    split_three,
)
from annfactory.groups import groups
from annfactory.params import REQUIRED, Param

DATA_CONF = conf_dir() / "data"

#: A small CSV file of mixed columns: two features, a text class and a number.
PEOPLE = """age,height,species,score
31,1.80,cat,0.5
25,1.65,dog,1.5
47,1.72,cat,2.0
52,1.90,bird,2.5
19,1.55,dog,3.5
38,1.70,bird,4.0
44,1.85,cat,4.5
29,1.60,dog,5.5
33,1.75,bird,6.0
61,1.68,cat,6.5
"""


@pytest.fixture(autouse=True)
def restore_datasets() -> Iterator[None]:
    """Tests that register data sets leave no trace."""
    saved = datasets.snapshot()
    yield
    datasets.restore(saved)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_spec(path: str, target: str = "species", **options: Any) -> DataSpec:
    return parse_data({"name": "csv", "path": path, "target": target, **options})


def node_for(name: str, tmp_path: Path) -> dict[str, Any]:
    """A ``data`` node of every option: a user's table gets a file of its own."""
    if name == "csv":
        return {"name": "csv", "path": write(tmp_path, PEOPLE), "target": "species"}
    if name == "parquet":
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        path = tmp_path / "people.parquet"
        pq.write_table(pcsv.read_csv(write(tmp_path, PEOPLE)), path)
        return {"name": "parquet", "path": str(path), "target": "species"}
    if name == "series":
        values = "\n".join(str(i % 9) for i in range(60))
        path = write(tmp_path, f"sales\n{values}\n", "series.csv")
        return {"name": "series", "path": path, "column": "sales", "window": 12}
    return {"name": name}


# ------------------------------------------------------------------------------------
# Every registered data set
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", datasets.names())
def test_every_data_set_loads_a_valid_table(name: str, tmp_path: Path) -> None:
    spec = parse_data(node_for(name, tmp_path))
    table = load_table(spec, seed=0)
    assert data_sizes(spec, seed=0) == (table.input_width, table.n_outputs, table.kind)
    assert table.name == name
    # A user's table: one float32 code per column (NaN where missing), and its
    # columns' record; the network's first layer encodes them.
    user = name in ("csv", "parquet")
    assert table.features.dtype == (np.float32 if user else np.float64)
    assert (table.columns is not None) == user
    assert table.features.shape == (table.rows, table.n_features)
    assert np.isfinite(table.features).all()
    assert len(table.feature_names) == table.n_features
    assert table.rows >= 10
    assert not table.features.flags.writeable
    if table.kind == "classification":
        assert table.class_names is not None
        assert table.target.dtype == np.int64
        # Every class occurs, and no index is out of range.
        assert sorted(set(table.target.tolist())) == list(range(table.n_outputs))
    else:
        assert table.kind == "regression"
        assert table.class_names is None
        assert table.n_outputs == 1
        assert table.target.dtype == np.float64
        assert np.isfinite(table.target).all()
    if datasets.get(name).kind is not None:
        assert table.kind == datasets.get(name).kind


@pytest.mark.parametrize("name", datasets.names())
def test_a_data_spec_round_trips_through_to_dict(name: str, tmp_path: Path) -> None:
    spec = parse_data(node_for(name, tmp_path))
    again = parse_data(spec.to_dict())
    assert again == spec
    assert yaml.safe_load(yaml.safe_dump(spec.to_dict())) == spec.to_dict()
    assert spec.to_dict()["val_fraction"] == 0.2


@pytest.mark.parametrize("name", datasets.names())
def test_every_data_set_has_a_yaml_option_with_its_defaults(name: str) -> None:
    node = yaml.safe_load((DATA_CONF / f"{name}.yaml").read_text())
    entry = datasets.get(name)
    assert node["name"] == name
    assert set(node) == {"name", *entry.option_names}
    for option, param in entry.params.items():
        expected = "???" if param.default is REQUIRED else param.default
        assert node[option] == expected, option
    assert node["val_fraction"] == 0.2
    if name not in ("csv", "parquet", "series"):  # each needs a file
        assert parse_data(node) == parse_data(name)


def test_the_yaml_options_are_the_registered_data_sets() -> None:
    assert sorted(path.stem for path in DATA_CONF.glob("*.yaml")) == datasets.names()


def test_the_bundled_sets_have_the_documented_sizes_and_class_names() -> None:
    sizes = {
        name: (table.rows, table.n_features, table.n_outputs)
        for name in ("digits", "iris", "wine", "breast_cancer", "diabetes")
        for table in [load_table(parse_data(name), 0)]
    }
    assert sizes == {
        "digits": (1797, 64, 10),
        "iris": (150, 4, 3),
        "wine": (178, 13, 3),
        "breast_cancer": (569, 30, 2),
        "diabetes": (442, 10, 1),
    }
    assert load_table(parse_data("digits"), 0).class_names == tuple("0123456789")
    assert load_table(parse_data("iris"), 0).class_names == (
        "setosa",
        "versicolor",
        "virginica",
    )
    # Raw features in their own units: the run standardizes them itself.
    ages = load_table(parse_data("diabetes"), 0).features[:, 0]
    assert ages.min() >= 18
    assert ages.max() <= 80


def test_importing_the_module_imports_no_numpy_torch_or_sklearn() -> None:
    code = (
        "import sys, annfactory.data; "
        "print(sorted({'numpy', 'torch', 'sklearn'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------
# Generated data sets
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["moons", "spirals"])
def test_generated_sets_are_drawn_from_the_seed(name: str) -> None:
    spec = parse_data({"name": name, "n_samples": 200})
    first, again, other = (load_table(spec, seed) for seed in (3, 3, 4))
    assert np.array_equal(first.features, again.features)
    assert np.array_equal(first.target, again.target)
    assert not np.allclose(first.features, other.features)
    assert first.rows == 200
    assert first.n_features == 2
    assert np.bincount(first.target).tolist() == [100, 100]


def test_noise_moves_the_points_off_the_curves() -> None:
    clean = load_table(parse_data({"name": "moons", "noise": 0.0}), 0)
    noisy = load_table(parse_data({"name": "moons", "noise": 0.3}), 0)
    # Without noise every point lies on a unit circle around its moon's centre.
    centres = np.where(clean.target[:, None] == 0, [0.0, 0.0], [1.0, 0.5])
    radii = np.linalg.norm(clean.features - centres, axis=1)
    assert np.allclose(radii, 1.0)
    noisy_radii = np.linalg.norm(
        noisy.features - np.where(noisy.target[:, None] == 0, [0, 0], [1, 0.5]), axis=1
    )
    assert 0.1 < np.std(noisy_radii) < 0.5


def test_spirals_are_arms_of_growing_radius_and_angle() -> None:
    spec = parse_data({"name": "spirals", "n_classes": 3, "noise": 0.0})
    table = load_table(spec, 0)
    assert table.n_outputs == 3
    assert table.class_names == ("0", "1", "2")
    assert np.bincount(table.target).tolist() == [334, 333, 333]
    radius = np.linalg.norm(table.features, axis=1)
    assert radius.max() <= 1.0
    angle = np.arctan2(table.features[:, 1], table.features[:, 0])
    # Without noise, each point's angle is its arm's offset plus 1.25 turns * radius.
    expected = 2 * np.pi * (table.target / 3 + 1.25 * radius)
    assert np.allclose(np.angle(np.exp(1j * (angle - expected))), 0, atol=1e-9)


def test_spirals_need_a_row_per_arm() -> None:
    with pytest.raises(ConfigError, match=r"data\.n_samples: 3 rows cannot fill 4"):
        parse_data({"name": "spirals", "n_samples": 3, "n_classes": 4})


# ------------------------------------------------------------------------------------
# Parsing the data node
# ------------------------------------------------------------------------------------


def test_a_bare_name_is_the_data_set_with_its_defaults() -> None:
    assert parse_data("moons") == DataSpec(
        "moons", {"n_samples": 1000, "noise": 0.1}, 0.2
    )


def test_an_unknown_data_set_names_the_closest_and_lists_them() -> None:
    with pytest.raises(UnknownNameError, match=r"data\.name: unknown data set 'digts'"):
        parse_data("digts")
    with pytest.raises(UnknownNameError, match=r"Did you mean 'digits'\?") as caught:
        parse_data({"name": "digts"})
    assert (
        "breast_cancer, csv, diabetes, digits, iris, moons, parquet, series, spirals, "
        "ucr, wine" in str(caught.value)
    )


def test_an_unknown_option_names_the_closest() -> None:
    with pytest.raises(
        UnknownNameError, match=r"data\.n_sample: .*Did you mean 'n_samples'\?"
    ):
        parse_data({"name": "moons", "n_sample": 10})
    with pytest.raises(UnknownNameError, match=r"data\.noise: .*for data set 'iris'"):
        parse_data({"name": "iris", "noise": 0.1})


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, 0.0, 1.0])
def test_val_fraction_must_lie_strictly_between_0_and_1(value: float) -> None:
    with pytest.raises(ConfigError, match=r"data\.val_fraction: .*\(0, 1\)") as caught:
        parse_data({"name": "iris", "val_fraction": value})
    assert len(str(caught.value).splitlines()) <= 3


def test_val_fraction_must_be_a_number() -> None:
    with pytest.raises(ConfigError, match=r"data\.val_fraction: 'half' is not a"):
        parse_data({"name": "iris", "val_fraction": "half"})
    assert parse_data({"name": "iris", "val_fraction": 0.5}).val_fraction == 0.5


def test_option_values_are_checked_with_their_path() -> None:
    with pytest.raises(ConfigError, match=r"data\.noise: -0\.1 is out of range"):
        parse_data({"name": "moons", "noise": -0.1})
    with pytest.raises(ConfigError, match=r"data\.n_samples: 1 is out of range"):
        parse_data({"name": "moons", "n_samples": 1})
    with pytest.raises(ConfigError, match=r"data\.n_classes: 2\.5 is not an integer"):
        parse_data({"name": "spirals", "n_classes": 2.5})


def test_csv_needs_a_path_and_a_target() -> None:
    with pytest.raises(ConfigError, match=r"data\.path: data set 'csv' needs 'path'"):
        parse_data({"name": "csv", "target": "y"})
    with pytest.raises(ConfigError, match=r"data\.target: data set 'csv' needs"):
        parse_data({"name": "csv", "path": "a.csv"})


@pytest.mark.parametrize(
    ("features", "message"),
    [
        ([], r"data\.features: the list of columns is empty"),
        (["age", "age"], r"data\.features: column 'age' is listed twice"),
        ("age", r"data\.features: 'age' is not a list of column names"),
        ([1.5], r"data\.features: 1\.5 is not a column name"),
    ],
)
def test_csv_features_is_a_list_of_distinct_names(features: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        csv_spec("a.csv", features=features)


def test_csv_kind_is_classification_regression_or_null() -> None:
    with pytest.raises(ConfigError, match=r"data\.kind: .*Did you mean 'regression'"):
        csv_spec("a.csv", kind="regresion")
    assert csv_spec("a.csv", kind=None).options["kind"] is None
    # An integer column name (data.target=3 on the command line) is a name.
    assert csv_spec("a.csv", target=3, features=[1, "b"]).options == {
        "path": "a.csv",
        "target": "3",
        "features": ("1", "b"),
        "types": None,
        "kind": None,
        "delimiter": ",",
        "na_values": None,
        "max_onehot": 16,
        "min_frequency": 1,
    }


def test_the_override_check_knows_val_fraction_through_the_option_names() -> None:
    group = groups.get("data")
    group.check_option_keys("moons", ["name", "val_fraction", "noise"], "data")
    with pytest.raises(UnknownNameError, match=r"data\.val_fractoin: .*'val_fraction'"):
        group.check_option_keys("moons", ["val_fractoin"], "data")


def test_a_package_registers_a_data_set_with_the_decorator() -> None:
    @datasets.register(
        "line", kind="regression", params={"rows": Param(int, 10, "rows", low=2)}
    )
    def line(options: Mapping[str, Any], seed: int) -> Table:
        """A straight line."""
        x = np.arange(options["rows"], dtype=float)
        return Table("line", "regression", x[:, None], 2 * x, ("x",))

    entry = datasets.get("line")
    assert isinstance(entry, DataSet)
    assert entry.doc == "A straight line."
    table = load_table(parse_data({"name": "line", "rows": 5}), 0)
    assert table.target.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert data_sizes(parse_data("line"), 0) == (1, 1, "regression")


def test_a_malformed_data_set_is_refused_at_registration() -> None:
    def load(options: Mapping[str, Any], seed: int) -> Table:
        raise AssertionError("never loaded")

    with pytest.raises(RegistrationError, match=r"'bad': data set kind 'images'"):
        datasets.register("bad", load, kind="images")
    with pytest.raises(RegistrationError, match=r"'bad': .*declare in params: rows"):
        datasets.register("bad", load, checks={"rows": lambda value, key: value})
    with pytest.raises(RegistrationError, match=r"'bad': expected a load function"):
        datasets.register("bad", 42)
    with pytest.raises(RegistrationError, match=r"data set 'csv' is already"):
        datasets.register("csv", load)
    assert "bad" not in datasets


def test_a_table_that_breaks_the_contract_is_refused() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        Table("t", "regression", [[1.0], [np.nan]], [1.0, 2.0], ("x",))
    with pytest.raises(ValueError, match=r"class indices outside \[0, 2\)"):
        Table("t", "classification", [[1.0], [2.0]], [0, 2], ("x",), ("a", "b"))
    with pytest.raises(ValueError, match="one feature name per column"):
        Table("t", "regression", [[1.0], [2.0]], [1.0, 2.0], ("x", "y"))


# ------------------------------------------------------------------------------------
# The split
# ------------------------------------------------------------------------------------


def test_the_split_partitions_the_rows_from_the_seed() -> None:
    table = load_table(parse_data("digits"), 0)
    train, val = split_rows(table, 0.2, seed=0)
    assert train.dtype == val.dtype == np.int64
    assert len(val) == round(1797 * 0.2)
    assert len(train) == 1797 - len(val)
    assert sorted([*train.tolist(), *val.tolist()]) == list(range(1797))
    again = split_rows(table, 0.2, seed=0)
    assert np.array_equal(again[0], train)
    assert np.array_equal(again[1], val)
    other = split_rows(table, 0.2, seed=1)
    assert not np.array_equal(np.sort(other[1]), np.sort(val))
    # Shuffled, not in file order.
    assert not np.array_equal(np.sort(train), train)


def test_the_split_is_stratified_for_classification() -> None:
    table = load_table(parse_data("digits"), 0)
    for seed in range(3):
        _, val = split_rows(table, 0.2, seed)
        counts = np.bincount(table.target, minlength=10)
        in_val = np.bincount(table.target[val], minlength=10)
        assert np.all(np.abs(in_val - counts * len(val) / 1797) < 1)


def test_the_regression_split_takes_the_first_rows_of_the_permutation() -> None:
    table = load_table(parse_data("diabetes"), 0)
    train, val = split_rows(table, 0.25, seed=5)
    assert len(val) == round(442 * 0.25)
    assert len(set(train.tolist()) | set(val.tolist())) == 442


def test_every_class_keeps_a_training_row(tmp_path: Path) -> None:
    # 3 rows of a, one each of b and c: 0.4 of 5 rows is 2 validation rows, which
    # must both come from a.
    text = "x,y\n1,a\n2,a\n3,a\n4,b\n5,c\n"
    table = load_table(csv_spec(write(tmp_path, text), "y"), 0)
    for seed in range(5):
        train, val = split_rows(table, 0.4, seed)
        assert sorted(table.target[val].tolist()) == [0, 0]
        assert set(table.target[train].tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (0.001, r"data\.val_fraction: 0\.001 of 150 rows rounds to no validation"),
        (0.999, r"data\.val_fraction: 0\.999 of 150 rows leaves no training row"),
    ],
)
def test_a_set_too_small_for_the_split_is_an_error(
    fraction: float, message: str
) -> None:
    table = load_table(parse_data("iris"), 0)
    with pytest.raises(ConfigError, match=message):
        split_rows(table, fraction, seed=0)


def test_a_class_without_a_training_row_is_an_error(tmp_path: Path) -> None:
    table = load_table(csv_spec(write(tmp_path, "x,y\n1,a\n2,a\n3,b\n4,c\n"), "y"), 0)
    with pytest.raises(
        ConfigError,
        match=r"data\.val_fraction: 0\.5 of 4 rows leaves 2 training rows for 3 "
        r"classes",
    ):
        split_rows(table, 0.5, seed=0)


# ------------------------------------------------------------------------------------
# Standardization
# ------------------------------------------------------------------------------------


def test_standardization_gives_mean_0_and_std_1_on_the_rows_it_was_fitted_on() -> None:
    table = load_table(parse_data("wine"), 0)
    train, _ = split_rows(table, 0.2, 0)
    fitted = fit_standardization(table.features[train])
    scaled = fitted.transform(table.features[train])
    assert np.allclose(scaled.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(scaled.std(axis=0), 1)
    assert np.allclose(fitted.inverse(scaled), table.features[train])
    assert fitted.to_dict()["mean"] == pytest.approx(
        table.features[train].mean(axis=0).tolist()
    )


def test_constant_columns_are_left_unscaled() -> None:
    values = np.array([[1.0, 5.0, 0.1], [2.0, 5.0, 0.1], [4.0, 5.0, 0.1]])
    fitted = fit_standardization(values)
    assert fitted.scale.tolist()[1:] == [1.0, 1.0]
    assert fitted.transform(values)[:, 1:].tolist() == [[0.0, 0.0]] * 3
    assert fitted.scale[0] == pytest.approx(np.std([1.0, 2.0, 4.0]))


def test_standardization_of_one_column_of_targets() -> None:
    fitted = fit_standardization([1.0, 2.0, 3.0, 6.0])
    assert fitted.to_dict() == {"mean": [3.0], "scale": [pytest.approx(1.8708287)]}
    assert fitted.inverse(fitted.transform([6.0])).tolist() == [6.0]
    with pytest.raises(ValueError, match="cannot standardize"):
        fit_standardization(np.zeros((0, 2)))


# ------------------------------------------------------------------------------------
# CSV files: what is read
# ------------------------------------------------------------------------------------


def test_a_text_target_keeps_its_class_names(tmp_path: Path) -> None:
    table = load_table(csv_spec(write(tmp_path, PEOPLE)), 0)
    assert table.kind == "classification"
    assert table.class_names == ("bird", "cat", "dog")
    assert table.target.tolist() == [1, 2, 1, 0, 2, 0, 1, 2, 0, 1]
    assert table.feature_names == ("age", "height", "score")
    assert table.features[0].tolist() == pytest.approx([31.0, 1.80, 0.5])


def test_chosen_features_in_the_order_given(tmp_path: Path) -> None:
    spec = csv_spec(write(tmp_path, PEOPLE), features=["height", "age"])
    table = load_table(spec, 0)
    assert table.feature_names == ("height", "age")
    assert table.features[1].tolist() == pytest.approx([1.65, 25.0])


def test_the_kind_is_inferred_from_the_target(tmp_path: Path) -> None:
    path = write(tmp_path, PEOPLE)
    spec = csv_spec(path, "score", features=["age", "height"])
    assert load_table(spec, 0).kind == "regression"
    assert load_table(csv_spec(path, "species"), 0).kind == "classification"
    labels = "x,label\n" + "".join(f"{i},{i % 3}\n" for i in range(12))
    table = load_table(csv_spec(write(tmp_path, labels, "l.csv"), "label"), 0)
    assert table.kind == "classification"
    assert table.class_names == ("0", "1", "2")
    # Many distinct integers: a count, not a class.
    counts = "x,count\n" + "".join(f"{i},{i * 7}\n" for i in range(30))
    assert load_table(csv_spec(write(tmp_path, counts, "c.csv"), "count"), 0).kind == (
        "regression"
    )
    spec = csv_spec(write(tmp_path, labels, "l2.csv"), "label", kind="regression")
    assert load_table(spec, 0).target.dtype == np.float64


def test_numeric_class_labels_are_sorted_by_number(tmp_path: Path) -> None:
    text = "x,y\n1,10\n2,2\n3,10.0\n4,-1\n5,2.5\n"
    table = load_table(csv_spec(write(tmp_path, text), "y", kind="classification"), 0)
    assert table.class_names == ("-1", "2", "2.5", "10")
    assert table.target.tolist() == [3, 1, 3, 0, 2]


def test_a_utf8_byte_order_mark_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffx,y\r\n1,a\r\n\r\n2,b\r\n3,a\r\n4,b\r\n5,a\r\n".encode())
    table = load_table(csv_spec(str(path), "y"), 0)
    assert table.feature_names == ("x",)
    assert table.rows == 5


def test_a_relative_path_starts_at_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, PEOPLE, "people.csv")
    monkeypatch.chdir(tmp_path)
    assert load_table(csv_spec("people.csv"), 0).rows == 10


def test_a_file_is_read_once_for_sizes_and_table_and_again_when_it_changes(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, PEOPLE)
    spec = csv_spec(path)
    assert data_sizes(spec, 0) == (3, 3, "classification")
    table = load_table(spec, 0)
    assert load_table(spec, 0) is table
    Path(path).write_text(PEOPLE + "40,1.7,fish,7.0\n", encoding="utf-8")
    assert load_table(spec, 0).class_names == ("bird", "cat", "dog", "fish")


def test_cells_are_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "evaluated"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path = write(tmp_path, f'x,y\n"{code}",a\n"{code}",b\nz,a\nz,b\n' * 3)
    table = load_table(csv_spec(path, "y"), 0)
    assert table.columns is not None
    assert code in table.columns.features[0].vocabulary  # text, a level like any
    assert not marker.exists()


# ------------------------------------------------------------------------------------
# CSV files: every bad input
# ------------------------------------------------------------------------------------


def load_error(path: str, target: str = "species", **options: Any) -> str:
    """The message of the ConfigError that loading the file raises (<= 3 lines)."""
    with pytest.raises(ConfigError) as caught:
        load_table(csv_spec(path, target, **options), 0)
    message = str(caught.value)
    assert len(message.splitlines()) <= 3, message
    return message


def test_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    message = load_error("nothere.csv")
    assert message.startswith("data.path: no file 'nothere.csv' (relative to ")
    assert str(tmp_path) in message


def test_a_directory_instead_of_a_file(tmp_path: Path) -> None:
    assert "is a directory." in load_error(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("", "is empty."),
        ("\n\n  \n", "has no header row: its first line that is not empty holds "
         "spaces only."),
    ],
)  # fmt: skip
def test_an_empty_file(tmp_path: Path, text: str, what: str) -> None:
    path = write(tmp_path, text)
    assert load_error(path) == (
        f"data.path: {path!r} {what}\n  A table needs a header row (the column "
        "names), then one row per sample."
    )


def test_a_header_without_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "age,species\n")
    assert f"data.path: {path!r} has a header row but no data rows" in load_error(path)


def test_a_missing_target_column_names_the_columns(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PEOPLE), "specie")
    assert "data.target: no column 'specie' in" in message
    assert "Did you mean 'species'?" in message
    assert "Its columns: age, height, species, score." in message


def test_a_long_header_is_listed_in_part(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(30))
    path = write(tmp_path, header + "\n" + ",".join("1" * 30) + "\n")
    assert "c11, ... (30 in all)." in load_error(path, "label")


def test_a_missing_feature_column(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PEOPLE), features=["age", "hieght"])
    assert "data.features: no column 'hieght' in" in message
    assert "Did you mean 'height'?" in message


def test_the_target_among_the_features(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PEOPLE), features=["age", "species"])
    assert message.startswith("data.features: lists the target column 'species'.")


def test_a_file_with_only_the_target_column(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "species\ncat\ndog\n"))
    assert message.startswith("data.features: ")
    assert "no column besides the target 'species'" in message


def test_a_non_numeric_feature_cell_names_its_row_and_column(tmp_path: Path) -> None:
    lines = PEOPLE.splitlines()
    lines[6] = "abc,1.70,bird,4.0"  # the 7th line of the file
    message = load_error(write(tmp_path, "\n".join(lines) + "\n"))
    # A column of numbers but for one text cell: refused, with both fixes.
    assert message.startswith(
        "data.path: column 'age' holds numbers, but 'abc' in row 7 is not one "
    )
    assert "the header is row 1" in message
    assert "'data.types={age: categorical}'" in message
    assert '"None","?","abc"]' in message


def test_rows_are_counted_as_editor_lines_past_quoted_line_breaks(
    tmp_path: Path,
) -> None:
    text = 'x,y\n1,"two\nlines"\n2,b\nzz,c\n'
    assert "column 'x' holds numbers, but 'zz' in row 5 " in load_error(
        write(tmp_path, text), "y"
    )


@pytest.mark.parametrize("cell", ["", "NA", "nan", "NaN", "?", "null", '""'])
def test_missing_markers_are_missing_values_that_the_network_fills_in(
    tmp_path: Path, cell: str
) -> None:
    lines = PEOPLE.splitlines()
    lines[3] = f"47,{cell},cat,2.0"  # data row 3
    table = load_table(csv_spec(write(tmp_path, "\n".join(lines) + "\n")), 0)
    assert table.columns is not None
    height = table.columns.features[1]
    assert np.isnan(table.features[2, 1])
    assert np.isfinite(np.delete(table.features[:, 1], 2)).all()
    # The training split had the missing cell: an indicator input joins it.
    assert height.indicator == (2 in split_three(table, 0.2, 0.0, 0)[0])


def test_data_na_values_replaces_the_missing_markers(tmp_path: Path) -> None:
    lines = PEOPLE.splitlines()
    lines[3] = "47,-,cat,2.0"
    path = write(tmp_path, "\n".join(lines) + "\n")
    table = load_table(csv_spec(path, na_values=["-"]), 0)
    assert np.isnan(table.features[2, 1])


def test_an_infinite_feature_cell_is_refused(tmp_path: Path) -> None:
    lines = PEOPLE.splitlines()
    lines[3] = "47,-inf,cat,2.0"
    message = load_error(write(tmp_path, "\n".join(lines) + "\n"))
    assert "column 'height' holds -inf" in message


def test_a_row_with_the_wrong_number_of_cells(tmp_path: Path) -> None:
    path = write(tmp_path, PEOPLE + "40,1.7,cat\n")
    assert load_error(path).startswith(
        f"data.path: {path!r}, row 12 has 3 cells, but the header has 4 columns."
    )


def test_a_class_target_with_a_single_class(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "x,y\n1,cat\n2,cat\n3,cat\n"), "y")
    assert message.startswith(
        "data.target: column 'y' holds one class only ('cat'); a classification "
        "needs at least two."
    )


def test_rows_without_a_target_are_left_out_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, "x,y\n1,cat\n2,\n3,dog\n4,NA\n" + "5,cat\n6,dog\n" * 3)
    table = load_table(csv_spec(path, "y"), 0)
    assert table.rows == 8
    assert table.notes == ("2 of 10 rows have no 'y': left out.",)
    path = write(tmp_path, "x,y\n1,0.5\n2,nan\n" + "3,1.5\n4,2.5\n" * 3, "n.csv")
    table = load_table(csv_spec(path, "y", kind="regression"), 0)
    assert table.rows == 7
    assert np.isfinite(table.target).all()


def test_a_regression_target_with_text(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, PEOPLE), kind="regression")
    assert message.startswith(
        "data.target: column 'species' holds 'cat' in row 2: not a number, and "
        "data.kind is regression."
    )
    assert "data.kind=classification" in message


def test_a_constant_regression_target(tmp_path: Path) -> None:
    path = write(tmp_path, "x,y\n1,2.5\n2,2.5\n3,2.5\n")
    assert "column 'y' holds the same value in every row" in load_error(
        path, "y", kind="regression"
    )


def test_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("x,city\n1,Köln\n2,Paris\n".encode("latin-1"))
    message = load_error(str(path), "city")
    assert "is not UTF-8 text: byte 0xf6 in row 2" in message
    assert "CSV UTF-8" in message


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (",x,y", r"column 1 of the header row has no name\.\n.*index=False"),
        ("x,y,x", r"the header names column 'x' twice"),
    ],
)
def test_a_bad_header(tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path, f"{header}\n1,2,a\n2,3,b\n")
    assert re.search(message, load_error(path, "y"))


def test_a_nul_byte_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"x,y\n1,a\n2\x00,b\n")
    assert "holds a NUL character in row 3: it is not a text file" in load_error(
        str(path), "y"
    )
