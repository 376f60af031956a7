"""The table encoder (issue 21): values, widths, missing and unseen cells,
gradients, the state dict through safetensors, meta and float64 builds, the seeded
embedding init, and the export to ONNX (heavy)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from scipy import stats

from annfactory.columns import Column, TableColumns, embedding_dim
from annfactory.errors import ConfigError
from annfactory.inits import inits
from annfactory.seeding import seeded_generator
from annfactory.table_encoding import TableEncoder

NAN = math.nan
INF = math.inf
IDS = tuple(f"l{k:02d}" for k in range(20))


def penguin_columns() -> TableColumns:
    """One column of each kind: numeric with and without an indicator, one-hot with
    and without a missing level, an embedding with a missing level."""
    return TableColumns(
        (
            Column("age", "numeric", median=30, mean=32, scale=4, indicator=True),
            Column(
                "island",
                "categorical",
                vocabulary=("Biscoe", "Dream", "Torgersen"),
                encoding="onehot",
            ),
            Column(
                "sex",
                "categorical",
                vocabulary=("female", "male"),
                missing_level=True,
                encoding="onehot",
            ),
            Column("mass", "numeric", median=4000, mean=4200, scale=800),
            Column(
                "id",
                "categorical",
                vocabulary=IDS,
                missing_level=True,
                encoding="embedding",
            ),
        )
    )


def test_a_small_table_of_every_column_kind_gives_the_hand_computed_inputs() -> None:
    encoder = TableEncoder(penguin_columns())
    rows = torch.tensor(
        [
            [34.0, 1, 0, 5000, 3],
            [NAN, NAN, NAN, NAN, NAN],
            [INF, -1, -1, -INF, -1],
            # Rounded halves to even: 2.4 -> 2, 1.5 -> 2 (beyond sex's vocabulary:
            # only NaN reaches the missing level), 0.5 -> 0; 20 is id's missing
            # level's row, out of its vocabulary too.
            [28, 2.4, 1.5, 4200, 1e9],
            [32, 0.5, 2, 4200, 20],
        ]
    )
    table = encoder.get_parameter("embedding_4").detach()
    zeros = [0.0] * 11
    expected = torch.tensor(
        [
            [0.5, 0, 0, 1, 0, 1, 0, 0, 1.0, *table[3].tolist()],
            [-0.5, 1, 0, 0, 0, 0, 0, 1, -0.25, *table[20].tolist()],
            [-0.5, 1, 0, 0, 0, 0, 0, 0, -0.25, *zeros],
            [-1.0, 0, 0, 0, 1, 0, 0, 0, 0.0, *zeros],
            [0.0, 0, 1, 0, 0, 0, 0, 0, 0.0, *zeros],
        ]
    )
    out = encoder(rows)
    assert out.shape == (5, 20) == (5, penguin_columns().width)
    assert torch.equal(out, expected)


def random_columns(rng: random.Random) -> TableColumns:
    """A random record of 0 to 8 columns of every kind."""
    features = []
    for k in range(rng.randrange(9)):
        kind = rng.choice(["numeric", "onehot", "embedding"])
        if kind == "numeric":
            features.append(
                Column(
                    f"n{k}",
                    "numeric",
                    median=rng.uniform(-5, 5),
                    mean=rng.uniform(-5, 5),
                    scale=rng.uniform(0.1, 5),
                    indicator=rng.random() < 0.5,
                )
            )
            continue
        size = rng.randrange(1, 8 if kind == "onehot" else 120)
        features.append(
            Column(
                f"c{k}",
                "categorical",
                vocabulary=tuple(str(level) for level in range(size)),
                missing_level=rng.random() < 0.5,
                encoding="onehot" if kind == "onehot" else "embedding",
            )
        )
    return TableColumns(tuple(features))


def test_the_width_is_the_record_s_and_every_column_lands_in_its_place() -> None:
    rng = random.Random(0)
    weird = [NAN, INF, -INF, -1.0, 1e9, -1e30, 0.5, 2.5, 3.0, 0.0, 1.0]
    for _ in range(60):
        columns = random_columns(rng)
        encoder = TableEncoder(columns)
        rows = torch.tensor(
            [[rng.choice(weird) for _ in columns.features] for _ in range(7)]
        ).reshape(7, len(columns.features))
        out = encoder(rows)
        assert out.shape == (7, columns.width)
        assert torch.isfinite(out).all()
        # Column by column, through an encoder of that column alone.
        start = 0
        for index, column in enumerate(columns.features):
            alone = TableEncoder(TableColumns((column,)))
            if column.encoding == "embedding":
                alone.get_parameter("embedding_0").data.copy_(
                    encoder.get_parameter(f"embedding_{index}").data
                )
            stop = start + column.width
            assert torch.equal(out[:, start:stop], alone(rows[:, index : index + 1]))
            start = stop


def test_a_table_of_no_columns_gives_no_inputs() -> None:
    encoder = TableEncoder(TableColumns(()))
    assert encoder(torch.empty(3, 0)).shape == (3, 0)
    assert encoder.out_features == 0


def test_one_hot_inputs_are_zeros_for_unseen_out_of_range_and_missing_codes() -> None:
    with_missing = Column(
        "c", "categorical", vocabulary=("a", "b"), missing_level=True, encoding="onehot"
    )
    without = Column("d", "categorical", vocabulary=("a", "b"), encoding="onehot")
    encoder = TableEncoder(TableColumns((with_missing, without)))
    codes = [0, 1, NAN, -1, 2, 3, 1e9, -1e9, INF, -INF, 0.4, 1.6, -0.4]
    rows = torch.tensor([[code, code] for code in codes])
    expected_c = [
        [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0],
        [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0],
        [1, 0, 0],
    ]  # fmt: skip
    expected_d = [row[:2] for row in expected_c]
    expected_d[2] = [0, 0]  # NaN without a missing level: as an unseen level
    expected = torch.tensor(
        [c + d for c, d in zip(expected_c, expected_d, strict=True)]
    )
    assert torch.equal(encoder(rows), expected.float())


def test_a_missing_number_takes_the_median_and_sets_its_indicator() -> None:
    columns = TableColumns(
        (
            Column("x", "numeric", median=3.0, mean=1.0, scale=2.0, indicator=True),
            Column("y", "numeric", median=-1.0, mean=0.0, scale=0.5),
        )
    )
    rows = torch.tensor([[5.0, 1.0], [NAN, NAN], [INF, -INF], [-3.0, 1e30]])
    expected = torch.tensor(
        [[2.0, 0, 2.0], [1.0, 1, -2.0], [1.0, 1, -2.0], [-2.0, 0, 2e30]]
    )
    assert torch.equal(TableEncoder(columns)(rows), expected)


def test_only_the_embedding_rows_of_known_codes_get_a_gradient() -> None:
    encoder = TableEncoder(penguin_columns())
    rows = torch.tensor(
        [
            [30.0, 0, 0, 4000, code]
            for code in (-1, NAN, 1e9, 20.0, 25, -INF, 7, 7.2, NAN)
        ]
    )
    rows[8, 4] = 2.0
    encoder(rows).pow(2).sum().backward()
    grad = encoder.get_parameter("embedding_4").grad
    assert grad is not None
    used = {7, 2, 20}  # 20: the missing level (NaN); -1, 1e9, 25, -inf: none
    for row in range(21):
        assert bool(grad[row].abs().sum() > 0) == (row in used), row


def test_only_the_embeddings_are_parameters_and_the_fitted_values_are_saved() -> None:
    encoder = TableEncoder(penguin_columns())
    assert [name for name, _ in encoder.named_parameters()] == ["embedding_4"]
    assert encoder.get_parameter("embedding_4").shape == (21, embedding_dim(21))
    assert penguin_columns().embedding_shapes == {"embedding_4": (21, 11)}
    assert set(encoder.state_dict()) == {"embedding_4", "median", "mean", "scale"}
    assert encoder.get_buffer("median").tolist() == [30.0, 4000.0]
    assert not encoder.get_buffer("onehot_level").requires_grad


def test_the_state_dict_round_trips_through_safetensors(tmp_path: Path) -> None:
    encoder = TableEncoder(penguin_columns(), seed=1)
    with torch.no_grad():
        encoder.get_buffer("median").copy_(torch.tensor([31.0, 4100.0]))
    path = tmp_path / "weights.safetensors"
    save_file(encoder.state_dict(), str(path))
    loaded = TableEncoder(penguin_columns(), seed=2)
    rows = torch.tensor([[NAN, 2, NAN, NAN, 5], [33, 0, 1, 3900, NAN]])
    assert not torch.equal(loaded(rows), encoder(rows))
    loaded.load_state_dict(load_file(str(path)))
    assert torch.equal(loaded(rows), encoder(rows))
    assert loaded.get_buffer("median").tolist() == [31.0, 4100.0]


def test_a_meta_build_allocates_nothing() -> None:
    with torch.device("meta"):
        meta = TableEncoder(penguin_columns(), seed=3)
    tensors = [*meta.parameters(), *meta.buffers()]
    assert len(tensors) == 13  # the embedding table, 6 float and 6 index buffers
    assert all(tensor.is_meta for tensor in tensors)


# torch loads its meta kernels and to_empty's machinery on first use: about a second.
@pytest.mark.heavy
def test_a_meta_encoder_runs_and_materializes_to_the_cpu_one() -> None:
    rows = torch.tensor([[NAN, 2, NAN, NAN, 5], [33, 0, 1, 3900, -1]])
    with torch.device("meta"):
        meta = TableEncoder(penguin_columns(), seed=3)
    moved = TableEncoder(penguin_columns()).to("meta")
    for encoder in (meta, moved):
        out = encoder(rows.to("meta"))
        assert out.is_meta
        assert out.shape == (2, 20)
    meta.to_empty(device="cpu")
    meta.reset_running_stats()
    meta.reset_parameters(seed=3)
    assert torch.equal(meta(rows), TableEncoder(penguin_columns(), seed=3)(rows))


def test_float64_follows_the_module_and_keeps_the_index_buffers() -> None:
    encoder = TableEncoder(penguin_columns())
    rows = torch.tensor([[33.3, 2, NAN, NAN, 5], [NAN, 0, 1, 3900.7, NAN]])
    single = encoder(rows)
    double = encoder.to(torch.float64)
    out = double(rows)  # float32 rows in, float64 inputs out
    assert out.dtype == torch.float64
    assert torch.allclose(out, single.double(), atol=1e-6)
    assert double.get_buffer("numeric_index").dtype == torch.long
    assert double(rows.double()).dtype == torch.float64


def test_the_embedding_init_is_the_factory_s_normal_draw_for_its_path() -> None:
    columns = penguin_columns()
    first = TableEncoder(columns, seed=7).get_parameter("embedding_4")
    again = TableEncoder(columns, seed=7).get_parameter("embedding_4")
    other = TableEncoder(columns, seed=8).get_parameter("embedding_4")
    named = TableEncoder(columns, seed=7, layer_name="first")
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, named.get_parameter("embedding_4"))
    # What the factory gives a parameter at encode.embedding_4 with init=normal.
    expected = torch.empty(21, 11)
    generator = seeded_generator(7, "encode.embedding_4")
    inits.get("normal").apply(expected, generator=generator, mean=0.0, std=1.0)
    assert torch.equal(first.detach(), expected)


def test_the_embedding_init_is_torch_s_default_normal() -> None:
    levels = 4001  # embedding_dim 50: 200,050 draws
    column = Column(
        "c",
        "categorical",
        vocabulary=tuple(map(str, range(levels))),
        encoding="embedding",
    )
    table = TableEncoder(TableColumns((column,))).get_parameter("embedding_0")
    assert table.shape == (levels, 50)
    values = table.detach().flatten().numpy()
    assert stats.kstest(values, "norm").pvalue > 0.01
    # Drawn in float64 for a float64 table.
    encoder = TableEncoder(TableColumns((column,))).to(torch.float64)
    encoder.reset_parameters(seed=0)
    double = encoder.get_parameter("embedding_0").detach()
    generator = seeded_generator(0, "encode.embedding_0")
    expected = torch.randn(levels, 50, dtype=torch.float64, generator=generator)
    assert torch.equal(double, expected)


def test_a_wrong_number_of_columns_is_refused_by_name() -> None:
    encoder = TableEncoder(penguin_columns())
    with pytest.raises(ValueError, match=r"takes 5 feature columns \(age, .*\), not 4"):
        encoder(torch.zeros(2, 4))


def test_a_record_without_fitted_values_is_refused() -> None:
    unfitted = TableColumns((Column("x", "numeric", mean=0, scale=1),))
    with pytest.raises(
        ConfigError, match=r"features\[0\]\.median: numeric column 'x' has no fitted"
    ):
        TableEncoder(unfitted)
    empty = Column("c", "categorical", encoding="embedding")
    with pytest.raises(ConfigError, match="the embedding of column 'c' has no level"):
        TableEncoder(TableColumns((empty,)))


def test_the_repr_counts_the_columns() -> None:
    assert "in_features=5, out_features=20, numeric=2, onehot=2, embedding=1" in repr(
        TableEncoder(penguin_columns())
    )


@pytest.mark.heavy
def test_torch_export_and_onnxruntime_give_the_eager_outputs(tmp_path: Path) -> None:
    import onnxruntime

    encoder = TableEncoder(penguin_columns()).eval()
    example = torch.tensor([[34.0, 1, 0, 5000, 3], [NAN, NAN, NAN, NAN, NAN]])
    batch = torch.export.Dim("batch")
    program = torch.export.export(encoder, (example,), dynamic_shapes=({0: batch},))
    onnx_program = torch.onnx.export(
        program,
        (example,),
        dynamo=True,
        input_names=["input"],
        output_names=["output"],
        verbose=False,
    )
    assert onnx_program is not None
    path = tmp_path / "encoder.onnx"
    onnx_program.save(str(path))
    session = onnxruntime.InferenceSession(str(path))
    rows = torch.tensor(
        [
            [34.0, 1, 0, 5000, 3],
            [NAN, NAN, NAN, NAN, NAN],
            [INF, -1, -1, -INF, -1],
            [28, 2.4, 1.5, 4200, 1e9],
            [32, 0.5, 2, 4200, 20],
            [-1e30, 7, -0.4, 1e30, 19.5],
            [31.5, 2, 1, 4321, 25],
        ]
    )
    eager = encoder(rows).detach()
    (onnx_out,) = session.run(None, {"input": rows.numpy()})
    assert torch.allclose(torch.from_numpy(onnx_out), eager, rtol=0, atol=1e-5)
    assert torch.allclose(program.module()(rows), eager, rtol=0, atol=1e-5)
