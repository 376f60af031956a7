"""Sequence layers: layouts, shapes, torch equivalence, inits and bad input."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import nn

import annfactory
from annfactory import ConfigError
from annfactory.layouts import CHANNELS, IDS, SEQUENCE, VECTOR, layout_of
from annfactory.seeding import random_input
from annfactory.tasks import run_named_task


def _spec(*layers: tuple[str, dict[str, Any]], **model: Any) -> annfactory.RunSpec:
    model.setdefault("input_shape", [12, 3])
    return annfactory.parse_run(
        {"model": {"layers": dict(layers), **model}, "seed": 3, "batch_size": 4}
    )


def _build(spec: annfactory.RunSpec) -> Any:
    return annfactory.build_network(spec)


def _error(*layers: tuple[str, dict[str, Any]], **model: Any) -> str:
    with pytest.raises(ConfigError) as info:
        _spec(*layers, **model)
    return str(info.value)


LSTM = ("rnn", {"type": "lstm", "hidden_size": 5})
HEAD = ("out", {"type": "linear", "out_features": 2})


# ------------------------------------------------------------------------------------
# Layouts
# ------------------------------------------------------------------------------------


def test_the_first_layer_that_takes_a_layout_sets_the_inputs() -> None:
    assert layout_of(_spec(LSTM, HEAD).network.input_shape) == SEQUENCE
    conv = ("conv", {"type": "conv1d", "out_channels": 2, "kernel_size": 3})
    assert layout_of(_spec(conv, HEAD).network.input_shape) == CHANNELS
    # Through a transpose: [T, F] -> [F, T] for the convolution.
    swap = ("swap", {"type": "transpose"})
    spec = _spec(swap, conv, ("flat", {"type": "flatten"}), HEAD)
    assert layout_of(spec.network.input_shape) == SEQUENCE
    # Only layers that take any layout (a linear): channels first, as before.
    assert layout_of(_spec(HEAD).network.input_shape) == CHANNELS
    emb = ("emb", {"type": "embedding", "num_embeddings": 9, "embedding_dim": 4})
    spec = _spec(emb, LSTM, HEAD, input_shape=[7])
    assert layout_of(spec.network.input_shape) == IDS
    assert layout_of(_spec(HEAD, input_shape=[7]).network.input_shape) == VECTOR


def test_each_layer_gives_its_layout() -> None:
    conv = ("conv", {"type": "conv1d", "out_channels": 6, "kernel_size": 3})
    spec = _spec(
        ("a", {"type": "transpose"}),
        conv,
        ("b", {"type": "transpose"}),
        ("rnn", {"type": "gru", "hidden_size": 4, "output": "sequence"}),
        ("pool", {"type": "sequence_pool", "mode": "max"}),
        HEAD,
    )
    shapes = [
        (tuple(x.output_shape), layout_of(x.output_shape)) for x in spec.network.layers
    ]
    assert shapes == [
        ((3, 12), CHANNELS),
        ((6, 10), CHANNELS),
        ((10, 6), SEQUENCE),
        ((10, 4), SEQUENCE),
        ((4,), VECTOR),
        ((2,), VECTOR),
    ]
    network = _build(spec)
    assert network(torch.randn(4, 12, 3)).shape == (4, 2)


# ------------------------------------------------------------------------------------
# Recurrent layers: torch's modules, its parameters, the outputs
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_recurrent_layer_computes_what_torch_computes(
    kind: str, bidirectional: bool
) -> None:
    options = {"hidden_size": 5, "num_layers": 2, "bidirectional": bidirectional}
    outputs = {}
    x = torch.randn(4, 12, 3)
    for output in ("last", "mean", "sequence"):
        spec = _spec(("rnn", {"type": kind, **options, "output": output}))
        network = _build(spec)
        reference = getattr(nn, kind.upper())(3, batch_first=True, **options)
        # The same parameters, loaded by name: the flat weights torch runs on are
        # the ones the factory filled.
        reference.load_state_dict(network.rnn.state_dict())
        steps, _ = reference(x)
        outputs[output] = network(x)
        assert outputs[output].shape[-1] == 5 * (2 if bidirectional else 1)
        assert sum(p.numel() for p in network.parameters()) == spec.network.num_params
    torch.testing.assert_close(outputs["sequence"], steps)
    torch.testing.assert_close(outputs["mean"], steps.mean(dim=1))
    last = steps[:, -1]
    if bidirectional:  # the backward direction ends at the first step
        last = torch.cat((steps[:, -1, :5], steps[:, 0, 5:]), dim=-1)
    torch.testing.assert_close(outputs["last"], last)


def test_training_updates_the_weights_the_lstm_runs_on() -> None:
    network = _build(_spec(LSTM, HEAD))
    x = torch.randn(4, 12, 3)
    before = network(x).detach()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.5)
    network(x).square().sum().backward()
    assert network.rnn.weight_hh_l0.grad is not None
    optimizer.step()
    assert not torch.allclose(network(x), before)


def test_recurrent_inits_follow_their_defaults() -> None:
    spec = _spec(("rnn", {"type": "lstm", "hidden_size": 16, "bidirectional": True}))
    inits = {
        p.name: (p.init.name, p.init.params) for p in spec.network.layers[0].parameters
    }
    assert inits["weight_ih_l0"] == ("xavier_uniform", {"gain": 1.0})
    assert inits["weight_hh_l0_reverse"] == ("orthogonal", {"gain": 1.0})
    assert inits["bias_ih_l0"] == ("forget_gate", {"val": 1.0})
    assert inits["bias_hh_l0"] == ("zeros", {})
    network = _build(spec)
    bias = network.rnn.bias_ih_l0.detach()
    assert bias[16:32].eq(1).all()
    assert bias[:16].eq(0).all()
    assert bias[32:].eq(0).all()
    hh = network.rnn.weight_hh_l0.detach().double()  # [64, 16]: orthonormal columns
    eye = torch.eye(16, dtype=torch.float64)
    torch.testing.assert_close(hh.T @ hh, eye, atol=1e-6, rtol=0)
    bound = math.sqrt(6 / (3 + 64))
    assert network.rnn.weight_ih_l0.abs().max() <= bound
    gru = _spec(("rnn", {"type": "gru", "hidden_size": 4})).network.layers[0]
    assert {p.init.name for p in gru.parameters if "bias" in p.name} == {"zeros"}


def test_weight_and_bias_init_and_the_init_group_reach_the_recurrent_weights() -> None:
    layer = ("rnn", {"type": "lstm", "hidden_size": 4, "weight_init": "orthogonal",
                     "bias_init": "zeros"})  # fmt: skip
    names = {p.name: p.init.name for p in _spec(layer).network.layers[0].parameters}
    assert names == {"weight_ih_l0": "orthogonal", "weight_hh_l0": "orthogonal",
                     "bias_ih_l0": "zeros", "bias_hh_l0": "zeros"}  # fmt: skip
    spec = annfactory.parse_run(
        {"model": {"input_shape": [12, 3], "layers": dict([LSTM, HEAD])},
         "init": "kaiming_normal"}
    )  # fmt: skip
    rnn = spec.network.layers[0]
    assert {p.init.name for p in rnn.parameters if "weight" in p.name} == {
        "kaiming_normal"
    }
    encoder = ("enc", {"type": "transformer_encoder", "nhead": 3, "dim_feedforward": 8})
    spec = annfactory.parse_run(
        {"model": {"input_shape": [12, 3], "layers": dict([encoder])},
         "init": "xavier_normal"}
    )  # fmt: skip
    chosen = {p.name: p.init.name for p in spec.network.layers[0].parameters}
    assert chosen["layers.0.self_attn.in_proj_weight"] == "xavier_normal"
    assert chosen["layers.0.linear2.weight"] == "xavier_normal"
    assert chosen["layers.0.norm1.weight"] == "ones"  # the norms keep theirs


def test_the_forget_gate_init_is_refused_on_another_tensor() -> None:
    layer = ("fc", {"type": "linear", "out_features": 6, "bias_init": "forget_gate"})
    message = _error(layer, input_shape=[3])
    assert message.startswith(
        "model.layers.fc.bias_init: init 'forget_gate' fills the parameters of lstm "
        "layers, not of a linear; fc.bias has shape [6]."
    )
    lstm = ("rnn", {"type": "lstm", "hidden_size": 3, "weight_init": "forget_gate"})
    message = _error(lstm)
    assert message.startswith(
        "model.layers.rnn.weight_init: init 'forget_gate' needs an LSTM's bias (1-D: "
        "four gates of equal size); rnn.weight_ih_l0 has shape [12, 3]."
    )


def test_the_init_report_judges_the_forget_gate_exactly(tmp_path: Path) -> None:
    spec = annfactory.parse_run(
        {"model": {"input_shape": [12, 3], "layers": {
            "rnn": {"type": "lstm", "hidden_size": 64}}}}
    )  # fmt: skip
    out = io.StringIO()
    metrics = run_named_task({"name": "init_report"}, spec, tmp_path, out=out)
    # Its histogram: the two values' lines (a constant per gate has no density).
    assert (tmp_path / "init_rnn.bias_ih_l0.png").stat().st_size > 0
    row = metrics["init_report"]["rnn.bias_ih_l0"]
    assert row["theory"]["kind"] == "gates"
    assert row["theory"]["mean"] == 0.25
    assert row["theory"]["std"] == pytest.approx(math.sqrt(3) / 4)
    assert row["agrees"] is True
    assert metrics["all_agree"] is True
    assert "forget gate 1, other gates 0" in out.getvalue()


# ------------------------------------------------------------------------------------
# Transformer encoder, positions, embedding
# ------------------------------------------------------------------------------------


def test_each_encoder_layer_draws_its_own_parameters_and_torch_agrees() -> None:
    options = {"nhead": 3, "dim_feedforward": 8, "num_layers": 2, "dropout": 0.0}
    spec = _spec(("enc", {"type": "transformer_encoder", **options}))
    network = _build(spec).eval()
    first = network.enc.layers[0].self_attn.in_proj_weight
    second = network.enc.layers[1].self_attn.in_proj_weight
    assert not torch.equal(first, second)
    reference = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(3, 3, 8, 0.0, batch_first=True),
        2,
        enable_nested_tensor=False,
    ).eval()
    reference.load_state_dict(network.enc.state_dict())
    x = torch.randn(4, 12, 3)
    torch.testing.assert_close(network(x), reference(x))


def test_sinusoidal_positions_are_vaswanis_and_learned_ones_a_parameter() -> None:
    network = _build(_spec(("pos", {"type": "positional_encoding", "max_length": 12})))
    x = torch.zeros(1, 12, 4 - 1)
    table = network(x)[0].double()
    t, i = 7, 1  # sin(t / 10000^(2i/d)) at column 2i
    assert table[t, 2 * i].item() == pytest.approx(math.sin(t / 10000 ** (2 * i / 3)))
    assert table[t, 1].item() == pytest.approx(math.cos(t))
    assert sum(p.numel() for p in network.parameters()) == 0
    assert "pos.table" not in network.state_dict()
    learned = _spec(("pos", {"type": "positional_encoding", "kind": "learned",
                             "max_length": 20}))  # fmt: skip
    (weight,) = learned.network.layers[0].parameters
    assert weight.shape == (20, 3)
    assert (weight.init.name, weight.init.params) == (
        "normal",
        {"mean": 0.0, "std": 0.02},
    )


def test_an_embedding_takes_ids_and_keeps_its_padding_row_zero() -> None:
    emb = ("emb", {"type": "embedding", "num_embeddings": 9, "embedding_dim": 4,
                   "padding_idx": 2})  # fmt: skip
    spec = _spec(emb, LSTM, HEAD, input_shape=[7])
    network = _build(spec)
    assert network.emb.weight[2].eq(0).all()
    assert network.emb.weight[3].ne(0).any()
    x = random_input(spec, torch.device("cpu"), torch.float32)
    assert x.dtype == torch.int64
    assert x.shape == (4, 7)
    assert int(x.min()) >= 0
    assert int(x.max()) < 9
    assert network(x).shape == (4, 2)


def test_a_batch_norm_on_a_sequence_normalizes_each_feature() -> None:
    # The lstm after it makes the input a sequence.
    network = _build(_spec(("bn", {"type": "batch_norm"}), LSTM))
    assert network.bn.num_features == 3
    x = torch.randn(8, 12, 3) * torch.tensor([1.0, 5.0, 0.1]) + 4
    y = network.train().bn(x)
    np.testing.assert_allclose(y.mean(dim=(0, 1)).detach(), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(dim=(0, 1), unbiased=False).detach(), 1, atol=1e-3)


def test_a_residual_block_holds_sequence_layers_and_projects_features() -> None:
    block = ("block", {"type": "residual", "projection": True, "layers": {
        "rnn": {"type": "lstm", "hidden_size": 6, "output": "sequence"},
        "enc": {"type": "transformer_encoder", "nhead": 2, "dim_feedforward": 4},
    }})  # fmt: skip
    spec = _spec(block)
    layer = spec.network.layers[0]
    assert layout_of(layer.output_shape) == SEQUENCE
    shapes = {p.name: p.shape for p in layer.parameters}
    assert shapes["projection.weight"] == (6, 3)
    network = _build(spec)
    assert network(torch.randn(4, 12, 3)).shape == (4, 12, 6)


def test_the_meta_dry_run_counts_sequence_parameters() -> None:
    layers = [
        ("proj", {"type": "linear", "out_features": 8}),
        ("pos", {"type": "positional_encoding", "kind": "learned", "max_length": 64}),
        ("enc", {"type": "transformer_encoder", "nhead": 2, "num_layers": 3}),
        (
            "rnn",
            {"type": "gru", "hidden_size": 7, "num_layers": 2, "bidirectional": True},
        ),
        HEAD,
    ]
    spec = _spec(*layers)
    meta = annfactory.build_network(annfactory.parse_run(
        {"model": {"input_shape": [12, 3], "layers": dict(layers)}, "device": "meta"}
    ))  # fmt: skip
    real = _build(spec)
    count = sum(p.numel() for p in real.parameters())
    assert count == spec.network.num_params == sum(p.numel() for p in meta.parameters())


# ------------------------------------------------------------------------------------
# Bad input: each names the layer, the value and what is allowed
# ------------------------------------------------------------------------------------


def test_a_sequence_layer_on_a_vector_or_an_image_is_refused() -> None:
    message = _error(LSTM, input_shape=[8])
    assert message.startswith(
        "model.layers.rnn: layer type 'lstm' cannot take the input shape [8]: it "
        "takes a sequence [time, features], not a vector [features]."
    )
    conv = ("conv", {"type": "conv2d", "out_channels": 2, "kernel_size": 3})
    message = _error(conv, ("enc", {"type": "transformer_encoder", "nhead": 1}),
                     input_shape=[1, 8, 8])  # fmt: skip
    assert "not a channel map [channels, height, width]" in message
    conv1 = ("conv", {"type": "conv1d", "out_channels": 2, "kernel_size": 3})
    message = _error(conv1, LSTM, input_shape=[1, 8])
    assert (
        "not a channel map [channels, length] (a transpose layer before it " in message
    )
    message = _error(("fc", {"type": "linear", "out_features": 4}), LSTM,
                     input_shape=[8])  # fmt: skip
    assert "it takes a sequence [time, features], not a vector [features]" in message


def test_nhead_that_does_not_divide_d_model_is_refused() -> None:
    message = _error(("enc", {"type": "transformer_encoder", "nhead": 5}),
                     input_shape=[12, 32])  # fmt: skip
    assert message.startswith(
        "model.layers.enc: layer type 'transformer_encoder' cannot take the input "
        "shape [12, 32]: nhead 5 does not divide d_model 32 (the input's features); "
        "allowed: 1, 2, 4, 8, 16, 32."
    )


def test_hidden_size_0_is_refused_with_its_key() -> None:
    message = _error(("rnn", {"type": "gru", "hidden_size": 0}))
    assert message.startswith("model.layers.rnn.hidden_size: ")
    assert ">= 1" in message


def test_an_embedding_after_a_linear_layer_is_refused() -> None:
    emb = ("emb", {"type": "embedding", "num_embeddings": 9, "embedding_dim": 4})
    message = _error(("fc", {"type": "linear", "out_features": 5}), emb,
                     input_shape=[7])  # fmt: skip
    assert message.startswith(
        "model.layers.emb: layer type 'embedding' cannot take the input shape [5]: "
        "it takes integer ids [time] (the model's input), not a vector [features]."
    )


def test_max_length_shorter_than_the_sequence_is_refused() -> None:
    message = _error(("pos", {"type": "positional_encoding", "max_length": 10}))
    assert (
        "max_length 10 is shorter than the sequence (12 steps); set max_length >= 12"
        in message
    )


def test_dropout_on_a_single_recurrent_layer_is_refused() -> None:
    message = _error(("rnn", {"type": "lstm", "hidden_size": 4, "dropout": 0.2}))
    assert "dropout 0.2 acts between stacked layers and num_layers is 1" in message


def test_an_unknown_output_names_the_choices() -> None:
    message = _error(("rnn", {"type": "lstm", "hidden_size": 4, "output": "lats"}))
    assert message.startswith("model.layers.rnn.output: ")
    assert "last" in message
    assert "sequence" in message


def test_a_sequence_block_that_changes_the_features_suggests_a_linear_projection() -> (
    None
):
    block = ("block", {"type": "residual", "layers": {
        "rnn": {"type": "gru", "hidden_size": 8, "output": "sequence"}}})  # fmt: skip
    message = _error(block)
    assert "Set +model.layers.block.projection=true (a linear projection" in message


def test_a_residual_body_that_swaps_the_layout_is_refused() -> None:
    block = ("block", {"type": "residual", "layers": {"t": {"type": "transpose"}}})
    message = _error(block, input_shape=[4, 4])
    assert "x + body(x) would add unlike dimensions" in message


def test_diagnose_measures_a_recurrent_and_an_encoder_layers_weight_gradient() -> None:
    spec = annfactory.parse_run(
        {"model": {"input_shape": [12, 3], "layers": {
            "rnn": {"type": "gru", "hidden_size": 8, "output": "sequence"},
            "enc": {"type": "transformer_encoder", "nhead": 2, "dim_feedforward": 8},
            "pool": {"type": "sequence_pool"},
            "out": {"type": "linear", "out_features": 2},
        }}}
    )  # fmt: skip
    metrics = run_named_task({"name": "diagnose"}, spec, None, out=io.StringIO())
    rows = {row["name"]: row for row in metrics["diagnose"]["layers"]}
    assert rows["rnn"]["weight_grad_norm"] > 0  # weight_ih_l0's
    assert rows["enc"]["weight_grad_norm"] > 0  # layers.0.self_attn.in_proj_weight's
    assert rows["pool"]["weight_grad_norm"] is None


class _StepScale(nn.Module):
    """A plugin's sequence layer: each step's features times a learnt vector."""

    default_inits: ClassVar[dict[str, Any]] = {"weight": "ones"}

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def test_a_plugin_layer_that_takes_sequences_sets_the_inputs_layout() -> None:
    annfactory.layers.register("step_scale", _StepScale, takes=SEQUENCE)
    spec = _spec(("scale", {"type": "step_scale"}), ("bn", {"type": "batch_norm"}))
    assert layout_of(spec.network.input_shape) == SEQUENCE
    assert layout_of(spec.network.layers[1].input_shape) == SEQUENCE
    network = _build(spec)
    assert network.bn.num_features == 3  # the sequence's features, not its 12 steps
    assert network(torch.randn(4, 12, 3)).shape == (4, 12, 3)


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """The bytes a training forward pass keeps for its backward pass (each storage
    once), and its output."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(x)
    return sum(storages.values()) + out.numel() * out.element_size()


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=lstm"],
        [
            "model=lstm",
            "model.layers.rnn.bidirectional=true",
            "model.layers.rnn.num_layers=2",
        ],
        ["model=gru", "model.layers.rnn.num_layers=2"],
        ["model=transformer"],
        ["model=transformer", "model.layers.encoder.nhead=8"],
    ],
    ids=["lstm", "lstm-stacked-bidirectional", "gru-stacked", "transformer", "8-heads"],
)
def test_the_memory_estimate_holds_what_a_training_pass_keeps(
    overrides: list[str],
) -> None:
    from annfactory.factory import batch_bytes

    cfg = annfactory.compose(
        [*overrides, "model.input_shape=[200,3]", "batch_size=8", "seed=0"]
    )
    spec = annfactory.to_spec(cfg)
    model = annfactory.build_model(cfg).train()
    x = torch.randn(spec.batch_size, *spec.network.input_shape)
    saved = _saved_bytes(model, x)
    estimate = batch_bytes(spec)
    # An upper bound, and not a loose one.
    assert saved <= estimate <= 2 * saved, (saved, estimate)


def test_the_memory_guard_names_a_transformers_attention() -> None:
    from annfactory.errors import MemoryLimitError
    from annfactory.factory import check_memory

    spec = annfactory.to_spec(
        annfactory.compose(
            ["model=transformer", "model.input_shape=[200000,1]",
             "model.layers.pos.max_length=200000"]
        )
    )  # fmt: skip
    with pytest.raises(MemoryLimitError) as refused:
        check_memory(spec, [])
    assert refused.value.key == "model.layers.encoder"
    message = str(refused.value)
    # 3 x 4 heads x 2 layers x 200,000^2 steps x 5 rows x 4 bytes: 19.2 TB.
    assert "its attention over 200,000 steps makes the run need 19,2" in message
    assert "19,200.0 GB of it for its nhead x steps x steps weights" in message
