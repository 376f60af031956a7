"""Reading a user's table: CSV (any delimiter; TSV), gzip'd CSV and Parquet, with
pyarrow's readers (nothing in a file is ever evaluated).

:func:`read_table` returns a ``pyarrow.Table``: missing markers
(:data:`NA_VALUES`) are nulls, dates and times stay text. Where pyarrow fails, the
file's text is scanned (on that path only) to name the row and the cause: a row
with the wrong number of cells, or another delimiter than ``data.delimiter``.
:mod:`annfactory.table_fitting` turns the table into a network's inputs.

pyarrow is imported inside the functions, so that importing annfactory stays cheap.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from annfactory.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "FORMATS",
    "NA_VALUES",
    "cell_layout_error",
    "check_layout",
    "file_row",
    "read_table",
]

#: The cells read as missing unless ``data.na_values`` says otherwise.
NA_VALUES: Final[tuple[str, ...]] = (
    "",
    "NA",
    "N/A",
    "NaN",
    "nan",
    "null",
    "NULL",
    "None",
    "?",
)
#: The formats :func:`read_table` reads, and the file name endings that pick them.
FORMATS: Final = {
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz"),
    "parquet": (".parquet", ".pq"),
}
_SNIFFED: Final = ",;\t|"
_DELIMITER_WORDS: Final = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_ROWS_NOTE: Final = "rows are counted as lines in an editor: the header is row 1"
_FIRST_ROW_NOTE: Final = "the first row is 1"
#: Where a table came from, in its schema's metadata: what :func:`file_row` needs
#: to name a row as the file has it, on an error path, long after the reading.
_SOURCE: Final = b"annfactory.source"  # the path, absolute
_SOURCE_SHOWN: Final = b"annfactory.source_shown"  # the path as given
_SOURCE_FORMAT: Final = b"annfactory.format"
_SOURCE_DELIMITER: Final = b"annfactory.delimiter"
_SOURCE_ROWS: Final = b"annfactory.rows"


# ------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------


def read_table(
    path: Path,
    *,
    delimiter: str = ",",
    na_values: Sequence[str] = NA_VALUES,
    key: str = "data.path",
    format: str | None = None,
) -> pa.Table:
    """The file at ``path`` as a ``pyarrow.Table``, one column per header name.

    Args:
        path: A CSV (any delimiter; gzip'd where the name ends in ``.gz``) or
            Parquet file.
        delimiter: The character between cells of a CSV file (``"\\t"``: TSV).
        na_values: The cells that mean "missing": a CSV file's (compared whole,
            quoted or not), and a Parquet file's text cells.
        key: The config path of ``path``, for messages.
        format: ``csv`` or ``parquet``; None: from the name's ending (``.parquet``
            and ``.pq`` are Parquet, anything else CSV).

    Returns:
        The table. A CSV file's columns are int64, float64, bool, string or null
        (every cell missing); dates and times stay text.

    Raises:
        ConfigError: The file does not exist, is empty, has no header or no data
            rows, is not Parquet, has a row with the wrong number of cells (the
            message names its row), or looks separated by another delimiter.
    """
    shown = repr(str(path))
    chosen = _format(path, format, key)
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()})"
        raise ConfigError(
            key,
            f"no file {shown}{where}.",
            "Give the path of a data file; a relative path starts at the directory "
            "the command runs in.",
        )
    if path.is_dir():
        raise ConfigError(key, f"{shown} is a directory.", "Give the path of a file.")
    if path.stat().st_size == 0:
        raise ConfigError(
            key,
            f"{shown} is empty.",
            "A table needs a header row (the column names), then one row per sample.",
        )
    table = (
        _read_parquet(path, shown, key, na_values)
        if chosen == "parquet"
        else _read_csv(path, shown, key, delimiter, na_values)
    )
    if chosen == "parquet":
        _check_text(table, shown, key)
    # Spaces around a name are a spreadsheet's slip, as in annfactory.data.
    table = table.rename_columns([name.strip() for name in table.column_names])
    _check_names(table, shown, key, delimiter if chosen == "csv" else None)
    if table.num_rows == 0:
        raise ConfigError(
            key,
            f"{shown} has a header row but no data rows.",
            "Add one row per sample below the header.",
        )
    source = {
        _SOURCE: str(path.absolute()).encode(),
        _SOURCE_SHOWN: str(path).encode(),
        _SOURCE_FORMAT: chosen.encode(),
        _SOURCE_DELIMITER: delimiter.encode(),
        _SOURCE_ROWS: str(table.num_rows).encode(),
    }
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **source})


def _format(path: Path, format: str | None, key: str) -> str:
    if format is None:
        name = path.name.lower()
        return "parquet" if name.endswith(FORMATS["parquet"]) else "csv"
    if format not in FORMATS:
        raise UnknownNameError(
            key.rsplit(".", 1)[0] + ".format", "format", format, FORMATS
        )
    return format


def _read_parquet(
    path: Path, shown: str, key: str, na_values: Sequence[str]
) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise ConfigError(
            key,
            f"{shown} is not a Parquet file ({_first_line(error)}).",
            "Give a Parquet file, or a CSV file (its name not ending in .parquet or "
            ".pq).",
        ) from None
    # A date or a timestamp is text to the network, as in a CSV file.
    table = _temporal_as_text(table)
    # Missing markers written as text ("NA" from R or from pyarrow's own CSV
    # defaults) are missing here too, as in a CSV file.
    markers = pa.array(list(na_values), pa.string())
    for index, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            cells = table.column(index)
            missing = pc.is_in(cells, value_set=markers.cast(field.type))
            if pc.any(missing).as_py():
                empty = pa.scalar(None, field.type)
                table = table.set_column(
                    index, field.name, pc.if_else(missing, empty, cells)
                )
    return table


def _temporal_as_text(table: pa.Table) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, field in enumerate(table.schema):
        kind = field.type
        if pa.types.is_temporal(kind) or pa.types.is_dictionary(kind):
            table = table.set_column(
                index, field.name, pc.cast(table.column(index), pa.string())
            )
    return table


def _read_csv(
    path: Path, shown: str, key: str, delimiter: str, na_values: Sequence[str]
) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def read(column_types: Mapping[str, Any], newlines: bool) -> pa.Table:
        convert = pcsv.ConvertOptions(
            null_values=list(na_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            column_types=dict(column_types),
        )
        parse = pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=newlines)
        return pcsv.read_csv(path, parse_options=parse, convert_options=convert)

    # Line breaks in quoted cells cost pyarrow a third of its speed, and are rare:
    # read without them first. pyarrow fails (the parser out of step with the
    # chunker, or a row too short) where a quoted cell holds one; read again.
    newlines = False
    try:
        try:
            table = read({}, newlines)
        except pa.ArrowInvalid:
            newlines = True
            table = read({}, newlines)
        temporal = {
            field.name: pa.string()
            for field in table.schema
            if pa.types.is_temporal(field.type)
        }
        if temporal:
            # Dates stay text: read those columns again as text, as written.
            table = read(temporal, newlines)
    except pa.ArrowInvalid as error:
        raise _csv_error(path, shown, key, delimiter, error) from None
    except OSError as error:  # a gzip'd file that is not gzip, a file not readable
        raise ConfigError(
            key,
            f"{shown} cannot be read: {_first_line(error)}.",
            "A name ending in .gz is read as gzip'd; check that the file is whole."
            if path.name.lower().endswith(".gz")
            else "Check that the file is readable (its permissions).",
        ) from None
    _check_csv_text(table, path, shown, key)
    if table.num_columns == 1:
        _check_delimiter(_header_line(path)[1], shown, delimiter, 1)
    if _may_hold_the_rest(table, path):
        # A quote that is never closed takes the rest of the file into the last
        # row's cell, and pyarrow reads on: only then is the text read again.
        text = _text(path)
        if text is not None:
            _check_quotes(text, shown, key, delimiter)
    return table


def _may_hold_the_rest(table: pa.Table, path: Path) -> bool:
    """Whether a cell of the last row may be the rest of the file after a quote
    never closed: it holds a line break, and the file ends with it (a closed
    quote would follow it). Reads the file's last bytes only."""
    import pyarrow as pa

    if table.num_rows == 0:
        return False
    last = table.slice(table.num_rows - 1)
    for column in last.columns:
        if not pa.types.is_string(column.type):
            continue
        cell = column[0].as_py()
        if cell is None or ("\n" not in cell and "\r" not in cell):
            continue
        if path.name.lower().endswith(".gz"):
            return True  # no reading from the end: the whole text is checked
        ending = cell.replace('"', '""').encode()
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - len(ending)))
            if file.read() == ending:
                return True
    return False


class _BrokenTextError(Exception):
    """Python's csv module stopped at the record that starts on ``line``."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(row, cells)`` per record of ``text``, the header first; rows counted as
    an editor counts lines (a record with a quoted line break starts on its row).
    Empty lines are left out, as pyarrow leaves them out.

    Raises:
        _BrokenTextError: The csv module cannot read on (a cell over its size limit:
            a quote never closed in a large file).
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            if cells:
                yield start, cells
            start = reader.line_num + 1
    except csv.Error as error:
        raise _BrokenTextError(start, str(error)) from None


def _lines(text: str) -> list[str]:
    """The lines of ``text`` as an editor (and the csv module) counts them."""
    return io.StringIO(text, newline="").readlines()


def _quote_left_open(text: str, line: int) -> bool:
    """Whether a quote opened on ``line`` or below is never closed: an odd number
    of quotes from there to the end (a quote inside a quoted cell is doubled)."""
    return "".join(_lines(text)[line - 1 :]).count('"') % 2 == 1


def _unterminated(shown: str, key: str, line: int) -> ConfigError:
    return ConfigError(
        key,
        f'{shown}, row {line}: a quote (") opens a cell that is never closed, so the '
        "rest of the file became one cell.",
        "Close the quote or delete it (a quote inside a quoted cell is written "
        'twice: "").',
    )


def _check_quotes(text: str, shown: str, key: str, delimiter: str) -> None:
    """Raise where the last record holds a line break from a quote never closed."""
    last: tuple[int, list[str]] | None = None
    try:
        for record in _records(text, delimiter):
            last = record
    except _BrokenTextError as broken:
        last = (broken.line, ["\n"])
    if (
        last is not None
        and any("\n" in cell or "\r" in cell for cell in last[1])
        and _quote_left_open(text, last[0])
    ):
        raise _unterminated(shown, key, last[0])


def _csv_error(
    path: Path, shown: str, key: str, delimiter: str, error: Exception
) -> ConfigError:
    """The cause of pyarrow's failure, found in the file's text (only on this path,
    where the file could not be read): bytes that are not UTF-8 text, a comment
    line above the header, another delimiter, a quote never closed, a row with the
    wrong number of cells."""
    raw = _raw(path)
    text = _decoded(raw)
    if text is None:
        return _not_utf8(raw, shown, key)
    if "\x00" in text:
        return _nul(text, shown, key)
    if not text.strip():
        return ConfigError(
            key,
            f"{shown} has no header row.",
            "A table needs a header row (the column names), then one row per sample.",
        )
    mark = _delimiter_name(delimiter)
    header: list[str] = []
    first, top = "", 1
    try:
        for number, (line, cells) in enumerate(_records(text, delimiter)):
            if number == 0:
                header, first = cells, _lines(text)[line - 1].rstrip("\r\n")
                top = line
                continue
            if number == 1:
                # A comment line has another number of cells than the header below.
                if len(cells) != len(header) and first.lstrip().startswith("#"):
                    return _comment(shown, top, first, key)
                _check_delimiter(first, shown, delimiter, len(header))
            if len(cells) == len(header):
                continue
            if any("\n" in cell or "\r" in cell for cell in cells):
                if _quote_left_open(text, line):
                    return _unterminated(shown, key, line)
                return ConfigError(
                    key,
                    f"{shown}, row {line}: a quoted cell runs over several lines, so "
                    f"the row has {len(cells)} cells and the header {len(header)}.",
                    'Close the quote (") that opens it where the cell ends, or '
                    f"delete it ({_ROWS_NOTE}).",
                )
            if len(cells) == len(header) - 1 > 0 and not header[-1].strip():
                return _trailing_delimiter(shown, key, delimiter, len(header))
            if len(cells) == 1 and not cells[0].strip():
                return ConfigError(
                    key,
                    f"{shown}, row {line} holds nothing but spaces.",
                    f"Delete the spaces, or the row ({_ROWS_NOTE}).",
                )
            ends = len(cells) == len(header) + 1 and not cells[-1].strip()
            return ConfigError(
                key,
                f"{shown}, row {line} has {len(cells)} cells, but the header has "
                f"{len(header)} columns"
                + (f": the row ends with a {mark}." if ends else "."),
                (
                    f"Delete the {mark} at the end of the row"
                    if ends
                    else "Give every row one cell per column"
                )
                + f" ({_ROWS_NOTE}).",
            )
    except _BrokenTextError as broken:
        if _quote_left_open(text, broken.line):
            return _unterminated(shown, key, broken.line)
        return ConfigError(
            key,
            f"{shown}, row {broken.line}: {broken.reason}.",
            "It is not a delimited text file that Python's csv module can read.",
        )
    _check_delimiter(first, shown, delimiter, len(header))
    return ConfigError(key, f"{shown} cannot be read: {_first_line(error)}.")


def _comment(shown: str, line: int, text: str, key: str) -> ConfigError:
    return ConfigError(
        key,
        f"{shown}, row {line}: {_shorten(text.lstrip(chr(0xFEFF)))!r} looks like a "
        "comment, and a CSV file has none: its first row must be the header.",
        "Delete the comment lines, so that the column names are row 1.",
    )


def _trailing_delimiter(
    shown: str, key: str, delimiter: str, columns: int, every_row: bool = False
) -> ConfigError:
    mark = _delimiter_name(delimiter)
    return ConfigError(
        key,
        f"{shown}: the header row ends with a {mark}, so its last column ({columns}) "
        "has no name.",
        f"Delete the {mark} at the end of "
        + ("every row" if every_row else "the header row")
        + ", or name the column.",
    )


def _nul(text: str, shown: str, key: str) -> ConfigError:
    line = len(_lines(text[: text.index("\x00")]) or [""])
    return ConfigError(
        key,
        f"{shown} holds a NUL character in row {line}: it is not a text file.",
        "Give a CSV file saved as UTF-8 text.",
    )


def _not_utf8(raw: bytes, shown: str, key: str) -> ConfigError:
    """The first byte of ``raw`` that is not UTF-8, and its row (a line in an
    editor)."""
    fix = "Save it as UTF-8 (a spreadsheet's 'CSV UTF-8' format)."
    start = 3 if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        raw[start:].decode("utf-8")
    except UnicodeDecodeError as error:
        at = start + error.start
        line = len(_lines(raw[:at].decode("utf-8", "replace")) or [""])
        utf16 = raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        return ConfigError(
            key,
            f"{shown} is not UTF-8 text: byte 0x{raw[at]:02x} in row {line}"
            + (" (it is UTF-16)." if utf16 else "."),
            fix,
        )
    return ConfigError(key, f"{shown} is not UTF-8 text.", fix)


def _check_delimiter(header: str, shown: str, delimiter: str, columns: int) -> None:
    """Raise where another delimiter would split the header into more columns."""
    header = header.lstrip("\ufeff")
    for found in _SNIFFED:
        if found == delimiter or found not in header:
            continue
        if len(next(csv.reader([header], delimiter=found))) > columns:
            raise ConfigError(
                "data.delimiter",
                f"is {_delimiter_name(delimiter)}, but {shown} looks separated by "
                f"{_delimiter_name(found)}: its header row is {_shorten(header)!r}.",
                f"Set {_delimiter_override(found)}.",
            )


def _raw(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.name.lower().endswith(".gz") else raw


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _text(path: Path) -> str | None:
    return _decoded(_raw(path))


def _header_line(path: Path) -> tuple[int, str]:
    """The first line that is not blank, and its row."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as file:
        for number, line in enumerate(file, start=1):
            if line.strip():
                return number, str(line).rstrip("\r\n")
    return 1, ""


def _check_names(table: pa.Table, shown: str, key: str, delimiter: str | None) -> None:
    names = table.column_names
    if names == [""]:
        raise ConfigError(
            key,
            f"{shown} has no header row: its first line that is not empty holds "
            "spaces only.",
            "A table needs a header row (the column names), then one row per sample.",
        )
    for index, name in enumerate(names):
        if not name and delimiter is not None and index == len(names) - 1 > 0:
            raise _trailing_delimiter(
                shown, key, delimiter, len(names), _blank(table.column(index))
            )
        if not name:
            raise ConfigError(
                key,
                f"{shown}: column {index + 1} of the header row has no name.",
                "Name every column"
                + (
                    " (pandas writes its index there unnamed: save with index=False)."
                    if index == 0
                    else "."
                ),
            )
        if name in names[:index]:
            raise ConfigError(
                key,
                f"{shown}: the header names column {name!r} twice.",
                "Give every column its own name.",
            )


def _blank(column: Any) -> bool:
    """Every cell is missing or spaces (and there is one at least)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    present = column.drop_null()
    if len(column) == 0 or len(present) == 0:
        return len(column) > 0
    if not pa.types.is_string(column.type):
        return False
    return bool(pc.all(pc.equal(pc.utf8_trim_whitespace(present), "")).as_py())


def _check_csv_text(table: pa.Table, path: Path, shown: str, key: str) -> None:
    """Raise where a CSV file is not UTF-8: pyarrow reads a cell that is not
    (a file saved as Latin-1) as bytes, and fails on a header name only when the
    name is read. The message names the first such byte and its row."""
    import pyarrow as pa

    try:
        _ = table.column_names  # pyarrow decodes the names here
    except UnicodeDecodeError:
        raise _not_utf8(_raw(path), shown, key) from None
    if any(
        pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
        for kind in table.schema.types
    ):
        raise _not_utf8(_raw(path), shown, key)


def _check_text(table: pa.Table, shown: str, key: str) -> None:
    """Raise where a Parquet file's column is bytes, not text."""
    import pyarrow as pa

    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            cells = table.column(field.name).to_pylist()  # on this error path only
            row = next((i for i, cell in enumerate(cells) if not _is_utf8(cell)), 0)
            raise ConfigError(
                key,
                f"{shown}: column {field.name!r} is not UTF-8 text (row {row + 1}: "
                f"{cells[row]!r}; {_FIRST_ROW_NOTE}).",
                "Write the column as text (UTF-8), or as numbers.",
            )


def _is_utf8(cell: bytes | None) -> bool:
    try:
        return cell is None or bool(cell.decode("utf-8") or True)
    except UnicodeDecodeError:
        return False


# ------------------------------------------------------------------------------------
# Naming a row, and the layout as the cause of a later error
# ------------------------------------------------------------------------------------


class _Source(NamedTuple):
    """The CSV file a table was read from (its schema's metadata)."""

    path: Path
    shown: str
    delimiter: str


def _source(table: pa.Table, rows: bool = False) -> _Source | None:
    """The CSV file ``table`` was read from; None for a Parquet file or a table
    made otherwise, and (``rows``) for one filtered since."""
    metadata = table.schema.metadata or {}
    if metadata.get(_SOURCE_FORMAT) != b"csv":
        return None
    if rows and metadata.get(_SOURCE_ROWS) != str(table.num_rows).encode():
        return None
    return _Source(
        Path(metadata[_SOURCE].decode()),
        repr(metadata[_SOURCE_SHOWN].decode()),
        metadata[_SOURCE_DELIMITER].decode(),
    )


def file_row(table: pa.Table, index: int) -> tuple[int, str]:
    """Row ``index`` (0-based) of a table from :func:`read_table` as the file has
    it, for a message: ``(row, note)``, the note saying how rows are counted.

    A CSV file's row is its line in an editor (the header is row 1; a quoted cell
    over several lines and the blank lines count), found by reading the file's
    text again: call it on an error path only. A Parquet file's row, or a table
    made otherwise or filtered since, is counted from 1.
    """
    fallback = index + 1, _FIRST_ROW_NOTE
    source = _source(table, rows=True)
    if source is None:
        return fallback
    try:
        raw = _raw(source.path)
        line = _unquoted_line(raw, index + 1)
        if line is not None:
            return line, _ROWS_NOTE
        text = _decoded(raw)
        if text is None:
            return fallback
        for number, (line, _) in enumerate(_records(text, source.delimiter)):
            if number == index + 1:  # the header is record 0
                return line, _ROWS_NOTE
    except (OSError, _BrokenTextError):
        pass
    return fallback


def _unquoted_line(raw: bytes, record: int) -> int | None:
    """The line of ``record`` (the header is 0) in a file without a quote, where
    every line that is not empty is a record: found with numpy, a hundred times
    as fast as the csv module. None where the file has a quote or a lone CR."""
    import numpy as np

    if b'"' in raw or (b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n")):
        return None
    if not raw.startswith((b"\n", b"\r\n")) and not re.search(b"\n\r?\n", raw):
        return record + 1  # no empty line: a record a line
    data = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    if not raw.endswith(b"\n"):
        ends = np.append(ends, len(raw))
    starts = np.concatenate([[0], ends[:-1] + 1])
    crlf = (ends > starts) & (data[np.maximum(ends - 1, 0)] == ord("\r"))
    lines = np.flatnonzero(ends - starts - crlf > 0)
    return int(lines[record]) + 1 if record < len(lines) else None


def check_layout(table: pa.Table, target: str, key: str = "data.path") -> None:
    """Raise where the layout of the CSV file a table came from, not its cells,
    is what went wrong: a comment line above the header (it became the header), or
    another delimiter than ``data.delimiter`` (the target is then no column).

    Cheap where nothing is wrong: it looks at the column names, and at the first
    row only where the first name starts with ``#``. A header may name a column
    ``#id``: a comment is a first row without the target, or one above a row that
    names it.

    Args:
        table: A table from :func:`read_table`.
        target: The target column's name.
        key: The config path of the file, for messages.
    """
    source = _source(table)
    names = table.column_names
    if source is None or (target in names and not names[0].startswith("#")):
        return
    try:
        line, header = _header_line(source.path)
    except OSError:  # the file is gone since: the caller's own message follows
        return
    if names[0].startswith("#"):
        first_row = table.slice(0, 1).to_pylist()
        below = {str(cell).strip() for cell in first_row[0].values()}
        if target not in names or target in below:
            raise _comment(source.shown, line, header, key)
    if target not in names:
        _check_delimiter(header, source.shown, source.delimiter, len(names))


def cell_layout_error(
    table: pa.Table, name: str, index: int, cell: str, key: str = "data.path"
) -> ConfigError | None:
    """The layout error that explains a bad cell of a CSV file, if one does: a
    NUL character (a file that is not text), or a line break from a quote closed
    rows later. For the error path of a later step (a column refused)."""
    source = _source(table)
    if source is None:
        return None
    if "\x00" in cell:
        try:
            text = _text(source.path)
        except OSError:
            text = None
        if text is not None and "\x00" in text:
            return _nul(text, source.shown, key)
    if "\n" in cell or "\r" in cell:
        row, note = file_row(table, index)
        return ConfigError(
            key,
            f"{source.shown}, row {row}, column {name!r}: a quoted cell runs over "
            f'several lines ({_shorten(cell.strip(), 30)!r}), so a quote (") is not '
            "closed where it should be.",
            f"Close the quote where the cell ends, or delete it ({note}).",
        )
    return None


def _delimiter_name(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else repr(delimiter)


def _delimiter_override(delimiter: str) -> str:
    """The override that sets ``delimiter``, quoted for a shell and for Hydra."""
    if delimiter in _DELIMITER_WORDS and delimiter != ";":
        return f"data.delimiter={_DELIMITER_WORDS[delimiter]}"
    return f"\"data.delimiter='{delimiter}'\""


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _first_line(error: Exception) -> str:
    return str(error).strip().split("\n")[0].rstrip(".")
