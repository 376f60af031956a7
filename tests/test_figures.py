"""Saving figures: characters the fonts lack give one note, not a warning each."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager

from annfactory.figures import save_figure

#: Three letters of a Japanese column name (ラベル).
KATAKANA = "\N{KATAKANA LETTER RA}\N{KATAKANA LETTER BE}\N{KATAKANA LETTER RU}"


def _has_glyphs(text: str) -> bool:
    """Whether matplotlib's default font draws every character of ``text``."""
    path = font_manager.findfont(font_manager.FontProperties())
    font = font_manager.get_font(path)
    return all(font.get_char_index(ord(character)) for character in text)


def test_missing_glyphs_give_one_note_naming_the_file_and_characters(
    tmp_path: Path,
) -> None:
    if _has_glyphs(KATAKANA):
        pytest.skip("this machine's default font draws katakana: nothing is missing")
    figure, axes = plt.subplots()
    axes.set_title(f"data.target={KATAKANA} {KATAKANA}")
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_figure(figure, tmp_path / "curves.png", err=err, format="png")
    plt.close(figure)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert err.getvalue() == (
        f"note: curves.png: this machine's fonts have no glyph for "
        f"{' '.join(KATAKANA)}; the figure shows boxes there (a font such as Noto "
        "Sans CJK has them).\n"
    )


def test_a_figure_the_fonts_can_draw_gives_no_note_and_other_warnings_pass(
    tmp_path: Path,
) -> None:
    figure, axes = plt.subplots()
    axes.set_title("validation loss")
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        axes.plot([1, 2], [1, 2])
        original = figure.savefig

        def warn_then_save(*args: object, **kwargs: object) -> None:
            warnings.warn("something else", UserWarning, stacklevel=1)
            original(*args, **kwargs)

        figure.savefig = warn_then_save  # type: ignore[method-assign]
        save_figure(figure, tmp_path / "x.png", err=err)
    plt.close(figure)
    assert err.getvalue() == ""
    assert [str(w.message) for w in caught] == ["something else"]
