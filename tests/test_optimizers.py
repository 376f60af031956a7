"""The optimizer registry, its options, building (fused where possible), schedules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from annfactory.errors import ConfigError, RegistrationError, UnknownNameError
from annfactory.optimizers import (
    SCHEDULES,
    OptimizerSpec,
    OptimizerType,
    build_optimizer,
    build_schedule,
    learning_rate,
    optimizers,
    parse_optimizer,
)

CONF = Path(__file__).resolve().parents[1] / "src" / "annfactory" / "conf"
NAMES = optimizers.names()
CPU = torch.device("cpu")


@pytest.fixture
def restore_optimizers() -> Iterator[None]:
    saved = optimizers.snapshot()
    yield
    optimizers.restore(saved)


def _quadratic(dtype: torch.dtype = torch.float32) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=dtype))


def test_the_builtin_optimizers() -> None:
    assert NAMES == ["adam", "adamw", "sgd"]


@pytest.mark.parametrize("name", NAMES)
def test_every_option_file_is_its_entry_with_its_defaults(name: str) -> None:
    node = yaml.safe_load((CONF / "optimizer" / f"{name}.yaml").read_text())
    spec = parse_optimizer({"name": name})
    assert node == spec.to_dict()
    assert set(node) - {"name"} == set(optimizers.get(name).option_names)


@pytest.mark.parametrize("name", NAMES)
def test_parse_and_to_dict_round_trip(name: str) -> None:
    spec = parse_optimizer({"name": name, "lr": 0.05, "weight_decay": 0.001})
    assert spec.options["lr"] == 0.05
    assert parse_optimizer(spec.to_dict()) == spec
    assert parse_optimizer(name) == parse_optimizer({"name": name})


def test_a_dictconfig_node_parses_like_plain_data() -> None:
    node = {"name": "adam", "lr": 0.01, "betas": [0.8, 0.9]}
    spec = parse_optimizer(OmegaConf.create(node))
    assert spec == parse_optimizer(node)
    assert spec.options["betas"] == (0.8, 0.9)


@pytest.mark.parametrize("name", NAMES)
def test_builds_a_fused_optimizer_that_lowers_a_loss(name: str) -> None:
    weight = _quadratic()
    optimizer = build_optimizer(
        parse_optimizer({"name": name, "lr": 0.1}), [weight], CPU
    )
    assert optimizer.defaults["fused"] is True
    assert optimizer.param_groups[0]["lr"] == 0.1
    before = float((weight.detach() ** 2).sum())
    for _ in range(5):
        (weight**2).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    assert float((weight.detach() ** 2).sum()) < before


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_fused_on_the_cpu_for_every_float_dtype(name: str, dtype: torch.dtype) -> None:
    weight = _quadratic(dtype)
    optimizer = build_optimizer(parse_optimizer(name), [weight], CPU)
    (weight**2).sum().backward()
    optimizer.step()
    assert optimizer.defaults["fused"] is True
    assert weight.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_fused_and_default_take_the_same_steps(name: str) -> None:
    spec = parse_optimizer({"name": name, "lr": 0.1})
    fused, plain = _quadratic(torch.float64), _quadratic(torch.float64)
    entry = optimizers.get(name)
    optimizers_ = [
        build_optimizer(spec, [fused], CPU),
        entry.build([plain], spec.options),
    ]
    assert not optimizers_[1].defaults.get("fused")
    for _ in range(3):
        for weight, optimizer in zip((fused, plain), optimizers_, strict=True):
            (weight**2).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    torch.testing.assert_close(fused, plain)


def test_no_fused_kernel_where_torch_has_none() -> None:
    weight = torch.nn.Parameter(torch.zeros(2, device="meta"))
    optimizer = build_optimizer(parse_optimizer("adam"), [weight], torch.device("meta"))
    assert not optimizer.defaults.get("fused")


def test_falls_back_where_the_fused_kernel_is_refused(
    restore_optimizers: None,
) -> None:
    @optimizers.register("old_adam", params={"lr": learning_rate(0.01)})
    def old_adam(parameters: Any, options: Any) -> torch.optim.Optimizer:
        """An Adam of a torch whose fused kernel refuses these parameters."""
        if options.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be ...")
        return torch.optim.Adam(parameters, **options)

    optimizer = build_optimizer(parse_optimizer("old_adam"), [_quadratic()], CPU)
    assert not optimizer.defaults.get("fused")


def test_sgd_options_reach_torch() -> None:
    spec = parse_optimizer(
        {"name": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True}
    )
    group = build_optimizer(spec, [_quadratic()], CPU).param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.2, 0.9, True)
    assert group["dampening"] == 0


def test_adam_options_reach_torch() -> None:
    spec = parse_optimizer({"name": "adamw", "betas": [0.5, 0.75], "eps": 1e-6})
    group = build_optimizer(spec, [_quadratic()], CPU).param_groups[0]
    assert group["betas"] == (0.5, 0.75)
    assert group["eps"] == 1e-6
    assert group["weight_decay"] == 0.01  # AdamW's default, torch's


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lr", [0, -0.1])
def test_a_rate_that_is_not_positive_is_refused(name: str, lr: float) -> None:
    with pytest.raises(ConfigError, match=rf"optimizer\.lr: {lr!r}.*\n.*> 0"):
        parse_optimizer({"name": name, "lr": lr})


@pytest.mark.parametrize(
    "betas",
    [[0.9, 1.0], [0.9], [0.9, 0.99, 0.999], 0.9, "0.9,0.99", [-0.1, 0.9], [0.9, None]],
)
@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_bad_betas_are_refused(name: str, betas: Any) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^optimizer\.betas: .* is not a list of 2 numbers, each >= 0 and < 1\.",
    ):
        parse_optimizer({"name": name, "betas": betas})


def test_nesterov_needs_momentum() -> None:
    with pytest.raises(
        ConfigError, match=r"optimizer\.nesterov: true needs momentum > 0"
    ) as caught:
        parse_optimizer({"name": "sgd", "nesterov": True})
    assert len(str(caught.value).splitlines()) <= 3
    assert "optimizer.momentum" in str(caught.value)


def test_an_unknown_optimizer_names_the_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"optimizer\.name: .*'adma'.*'adam'"):
        parse_optimizer({"name": "adma"})


def test_an_option_of_another_optimizer_is_refused() -> None:
    with pytest.raises(
        UnknownNameError, match=r"optimizer\.betas: unknown parameter 'betas' for "
    ):
        parse_optimizer({"name": "sgd", "betas": [0.9, 0.99]})


def test_a_node_without_a_name_lists_the_optimizers() -> None:
    with pytest.raises(ConfigError, match=r"(?s)optimizer\.name: .*adam, adamw, sgd"):
        parse_optimizer({"lr": 0.1})


def test_a_plugin_registers_an_optimizer(restore_optimizers: None) -> None:
    @optimizers.register("rmsprop", params={"lr": learning_rate(0.01)})
    def rmsprop(parameters: Any, options: Any) -> torch.optim.Optimizer:
        """RMSprop (torch.optim.RMSprop)."""
        return torch.optim.RMSprop(parameters, **options)

    entry = optimizers.get("rmsprop")
    assert isinstance(entry, OptimizerType)
    assert entry.doc == "RMSprop (torch.optim.RMSprop)."
    spec = parse_optimizer({"name": "rmsprop", "lr": 0.5})
    assert spec == OptimizerSpec("rmsprop", {"lr": 0.5})
    optimizer = build_optimizer(spec, [_quadratic()], CPU)
    assert isinstance(optimizer, torch.optim.RMSprop)
    with pytest.raises(RegistrationError, match="'adam' is already registered"):
        optimizers.register("adam", rmsprop)


def test_schedules() -> None:
    assert SCHEDULES == ("none", "cosine", "step")

    def rates(name: str) -> list[float]:
        optimizer = torch.optim.SGD([_quadratic()], lr=1.0)
        schedule = build_schedule(name, optimizer, epochs=4, step_size=2, gamma=0.5)
        if name == "none":
            assert schedule is None
            return []
        assert schedule is not None
        found = []
        for _ in range(4):
            found.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.step()
        return found

    assert rates("none") == []
    assert rates("step") == [1.0, 1.0, 0.5, 0.5]
    assert rates("cosine") == pytest.approx([1.0, 0.853553, 0.5, 0.146447], abs=1e-6)
    with pytest.raises(UnknownNameError, match=r"task\.schedule: .*'cosin'.*'cosine'"):
        build_schedule(
            "cosin", torch.optim.SGD([_quadratic()]), epochs=4, step_size=1, gamma=0.1
        )
