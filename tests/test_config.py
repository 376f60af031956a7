"""Composing the bundled config groups, and turning configs into specs."""

from __future__ import annotations

import importlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

import annfactory
from annfactory import ConfigError, UnknownNameError, compose, to_spec
from annfactory.config import conf_dir, group_options
from annfactory.fixes import flow
from annfactory.inits import inits
from annfactory.layers import layers
from annfactory.layouts import IDS, layout_of
from layer_samples import example_options, first_shape, takes


def _options(group: str) -> list[str]:
    return group_options(group)


def test_bundled_conf_dir_is_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (conf_dir() / "config.yaml").is_file()
    cfg = compose(["model=demo"])
    assert list(cfg.model.layers) == ["linear1", "linear2", "out"]


def test_defaults_of_the_primary_config() -> None:
    cfg = compose()
    assert cfg.seed == 0
    assert cfg.batch_size == 5
    assert cfg.device == "cpu"
    assert cfg.dtype == "float32"
    assert "init" not in cfg
    assert "activation" not in cfg
    assert cfg.model.type == "sequential"


def test_demo_is_the_reference_network() -> None:
    spec = to_spec(compose(["model=demo"]))
    network = spec.network
    assert network.in_features == 3
    summary = [
        (layer.name, layer.type, layer.in_features, layer.out_features)
        for layer in network.layers
    ]
    assert summary == [
        ("linear1", "linear", 3, 3),
        ("linear2", "linear", 3, 2),
        ("out", "linear", 2, 2),
    ]
    assert [layer.activation.name for layer in network.layers] == [
        "sigmoid",
        "relu",
        "softmax",
    ]
    assert network.layers[2].activation.params == {"dim": -1}
    assert [layer.weight_init.name for layer in network.layers] == [
        "xavier_normal",
        "kaiming_normal",
        "default",
    ]
    assert network.num_params == (3 * 3 + 3) + (3 * 2 + 2) + (2 * 2 + 2) == 26


def test_demo_forward_gives_probabilities() -> None:
    model = annfactory.build_model(compose(["model=demo"]))
    x = torch.randn(5, 3)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (5, 2)
    torch.testing.assert_close(y.sum(dim=1), torch.ones(5))
    assert sum(p.numel() for p in model.parameters()) == 26


#: The init options for any tensor of their dimensions (forget_gate: an LSTM's bias).
ANY_SHAPE_INITS = [name for name in _options("init") if inits.get(name).fits is None]


@pytest.mark.parametrize("option", ANY_SHAPE_INITS)
def test_every_init_option_composes_and_builds_as_the_global_init(option: str) -> None:
    cfg = compose(["model=mlp", "model.width=16", f"init={option}"])
    model = annfactory.build_model(cfg)
    for layer in model.spec.layers:
        assert layer.weight_init.name == option
    assert model(torch.randn(4, 8)).shape == (4, 2)


@pytest.mark.parametrize("option", ANY_SHAPE_INITS)
def test_every_init_option_fills_one_layer_slot(option: str) -> None:
    cfg = compose([f"init@model.layers.linear2.weight_init={option}"])
    spec = to_spec(cfg)
    assert spec.network.layers[1].weight_init.name == option
    assert spec.network.layers[0].weight_init.name == "xavier_normal"


def test_the_forget_gate_option_fills_an_lstms_bias_slot() -> None:
    cfg = compose(["model=gru", "init@model.layers.rnn.bias_init=forget_gate"])
    with pytest.raises(ConfigError, match=r"fills the parameters of lstm layers, not"):
        to_spec(cfg)  # a GRU's gates are others
    cfg = compose(
        [
            "model=lstm",
            "init@model.layers.rnn.bias_init=forget_gate",
            "model.layers.rnn.bias_init.val=2.0",
        ]
    )
    layer = to_spec(cfg).network.layers[0]
    chosen = {p.name: p.init for p in layer.parameters}
    assert chosen["bias_ih_l0"].params == {"val": 2.0}
    assert chosen["bias_hh_l0"].name == "forget_gate"


@pytest.mark.parametrize("option", _options("activation"))
def test_every_activation_option_composes_and_builds(option: str) -> None:
    cfg = compose(["model=mlp", f"activation={option}"])
    model = annfactory.build_model(cfg)
    hidden = [layer for layer in model.spec.layers if layer.name != "out"]
    assert all(layer.activation.name == option for layer in hidden)
    assert model.spec.layers[-1].activation.name == "identity"
    y = model(torch.randn(3, 8))
    assert y.shape == (3, 2)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("option", _options("layer"))
def test_every_layer_option_composes_into_a_network(option: str) -> None:
    overrides = [f"+layer@model.layers.extra={option}"]
    required = [name for name, p in layers.get(option).params.items() if p.required]
    overrides += [
        f"model.layers.extra.{name}={flow(example_options(option)[name])}"
        for name in required
    ]
    if layers.get(option).nested:
        overrides.append("+model.layers.extra.layers={inner: {type: layer_norm}}")
    vectors = takes(option, (2,))
    if not vectors:
        # A layer that does not take the demo's output (2 values): alone, on a
        # sample shape it takes.
        overrides += [f"~model.layers.{name}" for name in ("linear1", "linear2", "out")]
        shape = list(first_shape(option))
        overrides += ["~model.in_features", f"+model.input_shape={shape}"]
    model = annfactory.build_model(compose(overrides))
    names = [layer.name for layer in model.spec.layers]
    assert names == (["linear1", "linear2", "out", "extra"] if vectors else ["extra"])
    model.eval()
    if layout_of(model.spec.input_shape) == IDS:
        x = torch.randint(0, 11, (6, *model.spec.input_shape))
    else:
        x = torch.randn(6, *model.spec.input_shape)
    y = model(x)
    assert y.shape == (6, *model.spec.output_shape)


@pytest.mark.parametrize("option", _options("model"))
def test_every_model_option_builds(option: str) -> None:
    model = annfactory.build_model(compose([f"model={option}"]))
    spec = model.spec
    output = model(torch.randn(2, *spec.input_shape))
    assert output.shape == (2, *spec.output_shape)


def test_string_shorthand_means_the_option_with_its_defaults() -> None:
    by_group = to_spec(
        compose(["init@model.layers.linear1.weight_init=kaiming_uniform"])
    )
    by_string = to_spec(compose(["model.layers.linear1.weight_init=kaiming_uniform"]))
    assert by_group == by_string


def test_group_option_parameters_apply() -> None:
    spec = to_spec(compose(["init=normal", "init.std=0.02"]))
    for layer in spec.network.layers:
        assert layer.weight_init.params == {"mean": 0.0, "std": 0.02}


def test_global_init_covers_every_linear_layer_and_activation_keeps_output() -> None:
    spec = to_spec(compose(["activation=tanh", "init=xavier_normal"]))
    layers = spec.network.layers
    assert [layer.activation.name for layer in layers] == ["tanh", "tanh", "softmax"]
    gains = [layer.weight_init.params["gain"] for layer in layers]
    # The gain follows each layer's own activation: tanh 5/3, softmax 1.
    assert gains == pytest.approx([5 / 3, 5 / 3, 1.0])


def test_mlp_layers_are_named_and_sized() -> None:
    cfg = compose(
        [
            "model=mlp",
            "model.in_features=8",
            "model.width=64",
            "model.depth=3",
            "model.out_features=2",
            "activation=tanh",
            "init=xavier_uniform",
        ]
    )
    network = to_spec(cfg).network
    assert [layer.name for layer in network.layers] == [
        "hidden1",
        "hidden2",
        "hidden3",
        "out",
    ]
    assert [layer.out_features for layer in network.layers] == [64, 64, 64, 2]
    assert network.num_params == 8 * 64 + 64 + 2 * (64 * 64 + 64) + 64 * 2 + 2


def test_mlp_single_layer_can_be_addressed() -> None:
    network = to_spec(
        compose(
            [
                "model=mlp",
                "+init@model.layers.hidden2.weight_init=orthogonal",
                "+model.layers.out.out_features=3",
            ]
        )
    ).network
    assert [layer.weight_init.name for layer in network.layers] == [
        "default",
        "orthogonal",
        "default",
    ]
    assert network.out_features == 3


def test_mlp_depth_zero_is_one_linear_layer() -> None:
    network = to_spec(compose(["model=mlp", "model.depth=0"])).network
    assert [(layer.name, layer.in_features) for layer in network.layers] == [("out", 8)]


def test_mlp_unknown_layer_name_suggests_the_closest() -> None:
    cfg = compose(["model=mlp", "+model.layers.hiden2.weight_init=zeros"])
    with pytest.raises(UnknownNameError, match=r"model\.layers\.hiden2.*'hidden2'"):
        to_spec(cfg)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["model.seed=3"], r"^model\.seed: unknown key 'seed' in model\."),
        (
            ["model.layers.linearr1.out_features=3"],
            r"^model\.layers\.linearr1: .*'linear1'",
        ),
        (["model=mlp", "model.widht=3"], r"^model\.widht: .*Did you mean 'width'"),
        (
            ["model.layers.linear1.weight_init.gian=1"],
            r"^model\.layers\.linear1\.weight_init\.gian: .*Did you mean 'gain'",
        ),
        (
            [
                "model.layers.linear1.weight_init=normal",
                "model.layers.linear1.weight_init.std=2",
            ],
            r"was set to the name .normal..*\n.*"
            r"'model\.layers\.linear1\.weight_init=\{name: normal, std: 2\}'",
        ),
        (["model.layers={}"], r"^model\.layers: an empty mapping .* changes nothing"),
        (["init=null"], r"^init: null is not an option.*\n.*~init"),
    ],
)
def test_compose_rejects_keys_that_do_not_exist(
    overrides: list[str], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        compose(overrides)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["init=xavier_norml"], r"^init: unknown init 'xavier_norml'.*'xavier_normal'"),
        (["model=dmeo"], r"^model: unknown model 'dmeo'. Did you mean 'demo'"),
        (["activation=sigmod"], r"unknown activation 'sigmod'. Did you mean 'sigmoid'"),
        (["init=normal", "init.sdt=1"], r"^init\.sdt: unknown parameter 'sdt'.*'std'"),
        (
            ["init@model.layers.linear1.weight_init=orthognal"],
            r"^init@model\.layers\.linear1\.weight_init: unknown init.*'orthogonal'",
        ),
        (
            [
                "activation@model.layers.linear1.activation=elu",
                "+model.layers.linear1.activation.alpah=1",
            ],
            r"alpah.*Did you mean 'alpha'",
        ),
    ],
)
def test_compose_rejects_unknown_names_with_the_closest(
    overrides: list[str], pattern: str
) -> None:
    with pytest.raises(UnknownNameError, match=pattern):
        compose(overrides)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["model.layers.linear1.out_features=0"], r"linear1\.out_features: 0 is out"),
        (["model.layers.linear1.out_features=2.5"], r"2\.5 is not an integer"),
        (["model=mlp", "model.depth=-1"], r"^model\.depth: -1 is out of range"),
        (["model=mlp", "model.width=0"], r"^model\.width: 0 is out of range"),
        (["device=gpu"], r"^device: unknown device 'gpu'"),
        (["dtype=float8"], r"^dtype: unknown dtype 'float8'. Did you mean 'float64'"),
        (["seed=-1"], r"^seed: -1 is out of range"),
        (["seed=1.5"], r"^seed: 1\.5 is not an integer"),
        (["batch_size=0"], r"^batch_size: 0 is out of range"),
        (["batch_size=true"], r"^batch_size: True is not an integer"),
        (
            ["init=uniform", "init.a=2", "init.b=1"],
            r"^init: init 'uniform' needs a < b",
        ),
        (["init=normal", "init.std=-1"], r"^init\.std: -1\.0 is out of range"),
        (["init=normal", "init.std=nan"], r"^init\.std: nan is not finite"),
        (["init=trunc_normal", "init.a=1", "init.b=1"], r"needs a < b"),
        (
            ["init@model.layers.out.bias_init=kaiming_normal"],
            r"^model\.layers\.out\.bias_init: init 'kaiming_normal' needs a tensor of "
            r"at least 2 dimensions; out\.bias has shape \[2\]",
        ),
        (
            ["model.layers.linear1.weight_init=xavier_norml"],
            r"^model\.layers\.linear1\.weight_init: unknown init 'xavier_norml'",
        ),
        (
            ["model.layers.linear1.type=linearr"],
            r"unknown layer type 'linearr'.*'linear'",
        ),
        (["~model.layers"], r"^model\.layers: the network has no layers"),
        (
            ["+model.layers.linear1.weight_init._target_=os.system"],
            r"_target_ is never imported or called",
        ),
        (
            ["model.layers.linear1.activation=os.system"],
            r"unknown activation 'os\.system'",
        ),
        (["activation=softmax", "activation.dim=3"], r"^activation\.dim: 3 is out"),
        (["+model.layers.linear1.widht=3"], r"unknown layer key 'widht'"),
        (["+colour=red"], r"^colour: unknown top-level key 'colour'"),
        (["+layer@model.layers.extra=linear"], r"model\.layers\.extra\.out_features"),
        (
            ["+layer@model.layers.drop=dropout", "model.layers.drop.weight_init=ones"],
            r"layer 'drop' \(dropout\) has no weight",
        ),
    ],
)
def test_bad_configs_name_the_path_and_the_fix(
    overrides: list[str], pattern: str
) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        to_spec(compose(overrides))
    assert len(str(info.value).splitlines()) <= 3


_NEVER_IMPORTED = r"configs name registered entries, never import paths\."
_NEVER_CALLED = r"_target_ is never imported or called\."


def test_dotted_names_are_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "imported.txt"
    (tmp_path / "canary_module.py").write_text(
        f"open({str(canary)!r}, 'w').write('imported')\n"
        "def boom(*args, **kwargs):\n    raise SystemExit('called')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    layer = r"^model\.layers\.linear1\."
    for override, pattern in (
        (
            "model.layers.linear1.activation=canary_module.boom",
            rf"{layer}activation: unknown activation 'canary_module\.boom': "
            + _NEVER_IMPORTED,
        ),
        (
            "model.layers.linear1.activation={name: canary_module.boom}",
            rf"{layer}activation\.name: unknown activation 'canary_module\.boom': "
            + _NEVER_IMPORTED,
        ),
        (
            "model.layers.linear1.weight_init=canary_module.boom",
            rf"{layer}weight_init: unknown init 'canary_module\.boom': "
            + _NEVER_IMPORTED,
        ),
        (
            "model.layers.linear1.type=canary_module.boom",
            rf"{layer}type: unknown layer type 'canary_module\.boom': "
            + _NEVER_IMPORTED,
        ),
        (
            "+model.layers.linear1.weight_init._target_=canary_module.boom",
            rf"{layer}weight_init\._target_: .*{_NEVER_CALLED}",
        ),
        (
            "+model.layers.linear1.activation._target_=canary_module.boom",
            rf"{layer}activation\._target_: .*{_NEVER_CALLED}",
        ),
        (
            "model.layers.linear1.activation={_target_: canary_module.boom}",
            rf"{layer}activation\._target_: unknown parameter '_target_' for "
            "activation 'sigmoid'",
        ),
    ):
        with pytest.raises(ConfigError, match=pattern):
            annfactory.build_model(compose([override]))
    assert not canary.exists()
    assert "canary_module" not in sys.modules

    # The control: the canary fires when its module is imported, and boom when called.
    try:
        module = importlib.import_module("canary_module")
        assert canary.read_text() == "imported"
        with pytest.raises(SystemExit, match="called"):
            module.boom()
    finally:
        sys.modules.pop("canary_module", None)


def test_to_spec_reports_missing_values_with_their_path() -> None:
    cfg = compose()
    cfg.model.layers.linear2.out_features = "???"
    with pytest.raises(ConfigError, match=r"model\.layers\.linear2\.out_features"):
        to_spec(cfg)


def test_plain_data_and_dictconfig_give_the_same_spec() -> None:
    cfg = compose(["model=mlp"])
    assert to_spec(cfg) == to_spec(OmegaConf.to_container(cfg))  # type: ignore[arg-type]


def test_spec_round_trips_through_its_dict() -> None:
    spec = to_spec(compose(["activation=leaky_relu", "init=kaiming_uniform"]))
    again = annfactory.parse_run(spec.to_dict())
    assert again == spec
    assert again.network.layers[0].weight_init.params["a"] == pytest.approx(0.01)


def test_import_and_compose_do_not_import_torch() -> None:
    code = (
        "import sys, annfactory\n"
        "cfg = annfactory.compose(['model=mlp'])\n"
        "spec = annfactory.to_spec(cfg)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(spec.network.num_params)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 8 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2


def test_compose_inside_a_running_hydra_app_leaves_it_initialized(
    tmp_path: Path,
) -> None:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    (tmp_path / "app.yaml").write_text("x: 1\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        outer = GlobalHydra.instance().hydra
        cfg = compose(["model=mlp"])
        assert GlobalHydra.instance().hydra is outer
    assert cfg.model.type == "mlp"


def test_compose_inside_a_hydra_main_app_leaves_the_app_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    (tmp_path / "app.yaml").write_text("x: 1\n")
    seen: dict[str, Any] = {}

    @hydra.main(version_base="1.3", config_path=str(tmp_path), config_name="app")
    def app(cfg: DictConfig) -> None:
        state = GlobalHydra.instance()
        before = (state.hydra, HydraConfig.get().job.name)
        seen["model"] = compose(["model=mlp"]).model.type
        assert GlobalHydra.instance().is_initialized()
        seen["same"] = (GlobalHydra.instance().hydra, HydraConfig.get().job.name)
        seen["before"] = before
        # The app's own loader still composes the app's config.
        loader = GlobalHydra.instance().config_loader()
        seen["options"] = loader.get_group_options("hydra/launcher")
        seen["app"] = compose_app(cfg)

    def compose_app(cfg: DictConfig) -> int:
        from hydra import compose as hydra_compose

        return int(hydra_compose(config_name="app", overrides=["x=2"]).x)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["app.py", "hydra.run.dir=run"])
    app()
    assert seen["model"] == "mlp"
    assert seen["same"] == seen["before"]
    assert "basic" in seen["options"]
    assert seen["app"] == 2


def test_gain_defaults_to_activation_gain_in_spec() -> None:
    spec = to_spec(compose(["activation=tanh", "init=xavier_normal"]))
    first = spec.network.layers[0].parameters[0]
    assert first.init.params["gain"] == pytest.approx(5 / 3)
    explicit = to_spec(
        compose(["activation=tanh", "init=xavier_normal", "init.gain=2.0"])
    )
    assert explicit.network.layers[0].weight_init.params["gain"] == 2.0
    assert math.isclose(annfactory.calculate_gain("relu"), math.sqrt(2))
