"""Issue 21: reading a user's table (annfactory.table_reading) and turning it into a
network's inputs (annfactory.table_fitting): types, fitted values, codes.

The files are under tests/data/tables/ (README.md there names their sources)."""

from __future__ import annotations

import csv
import gzip
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from annfactory.columns import UNSEEN_CODE, Column, TableColumns
from annfactory.errors import ConfigError
from annfactory.table_fitting import (
    OTHER_LEVEL,
    describe_columns,
    encode_cells,
    fit_columns,
    infer_types,
    na_values_override,
    target_column,
    types_override,
)
from annfactory.table_reading import NA_VALUES, file_row, read_table

TABLES = Path(__file__).parent / "data" / "tables"
PENGUINS = TABLES / "penguins.csv"
PENGUIN_NUMBERS = (
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
)


def all_rows(table: pa.Table) -> np.ndarray:
    return np.arange(table.num_rows)


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


# ------------------------------------------------------------------------------------
# Palmer penguins
# ------------------------------------------------------------------------------------


def test_penguins_types_and_missing_counts_match_the_file() -> None:
    table = read_table(PENGUINS)
    with PENGUINS.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert table.num_rows == len(rows) == 344
    for name in table.column_names:
        expected = sum(row[name] == "NA" for row in rows)
        assert table.column(name).null_count == expected, name
    # The file's own counts: 2 rows without measurements, 11 without sex.
    assert table.column("sex").null_count == 11
    assert table.column("bill_length_mm").null_count == 2

    types, ignored, notes = infer_types(
        table, target="species", features=None, types={}
    )
    assert types == {
        "island": "categorical",
        **dict.fromkeys(PENGUIN_NUMBERS, "numeric"),
        "sex": "categorical",
        "year": "numeric",
    }
    assert list(types) == [n for n in table.column_names if n != "species"]
    assert ignored == {}
    assert notes == []


def test_penguins_fit_and_encode() -> None:
    table = read_table(PENGUINS)
    types, ignored, _ = infer_types(
        table, target="species", features=None, types={"year": "categorical"}
    )
    assert types["year"] == "categorical"
    # Every other row trains: rows 3 and 271, without measurements, among them.
    rows = np.arange(1, 344, 2)
    assert table.column("body_mass_g").take(pa.array(rows)).null_count == 2
    columns = fit_columns(table, types, rows=rows, ignored=ignored)
    by_name = {column.name: column for column in columns.features}
    mass = np.array(
        [
            float(v) if v is not None else np.nan
            for v in table.column("body_mass_g").take(pa.array(rows)).to_pylist()
        ]
    )
    body = by_name["body_mass_g"]
    assert body.median == pytest.approx(np.nanmedian(mass))
    filled = np.where(np.isnan(mass), np.nanmedian(mass), mass)
    assert body.mean == pytest.approx(filled.mean())
    assert body.scale == pytest.approx(filled.std())
    assert body.indicator is True
    even = fit_columns(table, types, rows=np.arange(0, 344, 2), ignored=ignored)
    assert even.features[columns.names.index("body_mass_g")].indicator is False
    assert by_name["island"].vocabulary == ("Biscoe", "Dream", "Torgersen")
    assert by_name["island"].missing_level is False
    assert by_name["sex"].vocabulary == ("female", "male")
    assert by_name["sex"].missing_level is True
    assert by_name["year"].vocabulary == ("2007", "2008", "2009")
    assert by_name["year"].encoding == "onehot"

    inputs, unseen = encode_cells(table, columns)
    assert inputs.dtype == np.float32
    assert inputs.flags.c_contiguous
    assert inputs.shape == (344, len(columns.features))
    assert unseen == {"island": 0, "sex": 0, "year": 0}
    sex = inputs[:, columns.names.index("sex")]
    cells = table.column("sex").to_pylist()
    assert np.isnan(sex).sum() == 11
    assert [int(c) for c, v in zip(sex, cells, strict=True) if v == "male"][:1] == [1]
    assert np.isnan(inputs[3, columns.names.index("bill_length_mm")])
    assert inputs[0, columns.names.index("bill_length_mm")] == pytest.approx(39.1)


def test_the_penguins_target_with_missing_rows() -> None:
    table = read_table(PENGUINS)
    species = target_column(table, "species")
    assert species.kind == "classification"
    assert species.class_names == ("Adelie", "Chinstrap", "Gentoo")
    assert species.missing_count == 0
    sex = target_column(table, "sex")
    assert sex.missing_count == 11
    assert sex.class_names == ("female", "male")
    assert (sex.values[sex.missing] == -1).all()
    mass = target_column(table, "body_mass_g")
    assert mass.kind == "regression"
    assert mass.missing_count == 2
    year = target_column(table, "year")
    assert year.kind == "classification"
    assert year.class_names == ("2007", "2008", "2009")


# ------------------------------------------------------------------------------------
# Files as they come
# ------------------------------------------------------------------------------------


def test_dates_stay_text() -> None:
    table = read_table(TABLES / "dates.csv")
    assert table.column("day").to_pylist() == ["2024-01-05", "2024-02-29", "2024-03-01"]
    assert table.column("when").to_pylist()[:2] == [
        "2024-01-05 10:00:00",
        "2024-02-29 11:30:00",
    ]
    assert table.column("when").null_count == 1
    types, _, _ = infer_types(table, target="label", features=None, types={})
    assert types == {"day": "categorical", "when": "categorical", "value": "numeric"}


def test_quoted_fields_with_commas_quotes_and_line_breaks() -> None:
    table = read_table(TABLES / "quoted.csv")
    assert table.column("city").to_pylist() == [
        "Paris, France",
        "Köln",
        "São Paulo, BR",
    ]
    assert table.column("note").to_pylist() == [
        'said "hi", then left',
        "plain",
        "multi\nline",
    ]
    assert table.column("value").to_pylist() == [1, 2, 3]


def test_a_bom_windows_line_ends_and_non_ascii_names() -> None:
    assert (TABLES / "bom_crlf.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in (TABLES / "bom_crlf.csv").read_bytes()
    table = read_table(TABLES / "bom_crlf.csv")
    assert table.column_names == ["namé", "größe", "label"]
    assert table.column("namé").to_pylist() == ["Äpfel", "Birnen", "Äpfel"]
    assert table.column("label").to_pylist() == ["x", "y", "x"]
    types, _, _ = infer_types(table, target="label", features=None, types={})
    columns = fit_columns(table, types, rows=all_rows(table))
    assert columns.features[0].vocabulary == ("Birnen", "Äpfel")  # sorted as text
    inputs, _ = encode_cells(table, columns)
    assert inputs[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(inputs[2, 1])
    assert inputs[0, 1] == 1.5


def test_booleans_are_categorical() -> None:
    table = read_table(TABLES / "booleans.csv")
    types, _, _ = infer_types(table, target="label", features=None, types={})
    assert types == {"smoker": "categorical", "active": "categorical", "age": "numeric"}
    columns = fit_columns(table, types, rows=all_rows(table))
    smoker, active, _ = columns.features
    assert smoker.vocabulary == ("no", "yes")
    assert active.vocabulary == ("False", "True")
    assert active.missing_level
    inputs, _ = encode_cells(table, columns)
    assert inputs[:3, 1].tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(inputs[3, 1])


def test_a_two_class_text_target() -> None:
    table = read_table(TABLES / "two_class.csv")
    target = target_column(table, "outcome")
    assert target.class_names == ("healthy", "sick")
    assert target.values.tolist() == [1, 0, 1, 0, -1]
    assert target.missing.tolist() == [False] * 4 + [True]


def test_a_semicolon_export_with_decimal_commas() -> None:
    path = TABLES / "semicolon.csv"
    with pytest.raises(
        ConfigError, match=r"data\.delimiter: is ',', .* by ';'"
    ) as info:
        read_table(path)
    assert "Set \"data.delimiter=';'\"." in str(info.value)
    table = read_table(path, delimiter=";")
    assert table.column_names == ["a", "b", "label"]
    # Every cell of column a has a decimal comma: refused, not taken for text.
    with pytest.raises(
        ConfigError,
        match=r"column 'a' .* '1,5' \(a decimal comma: a number is written 1.5\)",
    ):
        infer_types(table, target="label", features=None, types={})


def test_a_tab_separated_file(tmp_path: Path) -> None:
    path = write(tmp_path / "t.tsv", "a\tb\tlabel\n1\tx y\tp\n2\tz\tq\n")
    with pytest.raises(ConfigError, match=r"looks separated by tab"):
        read_table(path)
    table = read_table(path, delimiter="\t")
    assert table.column("b").to_pylist() == ["x y", "z"]


def test_a_gzipped_csv() -> None:
    table = read_table(TABLES / "penguins_head.csv.gz")
    with gzip.open(TABLES / "penguins_head.csv.gz", "rt") as file:
        assert table.num_rows == len(file.readlines()) - 1 == 20
    assert table.column("bill_length_mm").null_count == 1


def test_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "penguins.parquet"
    pq.write_table(read_table(PENGUINS), path)
    table = read_table(path)
    assert table.equals(read_table(PENGUINS))
    same = tmp_path / "penguins.data"
    same.write_bytes(path.read_bytes())
    assert read_table(same, format="parquet").num_rows == 344


def test_a_parquet_dictionary_and_date_column_is_text(tmp_path: Path) -> None:
    import datetime

    path = tmp_path / "t.pq"
    pq.write_table(
        pa.table(
            {
                "kind": pa.array(["a", "b", "a"]).dictionary_encode(),
                "day": pa.array([datetime.date(2024, 1, d) for d in (1, 2, 3)]),
            }
        ),
        path,
    )
    table = read_table(path)
    assert table.column("kind").to_pylist() == ["a", "b", "a"]
    assert table.column("day").to_pylist()[0] == "2024-01-01"


# ------------------------------------------------------------------------------------
# Reading errors
# ------------------------------------------------------------------------------------


def test_a_file_that_does_not_exist_or_is_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^data\.path: no file '.*nothere\.csv'"):
        read_table(tmp_path / "nothere.csv")
    with pytest.raises(ConfigError, match=r"no file 'nothere\.csv' \(relative to /"):
        read_table(Path("nothere.csv"))
    with pytest.raises(ConfigError, match=r"data\.path: '.*empty\.csv' is empty\."):
        read_table(write(tmp_path / "empty.csv", ""))
    with pytest.raises(ConfigError, match=r"has no header row"):
        read_table(write(tmp_path / "blank.csv", "\n\n"))
    with pytest.raises(ConfigError, match=r"has a header row but no data rows"):
        read_table(write(tmp_path / "header.csv", "a,b\n"))
    with pytest.raises(ConfigError, match=r"is a directory"):
        read_table(tmp_path)


def test_a_parquet_file_that_is_not_parquet(tmp_path: Path) -> None:
    path = write(tmp_path / "fake.parquet", "a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"'.*fake\.parquet' is not a Parquet file"):
        read_table(path, key="data.path")


def test_a_row_with_the_wrong_number_of_cells_names_its_row() -> None:
    with pytest.raises(
        ConfigError, match=r"ragged\.csv', row 4 has 4 cells, but the header has 3"
    ) as info:
        read_table(TABLES / "ragged.csv")
    assert len(str(info.value).splitlines()) <= 3


def test_a_trailing_delimiter_and_blank_lines_count_as_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,b\n\n1,2\n3,4,\n")
    with pytest.raises(ConfigError, match=r"row 4 has 3 cells.*ends with a ','"):
        read_table(path)


def test_header_names_missing_or_twice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"names column 'a' twice"):
        read_table(write(tmp_path / "t.csv", "a,a\n1,2\n"))
    with pytest.raises(ConfigError, match=r"column 1 of the header row has no name"):
        read_table(write(tmp_path / "u.csv", ",a\n1,2\n"))


def test_an_unknown_format_names_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown format 'xlsx'\.\n  Valid formats: csv, parquet"
    ):
        read_table(PENGUINS, format="xlsx")


def test_na_values_are_the_given_markers(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,b\nNA,x\n-,y\n?,z\n")
    table = read_table(path)
    assert table.column("a").to_pylist() == [None, "-", None]
    table = read_table(path, na_values=["-"])
    assert table.column("a").to_pylist() == ["NA", None, "?"]


# ------------------------------------------------------------------------------------
# Types
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "column", "cell", "row"),
    [
        ("mixed.csv", "weight", "oops", 3),
        ("na_space.csv", "size", "n/a ", 4),
        ("decimal_comma.csv", "ratio", "1,5", 3),
    ],
)
def test_a_mixed_column_is_refused_with_both_fixes(
    file: str, column: str, cell: str, row: int
) -> None:
    table = read_table(TABLES / file)
    with pytest.raises(ConfigError) as info:
        infer_types(table, target="label", features=None, types={})
    text = str(info.value)
    assert len(text.splitlines()) == 2
    assert f"column {column!r} holds numbers, but {cell!r}" in text
    assert f"in row {row} is not one (rows are counted as lines in an editor: " in text
    assert f"'data.types={{{column}: categorical}}'" in text
    # The suggested override, run through a shell and Hydra's parser, adds the cell.
    override = re.search(r"'data\.na_values=.*?\]'", text)
    assert override is not None
    (argument,) = shlex.split(override.group(0))
    parsed = OverridesParser.create().parse_override(argument).value()
    assert parsed == [*NA_VALUES, cell]
    # Both fixes work.
    fixed = read_table(TABLES / file, na_values=[*NA_VALUES, cell])
    types, _, _ = infer_types(fixed, target="label", features=None, types={})
    assert types[column] == "numeric"
    types, _, _ = infer_types(
        table, target="label", features=None, types={column: "categorical"}
    )
    assert types[column] == "categorical"


@pytest.mark.parametrize("cell", ['a"b', "it's", "x\\", "back\\slash", "n/a "])
def test_the_na_values_override_survives_a_shell_and_hydra(cell: str) -> None:
    (argument,) = shlex.split(na_values_override(NA_VALUES, cell))
    assert OverridesParser.create().parse_override(argument).value() == [
        *NA_VALUES,
        cell,
    ]


def test_mostly_text_with_some_numbers_is_categorical(tmp_path: Path) -> None:
    # Two of four distinct values are numbers: at least half, so refused; one of
    # three is not: categorical.
    path = write(tmp_path / "t.csv", "a,b,label\n1,1,x\n2,x,y\nq,y,x\nr,y,y\n")
    table = read_table(path)
    with pytest.raises(ConfigError, match=r"column 'a' holds numbers, but 'q'"):
        infer_types(table, target="label", features=["a"], types={})
    types, _, _ = infer_types(table, target="label", features=["b"], types={})
    assert types == {"b": "categorical"}


def test_numbers_with_spaces_are_numeric(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "t.csv", "a,label\n 1.5,x\n2 ,y\n,x\n"))
    types, _, _ = infer_types(table, target="label", features=None, types={})
    assert types == {"a": "numeric"}
    columns = fit_columns(table, types, rows=all_rows(table))
    assert columns.features[0].median == 1.75
    inputs, _ = encode_cells(table, columns)
    assert inputs[:2, 0].tolist() == [1.5, 2.0]
    assert np.isnan(inputs[2, 0])


def test_an_identifier_is_ignored_with_a_note_and_types_bring_it_back() -> None:
    table = read_table(TABLES / "identifier.csv")
    types, ignored, notes = infer_types(table, target="label", features=None, types={})
    assert types == {"name": "ignore", "height": "numeric", "team": "categorical"}
    assert ignored == {"name": "identifier"}
    assert notes == [
        "note: column 'name' looks like an identifier (nearly every value distinct): "
        "left out; 'data.types={name: categorical}' keeps it."
    ]
    types, ignored, _ = infer_types(
        table, target="label", features=None, types={"name": "categorical"}
    )
    assert types["name"] == "categorical"
    assert ignored == {}
    # 20 rows or fewer: never an identifier.
    few = table.slice(0, 20)
    assert infer_types(few, target="label", features=None, types={})[1] == {}


def test_an_empty_column_is_ignored_with_a_note(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "t.csv", "a,b,label\n1,,x\n2,NA,y\n"))
    types, ignored, notes = infer_types(table, target="label", features=None, types={})
    assert types == {"a": "numeric", "b": "ignore"}
    assert ignored == {"b": "empty"}
    assert notes == ["note: column 'b' is empty in every row: left out."]


def test_types_override_inference(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,b,c,label\n1,x,5,p\n2,y,6,q\n3,z,7,p\n")
    table = read_table(path)
    types, ignored, _ = infer_types(
        table,
        target="label",
        features=None,
        types={"a": "categorical", "b": "ignore", "c": "numeric"},
    )
    assert types == {"a": "categorical", "b": "ignore", "c": "numeric"}
    assert ignored == {"b": "ignore"}
    columns = fit_columns(table, types, rows=all_rows(table), ignored=ignored)
    assert columns.names == ("a", "c")
    assert columns.ignored == {"b": "ignore"}
    assert columns.features[0].vocabulary == ("1", "2", "3")


def test_numeric_declared_on_text_names_the_first_bad_cell(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "t.csv", "a,label\n1,p\nx,q\ny,p\n"))
    with pytest.raises(
        ConfigError,
        match=r"data\.types\.a: is numeric, but column 'a' holds 'x' in row 3\.\n"
        r"  Fix the cell, or .*\(rows are counted as lines in an editor",
    ):
        infer_types(table, target="label", features=None, types={"a": "numeric"})


def test_unknown_names_and_types_name_the_closest() -> None:
    table = read_table(PENGUINS)

    def infer(**options: object) -> None:
        arguments: dict = {"target": "species", "features": None, "types": {}}
        infer_types(table, **(arguments | options))

    with pytest.raises(
        ConfigError, match=r"data\.types: no column 'yaer'.*Did you mean 'year'\?"
    ):
        infer(types={"yaer": "categorical"})
    with pytest.raises(
        ConfigError,
        match=r"data\.types\.year: unknown column type 'categoric'.*Did you mean "
        r"'categorical'\?\n  Valid column types: categorical, ignore, numeric\.",
    ):
        infer(types={"year": "categoric"})
    with pytest.raises(
        ConfigError, match=r"data\.features: no column 'isle'.*Did you mean 'island'"
    ):
        infer(features=["isle"])
    with pytest.raises(ConfigError, match=r"data\.target: no column 'specie'"):
        infer(target="specie")
    with pytest.raises(ConfigError, match=r"data\.features: lists the target"):
        infer(features=["island", "species"])


def test_features_select_and_order_the_columns() -> None:
    table = read_table(PENGUINS)
    types, _, _ = infer_types(
        table, target="species", features=["sex", "body_mass_g"], types={}
    )
    assert list(types) == ["sex", "body_mass_g"]


# ------------------------------------------------------------------------------------
# Fitting and encoding
# ------------------------------------------------------------------------------------


def categorical_table() -> pa.Table:
    return pa.table(
        {
            "c": ["b", "a", "b", "c", None, "a", "b", "z"],
            "n": [1.0, np.nan, 3.0, 4.0, 5.0, None, 7.0, 7.0],
            "k": [2.0] * 8,
        }
    )


def test_rare_levels_fold_into_other_and_training_rows_only() -> None:
    table = categorical_table()
    types = {"c": "categorical", "n": "numeric", "k": "numeric"}
    training = np.arange(7)  # "z" (row 7) is not a training row
    columns = fit_columns(table, types, rows=training, min_frequency=2)
    c, n, k = columns.features
    assert c.vocabulary == ("a", "b", OTHER_LEVEL)
    assert c.folded == ("c",)
    assert c.other == OTHER_LEVEL
    assert c.missing_level
    assert c.encoding == "onehot"
    assert c.levels == 4
    assert n.median == 4.0
    assert n.indicator
    assert n.mean == pytest.approx(np.mean([1, 4, 3, 4, 5, 4, 7]))
    assert k.scale == 1.0
    assert not k.indicator
    inputs, unseen = encode_cells(table, columns)
    assert inputs[:, 0].tolist()[:4] == [1.0, 0.0, 1.0, 2.0]  # "c" -> other
    assert math.isnan(inputs[4, 0])
    assert inputs[7, 0] == UNSEEN_CODE
    assert unseen == {"c": 1}
    assert np.isnan(inputs[[1, 5], 1]).all()


def test_many_levels_are_an_embedding() -> None:
    table = pa.table({"c": [f"l{i:02d}" for i in range(40)]})
    columns = fit_columns(table, {"c": "categorical"}, rows=np.arange(40))
    assert columns.features[0].encoding == "embedding"
    columns = fit_columns(
        table, {"c": "categorical"}, rows=np.arange(40), max_onehot=40
    )
    assert columns.features[0].encoding == "onehot"


def test_a_column_empty_in_every_training_row_is_dropped() -> None:
    table = pa.table({"a": [None, None, 1.0], "b": [None, None, "x"], "c": [1, 2, 3]})
    types = {"a": "numeric", "b": "categorical", "c": "numeric"}
    columns = fit_columns(table, types, rows=np.array([0, 1]))
    assert columns.names == ("c",)
    assert columns.ignored == {"a": "empty", "b": "empty"}


def test_the_fitted_record_round_trips_through_spec_yaml_form() -> None:
    table = categorical_table()
    columns = fit_columns(
        table,
        {"c": "categorical", "n": "numeric"},
        rows=np.arange(8),
        min_frequency=2,
    )
    again = TableColumns.from_dict(columns.to_dict(), "data.fitted.columns")
    assert again == columns
    assert (
        encode_cells(table, again)[0].tobytes()
        == encode_cells(table, columns)[0].tobytes()
    )


def test_a_file_without_a_needed_column_is_an_error() -> None:
    columns = TableColumns((Column("body_mas_g", "numeric", 1.0, 1.0, 1.0),))
    with pytest.raises(
        ConfigError,
        match=r"data\.path: the file has no column 'body_mas_g'.*Did you mean "
        r"'body_mass_g'\?",
    ):
        encode_cells(read_table(PENGUINS), columns)


def test_a_target_with_no_values_or_text_for_a_regression(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "t.csv", "a,y,z\n1,,p\n2,NA,3\n"))
    with pytest.raises(ConfigError, match=r"data\.target: column 'y' has no values"):
        target_column(table, "y")
    with pytest.raises(
        ConfigError,
        match=r"data\.target: column 'z' holds 'p' in row 2: not a number, and "
        r"data\.kind is regression\.\n  Set data\.kind=classification",
    ):
        target_column(table, "z", kind="regression")
    with pytest.raises(ConfigError, match=r"the class 'p' in row 2, which"):
        target_column(table, "z", class_names=("3", "4"))


def test_line_breaks_in_quoted_cells_across_pyarrow_blocks(tmp_path: Path) -> None:
    # Over pyarrow's 1 MB blocks: its fast read (no line breaks in cells) fails
    # where a block ends inside a quoted cell; the file is read again with them.
    rows = "".join(f'{i},"line\nbreak, {i}",{i % 3}\n' for i in range(100_000))
    path = write(tmp_path / "t.csv", "a,b,label\n" + rows)
    assert path.stat().st_size > 2**21
    table = read_table(path)
    assert table.num_rows == 100_000
    assert table.column("b")[99_999].as_py() == "line\nbreak, 99999"
    assert table.column("a").to_pylist() == list(range(100_000))


def test_a_file_not_in_utf8_names_the_column_and_row(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,b\n1,x\n2,café\n".encode("latin-1"))
    with pytest.raises(
        ConfigError, match=r"latin1\.csv' is not UTF-8 text: byte 0xe9 in row 3\."
    ):
        read_table(path)


def test_a_gz_file_that_is_not_gzip(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv.gz", "a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"(?s)t\.csv\.gz' cannot be read: .*gzip'd"):
        read_table(path)


def test_spaces_around_header_names_are_dropped(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "t.csv", "a, b ,label\n1,2,x\n"))
    assert table.column_names == ["a", "b", "label"]
    with pytest.raises(ConfigError, match=r"names column 'a' twice"):
        read_table(write(tmp_path / "u.csv", "a, a\n1,2\n"))


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("inf", "inf in row 4: not a finite number"),
        ("-inf", "-inf in row 4: not a finite number"),
        ("-1e39", "-1e+39 in row 4: too large for float32"),
    ],
)
def test_a_number_too_large_for_float32_names_its_row(
    tmp_path: Path, cell: str, shown: str
) -> None:
    table = read_table(write(tmp_path / "t.csv", f"a,label\n1,x\n2,y\n{cell},x\n"))
    types, _, _ = infer_types(table, target="label", features=None, types={})
    message = rf"^data\.path: column 'a' holds {re.escape(shown)}"
    # Every row is checked, a training row or not: the whole table is encoded.
    with pytest.raises(ConfigError, match=message):
        fit_columns(table, types, rows=np.arange(2))
    columns = TableColumns((Column("a", "numeric", 1.0, 1.0, 1.0),))
    with pytest.raises(ConfigError, match=message):
        encode_cells(table, columns)


def test_describe_columns_prints_one_line_a_column() -> None:
    table = read_table(PENGUINS)
    types, ignored, _ = infer_types(
        table,
        target="species",
        features=None,
        types={"year": "categorical", "island": "ignore"},
    )
    columns = fit_columns(table, types, rows=all_rows(table), ignored=ignored)
    assert describe_columns(columns) == [
        "column             type         fitted",
        "bill_length_mm     numeric      median 44.45, missing -> indicator",
        "bill_depth_mm      numeric      median 17.3, missing -> indicator",
        "flipper_length_mm  numeric      median 197, missing -> indicator",
        "body_mass_g        numeric      median 4050, missing -> indicator",
        "sex                categorical  2 levels, one-hot, missing -> own level",
        "year               categorical  3 levels, one-hot",
        "island             ignored      ignore",
    ]
    folded = fit_columns(
        categorical_table(), {"c": "categorical"}, rows=np.arange(8), min_frequency=2
    )
    assert describe_columns(folded)[1] == (
        "c       categorical  3 levels, one-hot, 2 rare folded into <other>, "
        "missing -> own level"
    )


def test_a_new_file_with_text_in_a_numeric_column_names_the_cell(
    tmp_path: Path,
) -> None:
    columns = fit_columns(read_table(PENGUINS), {"body_mass_g": "numeric"}, rows=[0])
    new = read_table(write(tmp_path / "new.csv", "body_mass_g\n3750\n 4000 \nheavy\n"))
    with pytest.raises(
        ConfigError,
        match=r"column 'body_mass_g' is numeric, but holds 'heavy' in row 4\.",
    ):
        encode_cells(new, columns)
    inputs, _ = encode_cells(new.slice(0, 2), columns)
    assert inputs[:, 0].tolist() == [3750.0, 4000.0]


@pytest.mark.parametrize("name", ["size", "body mass", "a-b", "x.y", "1st", "what?"])
def test_the_types_override_survives_a_shell_and_hydra(name: str) -> None:
    (argument,) = shlex.split(types_override(name, "categorical"))
    parsed = OverridesParser.create().parse_override(argument)
    assert parsed.key_or_group == "data.types"
    assert parsed.value() == {name: "categorical"}


def test_a_name_hydra_cannot_spell_gets_the_config_file_form() -> None:
    # Hydra's grammar refuses a non-ASCII key on the command line.
    assert types_override("größe", "categorical") == (
        'data.types: {"größe": categorical} in the config file'
    )


def test_a_float_column_of_nan_only_is_empty() -> None:
    table = pa.table(
        {
            "a": [np.nan, None, np.nan],
            "b": [np.nan, 2.0, None],
            "label": ["x", "y", "x"],
        }
    )
    types, ignored, _ = infer_types(table, target="label", features=None, types={})
    assert types == {"a": "ignore", "b": "numeric"}
    assert ignored == {"a": "empty"}


# ------------------------------------------------------------------------------------
# The old reader's messages, kept (issue 21: "Keep today's precise messages")
# ------------------------------------------------------------------------------------

BAD = Path(__file__).parent / "bad_inputs" / "data"
SMALL = "x,y,label\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n5,6,a\n6,7,b\n"
ROWS_NOTE = "(rows are counted as lines in an editor: the header is row 1)"


def read_and_infer(path: Path, target: str = "label", **options: object) -> None:
    """Every step before fitting, as data.load_user_table runs them."""
    table = read_table(path, **options)  # type: ignore[arg-type]
    infer_types(table, target=target, features=None, types={})
    target_column(table, target)


def test_a_comment_line_above_the_header_is_named() -> None:
    path = BAD / "comment_line.csv"
    with pytest.raises(ConfigError) as info:
        read_table(path)
    assert str(info.value) == (
        f"data.path: {str(path)!r}, row 1: '# measured on 2024-05-01' looks like a "
        "comment, and a CSV file has none: its first row must be the header.\n"
        "  Delete the comment lines, so that the column names are row 1."
    )


def test_a_comment_with_the_header_s_commas_is_named_once_the_target_is_known(
    tmp_path: Path,
) -> None:
    # pyarrow reads it: the comment is the header, the header a row of text.
    path = write(tmp_path / "c.csv", "\n# x,y,label\n" + SMALL)
    table = read_table(path)
    message = r"^data\.path: '.*c\.csv', row 2: '# x,y,label' looks like a comment"
    with pytest.raises(ConfigError, match=message):
        infer_types(table, target="label", features=None, types={})
    with pytest.raises(ConfigError, match=message):
        target_column(table, "label")
    # A comment without the target's name: the target is no column.
    path = write(tmp_path / "d.csv", "# exported, v2\n" + SMALL.replace(",", ";"))
    with pytest.raises(ConfigError, match=r"row 1: '# exported, v2' looks like a"):
        read_and_infer(path, delimiter=";")


def test_a_column_named_with_a_hash_is_a_column(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", SMALL.replace("x,y", "#rooms,y"))
    table = read_table(path)
    types, _, _ = infer_types(table, target="label", features=None, types={})
    assert types == {"#rooms": "numeric", "y": "numeric"}
    # A bad cell under it is named as a bad cell, not as a comment.
    path = write(
        tmp_path / "i.csv", SMALL.replace("x,y", "#id,y").replace("3,4", "3,z")
    )
    with pytest.raises(
        ConfigError, match=r"column 'y' holds numbers, but 'z' in row 4"
    ):
        read_and_infer(path)
    # A ragged row under it too.
    path = write(tmp_path / "r.csv", "#id,y\n1,2\n3,4,5\n")
    with pytest.raises(ConfigError, match=r"row 3 has 3 cells, but the header has 2"):
        read_table(path)


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ((BAD / "trailing_comma.csv").read_text(), "at the end of every row"),
        ("x,y,label,\n1,2,a\n2,3,b\n3,4,a\n", "at the end of the header row"),
        ("x,y,label,\n", "at the end of the header row"),
    ],
)
def test_a_header_that_ends_with_the_delimiter_is_named(
    tmp_path: Path, text: str, fix: str
) -> None:
    path = write(tmp_path / "t.csv", text)
    with pytest.raises(ConfigError) as info:
        read_table(path)
    columns = text.split("\n")[0].count(",") + 1
    assert str(info.value) == (
        f"data.path: {str(path)!r}: the header row ends with a ',', so its last "
        f"column ({columns}) has no name.\n  Delete the ',' {fix}, or name the column."
    )


def test_a_row_that_ends_with_the_delimiter_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", SMALL.replace("2,3,b", "2,3,b,"))
    with pytest.raises(
        ConfigError,
        match=r"r\.csv', row 3 has 4 cells, but the header has 3 columns: the row "
        r"ends with a ','\.\n  Delete the ',' at the end of the row \(rows are",
    ):
        read_table(path)


def test_a_row_of_spaces_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", "a,b\n1,2\n   \n3,4\n")
    with pytest.raises(ConfigError, match=r"row 3 holds nothing but spaces"):
        read_table(path)


def test_an_unterminated_quote_names_the_row_it_opens() -> None:
    path = BAD / "unterminated_quote.csv"
    with pytest.raises(ConfigError) as info:
        read_table(path)
    assert str(info.value) == (
        f'data.path: {str(path)!r}, row 3: a quote (") opens a cell that is never '
        "closed, so the rest of the file became one cell.\n"
        "  Close the quote or delete it (a quote inside a quoted cell is written "
        'twice: "").'
    )


@pytest.mark.parametrize(
    ("text", "row"),
    [
        # In the last column: the row has its cells, and pyarrow reads on.
        ('x,y,label\n1,2,a\n2,3,"b\n3,4,a\n4,5,b\n', 3),
        ('x,y,label\n1,2,a\n\n2,"3,b\n3,4,a\n', 4),
        # A quoted cell over the csv module's field limit (131072 characters).
        ('x,y,label\n1,2,a\n2,"3,b\n' + "3,4,a\n" * 30_000, 3),
    ],
)
def test_an_unterminated_quote_anywhere(tmp_path: Path, text: str, row: int) -> None:
    path = write(tmp_path / "q.csv", text)
    with pytest.raises(ConfigError, match=rf"q\.csv', row {row}: a quote \(\"\) opens"):
        read_table(path)


def test_a_quote_closed_rows_later_names_the_cell_that_spans_lines(
    tmp_path: Path,
) -> None:
    text = SMALL.replace("2,3,b", '2,"3,b').replace("4,5,b", '4,5",b')
    path = write(tmp_path / "q.csv", text)
    with pytest.raises(ConfigError) as info:
        read_and_infer(path)
    assert str(info.value) == (
        f"data.path: {str(path)!r}, row 3, column 'y': a quoted cell runs over "
        "several lines ('3,b\\n3,4,a\\n4,5'), so a quote (\") is not closed where it "
        f"should be.\n  Close the quote where the cell ends, or delete it "
        f"{ROWS_NOTE[:-1]})."
    )


def test_quoted_cells_with_line_breaks_still_read(tmp_path: Path) -> None:
    text = 'x,y,label\n1,2,"a"\n2,3,"b\nb"\n3,4,a\n4,5,"b\nb"\n'
    table = read_table(write(tmp_path / "q.csv", text))
    assert target_column(table, "label").class_names == ("a", "b\nb")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"x,y\n1,a\n2\x00,b\n", "holds a NUL character in row 3: it is not a text"),
        (b"x,y\n1,a\n2,b\x00,c\n", "holds a NUL character in row 3: it is not a text"),
        ("x,city\n1,Köln\n2,Paris\n".encode("latin-1"), "byte 0xf6 in row 2"),
        ("größe,y\n1,a\n".encode("latin-1"), "byte 0xf6 in row 1"),
        ("x,y\n1,a\n".encode("utf-16"), "byte 0xff in row 1 (it is UTF-16)"),
        (bytes(range(256)) * 4, "byte 0x80 in row 3"),
    ],
)
def test_a_file_that_is_not_utf8_text_names_the_byte_and_row(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        read_and_infer(path, target="y")
    assert str(info.value).startswith(f"data.path: {str(path)!r} ")
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 2


@pytest.mark.parametrize(
    ("file", "delimiter", "shown", "fix"),
    [
        ("semicolon.csv", ";", "';'", "\"data.delimiter=';'\""),
        ("tab_separated.csv", "\t", "tab", "data.delimiter=tab"),
    ],
)
def test_another_delimiter_is_named_with_the_fix(
    file: str, delimiter: str, shown: str, fix: str
) -> None:
    path = BAD / file
    with pytest.raises(ConfigError) as info:
        read_table(path)
    header = path.read_text().split("\n")[0]
    assert str(info.value) == (
        f"data.delimiter: is ',', but {str(path)!r} looks separated by {shown}: its "
        f"header row is {header!r}.\n  Set {fix}."
    )
    assert read_table(path, delimiter=delimiter).column_names == [
        "height",
        "weight",
        "label",
    ]


def test_another_delimiter_that_the_comma_splits_too_is_named(tmp_path: Path) -> None:
    # The comma splits the header in two, and every row too: pyarrow reads it, and
    # the target is no column.
    path = write(tmp_path / "d.csv", "a;b;c,d;label\n1;2;3,4;x\n5;6;7,8;y\n")
    assert read_table(path).column_names == ["a;b;c", "d;label"]
    with pytest.raises(ConfigError, match=r"^data\.delimiter: is ',', but .* by ';'"):
        read_and_infer(path)


def test_files_as_they_come_read_and_count_rows_as_lines(tmp_path: Path) -> None:
    # A BOM, CRLF, a blank line, a quoted cell with a comma and a line break,
    # spaces around the names.
    text = (
        '\ufeff x , note ,label\r\n1,"a, b",p\r\n2,"two\r\nlines",q\r\n\r\n'
        "3,c,p\r\nzz,d,q\r\n4,e,p\r\n"
    )
    path = write(tmp_path / "f.csv", text)
    table = read_table(path)
    assert table.column_names == ["x", "note", "label"]
    assert table.column("note").to_pylist()[:2] == ["a, b", "two\r\nlines"]
    with pytest.raises(
        ConfigError, match=rf"'zz' in row 7 is not one {re.escape(ROWS_NOTE)}"
    ):
        infer_types(table, target="label", features=None, types={})


def test_a_value_too_large_for_float32_names_its_row_and_column() -> None:
    table = read_table(BAD / "huge_value.csv")
    types, _, _ = infer_types(table, target="label", features=None, types={})
    with pytest.raises(ConfigError) as info:
        fit_columns(table, types, rows=all_rows(table))
    assert str(info.value) == (
        "data.path: column 'weight' holds 1e+300 in row 4: too large for float32, the "
        "network's dtype (it holds values within ±3.4e+38).\n"
        f"  Rescale the column (e.g. to other units), or fix the cell {ROWS_NOTE}."
    )


def test_rows_of_a_parquet_or_filtered_table_count_from_one(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,label\n\n1,x\n\n2,y\n")
    table = read_table(path)
    assert file_row(table, 1) == (5, ROWS_NOTE[1:-1])
    assert file_row(table.filter(pa.array([False, True])), 0) == (
        1,
        "the first row is 1",
    )
    pq.write_table(table, tmp_path / "t.parquet")
    assert file_row(read_table(tmp_path / "t.parquet"), 1) == (2, "the first row is 1")
    assert file_row(pa.table({"a": [1]}), 0) == (1, "the first row is 1")


def test_a_good_file_is_never_read_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # pyarrow's fast path: the text is scanned only where something is wrong.
    import annfactory.table_reading as reading

    def no_text(path: Path) -> bytes:
        raise AssertionError(f"{path} was read as text")

    monkeypatch.setattr(reading, "_raw", no_text)
    monkeypatch.setattr(reading, "_header_line", no_text)
    for path in (PENGUINS, TABLES / "quoted.csv", TABLES / "bom_crlf.csv"):
        table = read_table(path)
        target = table.column_names[-1]
        types, _, _ = infer_types(table, target=target, features=None, types={})
        target_column(table, target)
        encode_cells(table, fit_columns(table, types, rows=all_rows(table)))


# ------------------------------------------------------------------------------------
# The target, as the old reader checked it
# ------------------------------------------------------------------------------------


def test_a_target_with_one_class_only() -> None:
    table = read_table(BAD / "one_class.csv")
    with pytest.raises(ConfigError) as info:
        target_column(table, "label")
    assert str(info.value) == (
        "data.target: column 'label' holds one class only ('yes'); a classification "
        "needs at least two.\n  Choose a target column with at least two different "
        "values."
    )
    # Evaluating a trained run on a file of one class is fine.
    labels = target_column(table, "label", class_names=("no", "yes"))
    assert set(labels.values.tolist()) == {1}


def test_a_continuous_target_given_as_classes() -> None:
    table = read_table(BAD / "continuous.csv")
    assert target_column(table, "label").kind == "regression"
    with pytest.raises(ConfigError) as info:
        target_column(table, "label", kind="classification")
    assert str(info.value) == (
        "data.kind: is classification, but target column 'label' has 105 distinct "
        "values in 120 rows: fewer than two rows a class.\n"
        "  Set data.kind=regression (or leave it out: it is inferred), or choose a "
        "column of class labels."
    )


def test_an_identifier_as_the_target(tmp_path: Path) -> None:
    rows = "".join(f"{i},id{i}\n" for i in range(40))
    table = read_table(write(tmp_path / "i.csv", "x,label\n" + rows))
    with pytest.raises(ConfigError) as info:
        target_column(table, "label")
    assert str(info.value) == (
        "data.target: target column 'label' has 40 distinct values in 40 rows: fewer "
        "than two rows a class.\n  Choose a column of class labels."
    )


def test_a_constant_regression_target(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "c.csv", "x,y\n1,2.5\n2,2.5\n3,\n4,2.5\n"))
    with pytest.raises(
        ConfigError,
        match=r"^data\.target: column 'y' holds the same value in every row \(2\.5\): "
        r"there is nothing to predict\.\n  Choose a target column whose values vary\.$",
    ):
        target_column(table, "y", kind="regression")
    assert target_column(table, "y", kind="regression", training=False).kind == (
        "regression"
    )


def test_a_regression_target_too_large_for_float32(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(10)).replace("4.5", "-5e38")
    table = read_table(write(tmp_path / "r.csv", "x,label\n" + rows))
    with pytest.raises(
        ConfigError, match=r"^data\.target: column 'label' holds -5e\+38 in row 5: too"
    ):
        target_column(table, "label")


def test_classes_that_differ_only_in_case_are_a_note(tmp_path: Path) -> None:
    text = "x,label\n1,yes\n2,Yes\n3, yes\n4,no\n5,No\n6,maybe\n"
    labels = target_column(read_table(write(tmp_path / "c.csv", text)), "label")
    assert labels.class_names == ("No", "Yes", "maybe", "no", "yes")
    assert labels.notes == (
        "note: data.target: column 'label' has classes that differ only in case, "
        "kept apart: 'No' and 'no', 'Yes' and 'yes'. Fix the cells if they are one "
        "class.",
    )
    assert target_column(read_table(BAD / "tiny.csv"), "label").notes == ()


def test_spaces_around_text_labels_are_dropped(tmp_path: Path) -> None:
    text = 'x,label\n1,yes\n2, yes\n3,"yes"\n4,"yes "\n5,no\n6,  \n'
    labels = target_column(read_table(write(tmp_path / "s.csv", text)), "label")
    assert labels.class_names == ("no", "yes")
    assert labels.values.tolist() == [1, 1, 1, 1, 0, -1]


def test_numeric_class_labels_are_named_as_numbers_and_sorted_by_value(
    tmp_path: Path,
) -> None:
    text = "x,y\n1,10\n2,2\n3,10.0\n4,-1\n5,2.5\n"
    table = read_table(write(tmp_path / "n.csv", text))
    labels = target_column(table, "y", kind="classification")
    assert labels.class_names == ("-1", "2", "2.5", "10")
    assert labels.values.tolist() == [3, 1, 3, 0, 2]
    counts = "x,label\n" + "".join(f"{i},{i % 3}.0\n" for i in range(12))
    labels = target_column(read_table(write(tmp_path / "c.csv", counts)), "label")
    assert labels.class_names == ("0", "1", "2")


def test_a_regression_with_a_text_target_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "x,y\n1,0.5\n\n2,1.5\n3,cat\n")
    with pytest.raises(ConfigError) as info:
        target_column(read_table(path), "y", kind="regression")
    assert str(info.value) == (
        "data.target: column 'y' holds 'cat' in row 5: not a number, and data.kind "
        "is regression.\n  Set data.kind=classification for a column of class "
        f"labels, or fix the cell {ROWS_NOTE}."
    )


def test_a_file_of_blank_lines_has_no_header(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"b\.csv' has no header row: its first"):
        read_table(write(tmp_path / "b.csv", "\n\n  \n"))


def test_a_table_with_the_target_only(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "t.csv", "species\ncat\ndog\n"))
    with pytest.raises(
        ConfigError,
        match=r"^data\.features: the table has no column besides the target "
        r"'species'\.\n  Add the feature columns to the file\.$",
    ):
        infer_types(table, target="species", features=None, types={})


def test_a_numeric_cell_of_spaces_is_missing(tmp_path: Path) -> None:
    # The old reader refused it as empty; an empty cell is now a missing value.
    table = read_table(write(tmp_path / "s.csv", "x,y\n1,a\n  ,b\n3,c\n 4 ,d\n"))
    types, _, _ = infer_types(table, target="y", features=None, types={})
    assert types == {"x": "numeric"}
    columns = fit_columns(table, types, rows=all_rows(table))
    assert columns.features[0].indicator
    inputs, _ = encode_cells(table, columns)
    assert np.isnan(inputs[1, 0])
    assert inputs[[0, 2, 3], 0].tolist() == [1.0, 3.0, 4.0]
    labels = target_column(table, "x", kind="regression")
    assert labels.missing.tolist() == [False, True, False, False]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a,b\n1,x\n2,y\n3,z", [2, 3, 4]),  # no quote, no empty line
        ("a,b\n\n1,x\n\n\n2,y\n3,z\n\n", [3, 6, 7]),  # empty lines
        ("a,b\r\n1,x\r\n\r\n2,y\r\n3,z\r\n", [2, 4, 5]),  # Windows line ends
        ("\r\na,b\r\n1,x\r\n2,y\r\n3,z", [3, 4, 5]),
        ("a,b\r1,x\r\r2,y\r3,z\r", [2, 4, 5]),  # old Mac line ends
        ('a,b\n1,"x\n\ny"\n\n2,y\n3,"z"\n', [2, 6, 7]),  # quoted line breaks
    ],
)
def test_file_row_counts_lines_as_an_editor_does(
    tmp_path: Path, text: str, lines: list[int]
) -> None:
    table = read_table(write(tmp_path / "t.csv", text))
    assert table.num_rows == 3
    assert [file_row(table, index)[0] for index in range(3)] == lines


def test_a_file_that_cannot_be_read_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.csv as pcsv

    def denied(*arguments: object, **options: object) -> None:
        raise PermissionError("[Errno 13] Failed to open local file: Permission denied")

    monkeypatch.setattr(pcsv, "read_csv", denied)
    with pytest.raises(
        ConfigError,
        match=r"t\.csv' cannot be read: \[Errno 13\] .*Permission denied\.\n"
        r"  Check that the file is readable \(its permissions\)\.$",
    ):
        read_table(write(tmp_path / "t.csv", "a,b\n1,2\n"))
