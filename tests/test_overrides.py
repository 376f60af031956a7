"""Regressions of issue 9: overrides that did something else than they said, and
messages that sent the user in a circle.

Most go through the public API (``compose``, ``to_spec``, ``build_model``); the few
that depend on the command line itself go through ``scripts/run.py``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf
from torch import nn

import annfactory
from annfactory import ConfigError, compose, to_spec
from annfactory.config import argv_for_hydra, check_overrides, overrides_for_hydra

RunCli = Callable[..., Any]

# ------------------------------------------------------------------------------------
# A layer named like a generated module
# ------------------------------------------------------------------------------------


def test_a_layer_named_like_an_activation_module_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.out_act: the layer name 'out_act' is taken by the "
        r"activation \(softmax\) of layer 'out'\.\n  Give the layer another name, "
        r"e\.g\. out_act2",
    ):
        to_spec(compose(["+model.layers.out_act={type: linear, out_features: 2}"]))


def test_the_suggested_layer_name_builds_exactly_the_spec() -> None:
    model = annfactory.build_model(
        compose(["+model.layers.out_act2={type: linear, out_features: 2}"])
    )
    children = dict(model.named_children())
    assert list(children) == [
        "linear1",
        "linear1_act",
        "linear2",
        "linear2_act",
        "out",
        "out_act",
        "out_act2",
    ]
    assert isinstance(children["out_act"], nn.Softmax)
    assert isinstance(children["out_act2"], nn.Linear)


def test_a_layer_named_like_an_identity_activation_is_allowed() -> None:
    # Identity adds no module, so nothing is replaced.
    model = annfactory.build_model(
        compose(
            [
                "model.layers.out.activation=identity",
                "+model.layers.out_act={type: linear, out_features: 2}",
            ]
        )
    )
    names = [name for name, _ in model.named_children()]
    assert names[-2:] == ["out", "out_act"]
    assert isinstance(model.get_submodule("out_act"), nn.Linear)


# ------------------------------------------------------------------------------------
# Mandatory values (???) of group options
# ------------------------------------------------------------------------------------


def test_a_mandatory_value_of_a_group_option_can_be_set() -> None:
    cfg = compose(
        [
            "model=demo",
            "+layer@model.layers.extra=linear",
            "model.layers.extra.out_features=4",
        ]
    )
    spec = to_spec(cfg)
    assert spec.network.layers[-1].name == "extra"
    assert (spec.network.layers[-1].in_features, spec.network.out_features) == (2, 4)
    assert spec.network.num_params == 26 + 2 * 4 + 4


def test_a_mandatory_value_left_unset_names_its_path() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.extra\.out_features: has no value \(\?\?\?\)",
    ):
        to_spec(compose(["+layer@model.layers.extra=linear"]))


# ------------------------------------------------------------------------------------
# A mapping that names an option replaces the slot, with = as with + and ++
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "+", "++"])
def test_a_mapping_with_a_name_replaces_an_activation(prefix: str) -> None:
    cfg = compose(
        [
            # leaky_relu's negative_slope must not survive into elu's parameters.
            "activation@model.layers.linear1.activation=leaky_relu",
            f"{prefix}model.layers.linear1.activation={{name: elu, alpha: 0.3}}",
        ]
    )
    assert OmegaConf.to_container(cfg.model.layers.linear1.activation) == {
        "name": "elu",
        "alpha": 0.3,
    }
    model = annfactory.build_model(cfg)
    activation = model.get_submodule("linear1_act")
    assert isinstance(activation, nn.ELU)
    assert activation.alpha == 0.3


@pytest.mark.parametrize(
    ("overrides", "layer", "field", "expected"),
    [
        (
            ["activation={name: elu, alpha: 0.3}"],
            "linear2",
            "activation",
            "elu(alpha=0.3)",
        ),
        (
            ["init={name: normal, std: 0.1}"],
            "out",
            "weight_init",
            "normal(mean=0, std=0.1)",
        ),
        (
            ["model=mlp", "model.hidden_activation={name: elu, alpha: 0.3}"],
            "hidden2",
            "activation",
            "elu(alpha=0.3)",
        ),
        (
            ["model.layers.linear2.weight_init={name: uniform, a: -0.5, b: 0.5}"],
            "linear2",
            "weight_init",
            "uniform(a=-0.5, b=0.5)",
        ),
    ],
)
def test_a_mapping_with_a_name_works_in_every_slot(
    overrides: list[str], layer: str, field: str, expected: str
) -> None:
    spec = to_spec(compose(overrides))
    found = next(entry for entry in spec.network.layers if entry.name == layer)
    assert getattr(found, field).describe() == expected


def test_overrides_for_hydra_rewrites_only_named_mappings_on_slots() -> None:
    assert overrides_for_hydra(
        [
            "model=demo",
            "model.layers.linear1.activation={name: elu, alpha: 0.3}",
            "+model.layers.out.weight_init={name: zeros}",
            "activation={name: tanh}",
            "model.layers.linear1.activation={alpha: 0.3}",
            "model.layers.linear1={out_features: 4}",
            "activation@model.layers.out.activation=softmax",
        ]
    ) == [
        "model=demo",
        "++model.layers.linear1.activation=null",
        "++model.layers.linear1.activation={name: elu, alpha: 0.3}",
        "++model.layers.out.weight_init=null",
        "++model.layers.out.weight_init={name: zeros}",
        "++activation={name: tanh}",
        "model.layers.linear1.activation={alpha: 0.3}",
        "model.layers.linear1={out_features: 4}",
        "activation@model.layers.out.activation=softmax",
    ]
    # A single string is one override, in compose as here.
    assert overrides_for_hydra("model=mlp") == ["model=mlp"]


def test_argv_for_hydra_leaves_flags_alone() -> None:
    argv = [
        "--config-dir",
        "my_configs",
        "model.layers.linear1.activation={name: elu}",
        "seed=1",
        "-m",
    ]
    assert argv_for_hydra(argv) == [
        "--config-dir",
        "my_configs",
        "++model.layers.linear1.activation=null",
        "++model.layers.linear1.activation={name: elu}",
        "seed=1",
        "-m",
    ]


def test_a_mapping_without_a_name_sets_parameters_of_the_option_there() -> None:
    spec = to_spec(
        compose(
            [
                "activation@model.layers.linear1.activation=elu",
                "model.layers.linear1.activation={alpha: 0.3}",
            ]
        )
    )
    assert spec.network.layers[0].activation.describe() == "elu(alpha=0.3)"
    with pytest.raises(
        ConfigError,
        match=r"^model\.layers\.linear1\.activation\.alpha: unknown parameter 'alpha' "
        r"for activation 'sigmoid'\.",
    ):
        compose(["model.layers.linear1.activation={alpha: 0.3}"])


# ------------------------------------------------------------------------------------
# Every hint gives a command that works
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "command", "kept"),
    [
        pytest.param(
            ["+model.layers.linear1.activation=elu"],
            "model.layers.linear1.activation=elu",
            [],
            id="plus-on-a-key-with-a-value",
        ),
        pytest.param(
            ["+model.in_features=4"], "model.in_features=4", [], id="plus-on-a-number"
        ),
        pytest.param(
            [
                "model.layers.linear1.activation=elu",
                "model.layers.linear1.activation.alpha=0.3",
            ],
            "'model.layers.linear1.activation={name: elu, alpha: 0.3}'",
            [],
            id="parameter-under-a-shorthand",
        ),
        pytest.param(
            [
                "model=mlp",
                "+model.layers.hidden1.weight_init=normal",
                "+model.layers.hidden1.weight_init.std=0.1",
                "+model.layers.hidden1.weight_init.mean=1",
            ],
            "'+model.layers.hidden1.weight_init={name: normal, std: 0.1, mean: 1}'",
            ["model=mlp"],
            id="parameters-under-an-mlp-shorthand",
        ),
        pytest.param(
            ["model=mlp", "model.layers.hidden1.out_features=3"],
            "+model.layers.hidden1.out_features=3",
            ["model=mlp"],
            id="mlp-layer-without-plus",
        ),
        pytest.param(
            ["model=mlp", "model.layers.hiden1.out_features=3"],
            "+model.layers.hidden1.out_features=3",
            ["model=mlp"],
            id="mlp-layer-typo",
        ),
        pytest.param(
            ["model=mlp", "model.layers.hidden9.out_features=3"],
            "model.depth=9 +model.layers.hidden9.out_features=3",
            ["model=mlp"],
            id="mlp-layer-beyond-depth",
        ),
        pytest.param(
            ["model.layers.linear9.out_features=3"],
            "+layer@model.layers.linear9=linear model.layers.linear9.out_features=3",
            [],
            id="new-layer-size",
        ),
        pytest.param(
            ["model.layers.linear9.activation=elu"],
            "+layer@model.layers.linear9=linear model.layers.linear9.out_features=2 "
            "model.layers.linear9.activation=elu",
            [],
            id="new-layer-activation",
        ),
        pytest.param(
            ["model.layers={fc: {type: linear, out_features: 3}}"],
            "'+model.layers={fc: {type: linear, out_features: 3}}'",
            [],
            id="new-layer-mapping",
        ),
        pytest.param(
            ["model=mlp", "init@model.layers.hidden2.weight_init=orthogonal"],
            "+init@model.layers.hidden2.weight_init=orthogonal",
            ["model=mlp"],
            id="group-slot-of-an-mlp-layer",
        ),
        pytest.param(
            ["+model.layers.extra={out_features: 3}"],
            "+layer@model.layers.extra=linear",
            ["+model.layers.extra={out_features: 3}"],
            id="layer-without-type",
        ),
        pytest.param(["init=null"], "~init", [], id="group-null"),
        pytest.param(
            ["model.layers.linear1.activation={}"],
            "~model.layers.linear1.activation",
            [],
            id="empty-mapping",
        ),
        pytest.param(
            ["model.layers.linear1.activation=s\u0456gmoid"],
            "model.layers.linear1.activation=sigmoid",
            [],
            id="non-ascii",
        ),
        pytest.param(["init@=xavier_normal"], "init=xavier_normal", [], id="empty-at"),
    ],
)
def test_every_hint_gives_a_command_that_works(
    bad: list[str], command: str, kept: list[str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        to_spec(compose(bad))
    message = str(raised.value)
    assert command in message
    assert len(message.splitlines()) <= 3
    # The command as a shell would split it, in place of the bad overrides.
    to_spec(compose([*kept, *shlex.split(command)]))


# ------------------------------------------------------------------------------------
# Messages that said too little
# ------------------------------------------------------------------------------------


def test_compose_takes_a_single_string_as_one_override() -> None:
    assert compose("model=mlp").model.type == "mlp"
    assert compose(["model=mlp"]) == compose("model=mlp")


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            ["activaton@model.layers.linear1.activation=elu"],
            r"^activaton@model\.layers\.linear1\.activation: unknown config group "
            r"'activaton'\. Did you mean 'activation'\?\n  Valid config groups: "
            r"activation, data, init, layer, model, optimizer, task\.$",
        ),
        (
            ["init@model.layers.linear9.weight_init=orthogonal"],
            r"^init@model\.layers\.linear9\.weight_init: unknown init slot "
            r"'init@model\.layers\.linear9\.weight_init'\. Did you mean "
            r"'init@model\.layers\.linear\d\.weight_init'\?\n  Valid init slots: init, "
            r"init@model\.layers\.linear1\.bias_init, ",
        ),
        (
            ["activaton=elu"],
            r"^activaton: unknown key 'activaton' in the config\. Did you mean "
            r"'activation'\?",
        ),
        (
            ["model=mlp", "model.layers.hidden9.out_features=3"],
            r"^model\.layers\.hidden9: unknown layer 'hidden9' \(mlp, depth=2\)\. .*\n"
            r"  Valid layers: hidden1, hidden2, out; with hidden9: model\.depth=9 "
            r"\+model\.layers\.hidden9\.out_features=3$",
        ),
        (
            ["model.layers.linear9.out_features=3"],
            r"^model\.layers\.linear9: unknown layer 'linear9'\. .*\n  Valid layers: "
            r"linear1, linear2, out; \+ adds one: ",
        ),
    ],
)
def test_unknown_groups_slots_and_layers_name_the_closest(
    overrides: list[str], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        compose(overrides)


# ------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------


def test_cli_sets_an_activation_with_parameters_by_plain_equals(
    run_cli: RunCli,
) -> None:
    result = run_cli("model.layers.linear1.activation={name: elu, alpha: 0.3}")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines()[0] == (
        "network: 3 -> linear1(3, elu(alpha=0.3)) -> linear2(2, relu) -> "
        "out(2, softmax(dim=-1))"
    )


def test_cli_names_a_config_dir_that_does_not_exist(run_cli: RunCli) -> None:
    result = run_cli("--config-dir", "no_such_dir", "model=deep")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error in the overrides: --config-dir: 'no_such_dir' does not exist "
        f"({result.run_dir.parent / 'no_such_dir'}).",
        "  Give the folder that holds your option folders (model/, init/, ...), "
        "e.g. --config-dir my_configs.",
    ]


# ------------------------------------------------------------------------------------
# A top-level group that replaces a per-layer setting says so
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "note", "layer", "field", "got"),
    [
        (
            ["init=zeros", "model.layers.linear1.weight_init=orthogonal"],
            "note: init=zeros sets the weight init of every dense layer, so "
            "model.layers.linear1.weight_init=orthogonal has no effect.",
            "linear1",
            "weight_init",
            "zeros",
        ),
        (
            [
                "init=zeros",
                "init@model.layers.out.weight_init=orthogonal",
                "model.layers.out.weight_init.gain=2",
            ],
            "note: init=zeros sets the weight init of every dense layer, so "
            "init@model.layers.out.weight_init=orthogonal, "
            "model.layers.out.weight_init.gain=2 have no effect.",
            "out",
            "weight_init",
            "zeros",
        ),
        (
            ["activation=tanh", "model.layers.linear2.activation=sigmoid"],
            "note: activation=tanh sets the activation of every dense layer but the "
            "last, so model.layers.linear2.activation=sigmoid has no effect.",
            "linear2",
            "activation",
            "tanh",
        ),
        (
            ["model=mlp", "activation=tanh", "+model.layers.hidden1.activation=elu"],
            "note: activation=tanh sets the activation of every dense layer but the "
            "last, so +model.layers.hidden1.activation=elu has no effect.",
            "hidden1",
            "activation",
            "tanh",
        ),
    ],
)
def test_a_group_that_replaces_a_layer_setting_prints_a_note(
    overrides: list[str],
    note: str,
    layer: str,
    field: str,
    got: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = to_spec(compose(overrides))
    assert capsys.readouterr().err.splitlines() == [note]
    # The note tells the truth: the layer got the group's choice.
    found = next(entry for entry in spec.network.layers if entry.name == layer)
    assert getattr(found, field).name == got


@pytest.mark.parametrize(
    "overrides",
    [
        # The output layer keeps its own activation: nothing is dropped.
        ["activation=tanh", "model.layers.out.activation=sigmoid"],
        ["model=mlp", "activation=tanh", "model.output_activation=sigmoid"],
        # init sets weights, not biases.
        ["init=zeros", "model.layers.linear1.bias_init=ones"],
        ["model.layers.linear1.weight_init=orthogonal"],
    ],
)
def test_no_note_when_the_layer_setting_stays(
    overrides: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    compose(overrides)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------
# The network line folds repeats
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["model=demo"],
            "3 -> linear1(3, sigmoid) -> linear2(2, relu) -> out(2, softmax(dim=-1))",
        ),
        (
            ["model=mlp", "model.depth=80", "model.width=256"],
            "8 -> hidden1..hidden80(256, relu) x80 -> out(2, identity)",
        ),
        # Two alike stay as they are; three fold.
        (
            ["model=mlp"],
            "8 -> hidden1(32, relu) -> hidden2(32, relu) -> out(2, identity)",
        ),
        (
            ["model=mlp", "model.depth=3"],
            "8 -> hidden1..hidden3(32, relu) x3 -> out(2, identity)",
        ),
        # A layer that differs splits the run, by size or by activation parameters.
        (
            ["model=mlp", "model.depth=7", "+model.layers.hidden4.out_features=5"],
            "8 -> hidden1..hidden3(32, relu) x3 -> hidden4(5, relu) -> "
            "hidden5..hidden7(32, relu) x3 -> out(2, identity)",
        ),
        (
            [
                "model=mlp",
                "model.depth=4",
                "activation@model.hidden_activation=elu",
                "+model.layers.hidden4.activation={name: elu, alpha: 0.5}",
            ],
            "8 -> hidden1..hidden3(32, elu(alpha=1)) x3 -> hidden4(32, elu(alpha=0.5)) "
            "-> out(2, identity)",
        ),
    ],
)
def test_summary_line_folds_runs_of_alike_layers(
    overrides: list[str], line: str
) -> None:
    assert to_spec(compose(overrides)).network.summary_line() == line


def test_cli_network_line_of_a_deep_mlp_is_short_and_a_dropped_setting_noted(
    run_cli: RunCli,
) -> None:
    result = run_cli(
        "model=mlp",
        "model.depth=80",
        "model.width=256",
        "init=zeros",
        "model.weight_init=orthogonal",
        "device=meta",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "network: 8 -> hidden1..hidden80(256, relu) x80 -> out(2, identity)"
    )
    assert result.stderr.splitlines()[0] == (
        "note: init=zeros sets the weight init of every dense layer, so "
        "model.weight_init=orthogonal has no effect."
    )
    assert "Traceback" not in result.stderr


def test_group_slots_listed_in_a_model_file_are_checked_without_composing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model" / "mine.yaml"
    model.parent.mkdir()
    model.write_text(
        "defaults:\n"
        "  - /layer@layers.fc1: linear\n"
        "  - /init@layers.fc1.weight_init: xavier_normal\n"
        "  - _self_\n"
        "type: sequential\nin_features: 4\nlayers:\n  fc1: {out_features: 2}\n"
    )

    def no_composing(overrides: list[str]) -> None:
        raise AssertionError(f"composed {overrides}")

    monkeypatch.setattr("annfactory.config.precheck_keys.compose_bundled", no_composing)
    for overrides in (
        ["model=mine", "init@model.layers.fc1.weight_init=orthogonal"],
        ["model=demo", "init@model.layers.out.bias_init=zeros"],
        ["model=mlp", "activation@model.hidden_activation=tanh"],
        ["task=activations", "activation@task.params.celu=celu"],
    ):
        assert check_overrides(overrides, [tmp_path]) == overrides
    # A slot the file does not list is looked up by composing.
    with pytest.raises(AssertionError, match="composed"):
        check_overrides(
            ["model=mine", "init@model.layers.fc9.weight_init=ones"], [tmp_path]
        )
