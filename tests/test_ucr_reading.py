"""annfactory.ucr: the UCR/UEA sets that sktime ships, read as ``[N, T, D]`` arrays."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from annfactory.errors import ConfigError, UnknownNameError
from annfactory.ucr import INSTALL, read_ucr, ucr_names

#: name: (train shape, test shape, number of classes, (shortest, longest), padded)
EXPECTED = {
    "ItalyPowerDemand": ((67, 24, 1), (1029, 24, 1), 2, (24, 24), False),
    "GunPoint": ((50, 150, 1), (150, 150, 1), 2, (150, 150), False),
    "ArrowHead": ((36, 251, 1), (175, 251, 1), 3, (251, 251), False),
    "BasicMotions": ((40, 100, 6), (40, 100, 6), 4, (100, 100), False),
    "JapaneseVowels": ((270, 29, 12), (370, 29, 12), 9, (7, 29), True),
}


def test_the_five_sets_are_listed_sorted() -> None:
    names = ucr_names()
    assert set(EXPECTED) <= set(names)
    assert list(names) == sorted(names)
    # sktime's regression set and its own test set are not classification sets.
    assert "Tecator" not in names
    assert "UnitTest" not in names


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_set_has_its_shapes_classes_and_lengths(name: str) -> None:
    train_shape, test_shape, classes, lengths, padded = EXPECTED[name]
    data = read_ucr(name)
    assert data.name == name
    assert data.train_x.shape == train_shape
    assert data.test_x.shape == test_shape
    assert len(data.class_names) == classes
    assert data.lengths == lengths
    assert data.padded is padded


@pytest.mark.parametrize("name", ucr_names())
def test_every_listed_set_reads_as_finite_read_only_arrays(name: str) -> None:
    data = read_ucr(name)
    for x in (data.train_x, data.test_x):
        assert x.dtype == np.float64
        assert x.ndim == 3
        assert x.flags.c_contiguous
        assert np.isfinite(x).all()
    assert data.train_x.shape[1:] == data.test_x.shape[1:]
    classes = len(data.class_names)
    names = list(data.class_names)
    numeric = all(name.lstrip("-").replace(".", "", 1).isdigit() for name in names)
    assert names == sorted(set(names), key=float if numeric else None)
    for x, y in ((data.train_x, data.train_y), (data.test_x, data.test_y)):
        assert y.dtype == np.int64
        assert y.shape == (x.shape[0],)
        assert y.min() >= 0
        assert y.max() < classes
    # Every class is in the training part: the class names are its labels.
    assert np.bincount(data.train_y, minlength=classes).all()
    assert data.lengths[1] == data.train_x.shape[1]
    for array in (data.train_x, data.test_x, data.train_y, data.test_y):
        assert not array.flags.writeable
    assert read_ucr(name) is data  # read once a process


def test_the_labels_are_the_class_names_of_sktime_s_labels() -> None:
    from sktime.datasets import load_UCR_UEA_dataset

    data = read_ucr("BasicMotions")
    _, labels = load_UCR_UEA_dataset("BasicMotions", split="test")
    assert [data.class_names[i] for i in data.test_y] == list(labels)
    assert data.class_names == ("badminton", "running", "standing", "walking")


def test_numeric_labels_sort_by_value_as_a_tables_do() -> None:
    from sktime.datasets import load_UCR_UEA_dataset

    data = read_ucr("PLAID")
    assert data.class_names == tuple(str(label) for label in range(11))
    _, labels = load_UCR_UEA_dataset("PLAID", split="test")
    assert [data.class_names[i] for i in data.test_y] == list(labels)
    from annfactory.ucr import _class_indices

    train = np.array(["10", "2", "-1.5", "2"])
    names, train_y, test_y = _class_indices("X", "k", train, np.array(["10"]))
    assert names == ("-1.5", "2", "10")
    assert (train_y.tolist(), test_y.tolist()) == ([2, 1, 0, 1], [2])


def test_a_test_label_that_the_train_part_lacks_is_refused() -> None:
    # No bundled set has one; the check is reached through its helper.
    from annfactory.ucr import _class_indices

    train, test = np.array(["b", "a", "b"]), np.array(["a", "c"])
    with pytest.raises(ConfigError, match=r"^data\.dataset: the test part of 'X' "):
        _class_indices("X", "data.dataset", train, test)
    names, train_y, test_y = _class_indices("X", "k", train, test[:1])
    assert names == ("a", "b")
    assert train_y.tolist() == [1, 0, 1]
    assert test_y.tolist() == [0]


def test_unequal_lengths_are_padded_at_the_end_with_the_last_step() -> None:
    from sktime.datasets import load_UCR_UEA_dataset

    data = read_ucr("JapaneseVowels")
    raw, _ = load_UCR_UEA_dataset("JapaneseVowels", split="train")
    sizes = raw.iloc[:, 0].map(len)
    sample = int(np.argmin(sizes.to_numpy()))
    length = int(sizes.iloc[sample])
    assert length == data.lengths[0] < data.lengths[1]
    padded = data.train_x[sample]
    for dimension in range(raw.shape[1]):
        series = raw.iloc[sample, dimension].to_numpy()
        assert np.array_equal(padded[:length, dimension], series)
        assert (padded[length:, dimension] == series[-1]).all()


def test_an_unknown_name_suggests_the_closest_and_lists_all() -> None:
    with pytest.raises(UnknownNameError) as caught:
        read_ucr("GunPiont")
    message = str(caught.value)
    assert message.startswith("data.dataset: unknown UCR/UEA set 'GunPiont'.")
    assert "Did you mean 'GunPoint'?" in message
    assert ", ".join(ucr_names()) in message
    assert len(message.splitlines()) <= 3


def test_a_set_of_the_archive_that_sktime_does_not_ship_is_unknown() -> None:
    # Adiac is in the UCR archive, not in sktime's wheel: nothing is downloaded.
    with pytest.raises(UnknownNameError, match=r"^data\.x: unknown UCR/UEA set"):
        read_ucr("Adiac", key="data.x")


def test_without_sktime_the_message_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sktime", None)  # importing it raises
    for call in (ucr_names, lambda: read_ucr("GunPoint")):
        with pytest.raises(ConfigError) as caught:
            call()
        message = str(caught.value)
        assert caught.value.key == "data"
        assert "data=ucr needs sktime (the optional extra 'sequences')" in message
        assert message.splitlines()[-1] == f"  Install it: {INSTALL}"
        assert len(message.splitlines()) <= 3
    assert INSTALL == "pip install 'annfactory[sequences]'"
