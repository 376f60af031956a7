"""The training loop: learning, determinism, early stopping, keep=best, metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional

from annfactory.errors import ConfigError
from annfactory.optimizers import build_optimizer, build_schedule, parse_optimizer
from annfactory.training import EpochRecord, TrainResult, train

CPU = torch.device("cpu")


def _blobs(
    seed: int, rows: int = 200, classes: int = 3, spread: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs around well separated centres: a separable problem."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])[:classes]
    noise = torch.randn(rows, 2, generator=generator) * spread
    return centres[labels] + noise, labels


def _mlp(seed: int = 0, outputs: int = 3, width: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, width), nn.ReLU(), nn.Linear(width, outputs))


def _train(
    module: nn.Module,
    data: tuple[torch.Tensor, ...],
    *,
    loss: Callable[
        [torch.Tensor, torch.Tensor], torch.Tensor
    ] = functional.cross_entropy,
    metric: str = "accuracy",
    optimizer: dict[str, Any] | torch.optim.Optimizer | None = None,
    seed: int = 0,
    **options: Any,
) -> TrainResult:
    if not isinstance(optimizer, torch.optim.Optimizer):
        spec = parse_optimizer(optimizer or {"name": "adam", "lr": 0.01})
        optimizer = build_optimizer(spec, module.parameters(), CPU)
    arguments: dict[str, Any] = {
        "schedule": None,
        "epochs": 5,
        "batch_size": 16,
        "patience": None,
        "keep": "last",
        **options,
    }
    return train(
        logits=module,
        module=module,
        loss=loss,
        metric=metric,
        optimizer=optimizer,
        x_train=data[0],
        y_train=data[1],
        x_val=data[2],
        y_val=data[3],
        generator=torch.Generator().manual_seed(seed),
        **arguments,
    )


@pytest.fixture(scope="module")
def blobs() -> tuple[torch.Tensor, ...]:
    return (*_blobs(0, rows=203), *_blobs(1, rows=60))


def test_a_separable_problem_is_learned(blobs: tuple[torch.Tensor, ...]) -> None:
    seen: list[EpochRecord] = []
    result = _train(_mlp(), blobs, epochs=8, on_epoch=seen.append)
    history = result.history
    assert seen == history
    assert [record.epoch for record in history] == list(range(1, 9))
    assert result.epochs_run == 8
    assert not result.stopped_early
    assert history[-1].train_loss < history[0].train_loss / 2
    assert history[-1].val_loss < history[0].val_loss / 2
    assert history[-1].metric == 1.0
    assert all(record.lr == 0.01 for record in history)
    assert all(record.seconds > 0 for record in history)
    assert result.seconds >= sum(record.seconds for record in history)


def test_the_same_seed_gives_a_bit_identical_history(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    def history(shuffle_seed: int) -> list[tuple[float, ...]]:
        result = _train(_mlp(), blobs, seed=shuffle_seed)
        return [(r.train_loss, r.val_loss, r.metric) for r in result.history]

    first = history(0)
    assert history(0) == first  # exact floats
    assert history(1) != first


def test_train_loss_is_the_row_weighted_mean_of_the_steps(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    # With a rate of 0 every step sees the same weights, so the epoch's loss is the
    # loss over all training rows; 203 rows in batches of 16 leave a batch of 11.
    module = _mlp()
    frozen = torch.optim.SGD(module.parameters(), lr=0.0)
    result = _train(module, blobs, optimizer=frozen, epochs=2)
    with torch.no_grad():
        expected = functional.cross_entropy(module(blobs[0]), blobs[1]).item()
        val = functional.cross_entropy(module(blobs[2]), blobs[3]).item()
    for record in result.history:
        assert record.train_loss == pytest.approx(expected, rel=1e-6)
        assert record.val_loss == pytest.approx(val, rel=1e-6)


def test_accuracy_is_the_share_of_argmax_hits(blobs: tuple[torch.Tensor, ...]) -> None:
    module = _mlp(seed=3)
    # Three epochs at a small rate: the network is still far from perfect.
    result = _train(module, blobs, optimizer={"name": "sgd", "lr": 0.001}, epochs=3)
    with torch.no_grad():
        outputs = module(blobs[2])
    hits = sum(
        int(max(range(3), key=lambda c: float(row[c])) == int(label))
        for row, label in zip(outputs, blobs[3], strict=True)
    )
    assert result.history[-1].metric == pytest.approx(hits / 60, abs=1e-7)
    assert 0 < result.history[-1].metric < 1


def test_a_single_output_unit_is_a_binary_classifier() -> None:
    x_train, labels = _blobs(0, rows=120, classes=2)
    x_val, val_labels = _blobs(1, rows=40, classes=2, spread=3.0)
    data = (x_train, labels.float()[:, None], x_val, val_labels.float()[:, None])
    module = _mlp(outputs=1)
    result = _train(
        module, data, loss=functional.binary_cross_entropy_with_logits, epochs=3
    )
    with torch.no_grad():
        logits = module(x_val)[:, 0].tolist()
    hits = sum(
        int((logit > 0) == bool(label))
        for logit, label in zip(logits, val_labels.tolist(), strict=True)
    )
    assert result.history[-1].metric == pytest.approx(hits / 40, abs=1e-7)
    assert 0.5 < result.history[-1].metric < 1  # overlapping blobs: not all right


@pytest.mark.parametrize("outputs", [1, 2])
def test_r2_is_one_minus_the_residual_over_the_total_squares(outputs: int) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(150, 2, generator=generator)
    weights = torch.tensor([[1.5, -2.0], [0.5, 3.0]])[:, :outputs]
    y = x @ weights + 0.3 * torch.randn(150, outputs, generator=generator)
    data = (x[:100], y[:100], x[100:], y[100:])
    module = _mlp(outputs=outputs)
    result = _train(module, data, loss=functional.mse_loss, metric="r2", epochs=3)
    with torch.no_grad():
        predicted = module(x[100:]).double()
    truth = y[100:].double()
    scores = []
    for column in range(outputs):
        residual = sum(
            (p - t) ** 2
            for p, t in zip(
                predicted[:, column].tolist(), truth[:, column].tolist(), strict=True
            )
        )
        mean = sum(truth[:, column].tolist()) / 50
        total = sum((t - mean) ** 2 for t in truth[:, column].tolist())
        scores.append(1 - residual / total)
    assert result.history[-1].metric == pytest.approx(sum(scores) / outputs, rel=1e-5)
    assert result.history[-1].val_loss == pytest.approx(
        float(((predicted - truth) ** 2).mean()), rel=1e-5
    )


def test_keep_best_restores_the_epoch_with_the_lowest_val_loss() -> None:
    # Noisy labels and a large rate: the validation loss goes up and down.
    x_train, labels = _blobs(0, rows=100, spread=3.0)
    x_val, val_labels = _blobs(1, rows=50, spread=3.0)
    data = (x_train, labels, x_val, val_labels)
    sgd = {"name": "sgd", "lr": 0.5, "momentum": 0.9}
    options: dict[str, Any] = {"optimizer": sgd, "epochs": 12, "batch_size": 8}
    last = _train(_mlp(width=64), data, keep="last", **options)
    module = _mlp(width=64)
    best = _train(module, data, keep="best", **options)
    assert [r.val_loss for r in best.history] == [r.val_loss for r in last.history]
    losses = [record.val_loss for record in best.history]
    assert best.best_epoch == losses.index(min(losses)) + 1
    assert best.best_epoch < best.epochs_run  # the premise: the last is not the best
    assert not module.training
    with torch.no_grad():
        restored = functional.cross_entropy(module(x_val), val_labels).item()
    assert restored == pytest.approx(best.history[best.best_epoch - 1].val_loss)
    assert restored != pytest.approx(best.history[-1].val_loss)


def test_patience_stops_when_val_loss_stops_improving(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    # A frozen network never improves after its first epoch.
    module = _mlp()
    frozen = torch.optim.SGD(module.parameters(), lr=0.0)
    result = _train(module, blobs, optimizer=frozen, epochs=10, patience=3)
    assert result.stopped_early
    assert result.epochs_run == 4
    assert len(result.history) == 4
    assert result.best_epoch == 1


def test_patience_does_not_stop_an_improving_run(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    result = _train(_mlp(), blobs, epochs=6, patience=2)
    losses = [record.val_loss for record in result.history]
    assert losses == sorted(losses, reverse=True)  # the premise: always improving
    assert not result.stopped_early
    assert result.epochs_run == 6


def test_the_schedule_sets_each_epoch_s_rate(blobs: tuple[torch.Tensor, ...]) -> None:
    module = _mlp()
    optimizer = build_optimizer(
        parse_optimizer({"name": "sgd", "lr": 0.1}), module.parameters(), CPU
    )
    schedule = build_schedule(
        optimizer=optimizer, name="step", epochs=4, step_size=2, gamma=0.5
    )
    result = _train(module, blobs, optimizer=optimizer, schedule=schedule, epochs=4)
    assert [record.lr for record in result.history] == [0.1, 0.1, 0.05, 0.05]


def test_dropout_is_off_during_validation(blobs: tuple[torch.Tensor, ...]) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.9), nn.Linear(16, 3))
    frozen = torch.optim.SGD(module.parameters(), lr=0.0)
    result = _train(module, blobs, optimizer=frozen, epochs=2)
    module.eval()
    with torch.no_grad():
        val = functional.cross_entropy(module(blobs[2]), blobs[3]).item()
    # Without dropout the frozen network gives the same validation loss each time.
    assert [r.val_loss for r in result.history] == pytest.approx([val, val])
    # With it (training mode), the steps saw other outputs.
    assert result.history[0].train_loss != result.history[1].train_loss


def test_the_thread_count_is_restored(blobs: tuple[torch.Tensor, ...]) -> None:
    threads = torch.get_num_threads()
    _train(_mlp(), blobs, epochs=1)
    assert torch.get_num_threads() == threads


def test_a_diverging_run_names_the_learning_rate(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    def exploding(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(outputs, targets) * float("inf")

    with pytest.raises(
        ConfigError,
        match=r"optimizer\.lr: training diverged: the train loss of epoch 1 is ",
    ):
        _train(_mlp(), blobs, loss=exploding)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"metric": "f1"}, "metric 'f1'"),
        ({"keep": "first"}, "keep 'first'"),
        ({"epochs": 0}, "must be >= 1"),
        ({"patience": 0}, "must be >= 1"),
        ({"clip_grad_norm": 0.0}, "clip_grad_norm"),
    ],
)
def test_bad_arguments_are_refused(
    blobs: tuple[torch.Tensor, ...], options: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        _train(_mlp(), blobs, **options)


@pytest.mark.parametrize(
    ("name", "options"),
    [("adam", {"lr": 0.01}), ("adamw", {"lr": 0.01, "weight_decay": 0.1})],
)
def test_the_fast_adam_step_updates_exactly_as_optimizer_step(
    name: str, options: dict[str, float]
) -> None:
    """The loop's stepper calls torch's functional adam on the optimizer's own state
    after the first step: the weights, moments and step counts equal those of
    ``optimizer.step()`` bit for bit, through an lr change between steps."""
    from annfactory.optimizers import build_optimizer, parse_optimizer
    from annfactory.steppers import Stepper

    def run(fast: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
        )
        optimizer = build_optimizer(
            parse_optimizer({"name": name, **options}),
            model.parameters(),
            torch.device("cpu"),
        )
        assert optimizer.param_groups[0]["fused"]
        stepper = Stepper(optimizer, None)
        generator = torch.Generator().manual_seed(1)
        for index in range(6):
            x = torch.randn(8, 5, generator=generator)
            target = torch.randint(0, 3, (8,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(x), target)
            if index == 3:
                optimizer.param_groups[0]["lr"] = 0.003
            if fast:
                stepper(loss)
            else:
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        state = [
            tensor
            for parameter in model.parameters()
            for tensor in optimizer.state[parameter].values()
        ]
        return [p.detach().clone() for p in model.parameters()], state

    fast_weights, fast_state = run(fast=True)
    plain_weights, plain_state = run(fast=False)
    for fast, plain in zip(fast_weights + fast_state, plain_weights + plain_state,
                           strict=True):  # fmt: skip
        assert torch.equal(fast, plain)


def _gradient(model: nn.Module, loss: torch.Tensor) -> torch.Tensor:
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    return torch.cat([grad.flatten() for grad in grads])


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("max_norm", [0.5, 1000.0])
@pytest.mark.parametrize("scaled", [False, True])
def test_clipping_scales_the_gradient_down_to_the_norm(
    max_norm: float, scaled: bool
) -> None:
    """With SGD at lr 1 the step is minus the gradient: clipped to ``max_norm`` when
    its norm is larger (over all the parameters as one vector), untouched when
    smaller; under a float16 loss scaler the bound holds for the unscaled
    gradient."""
    from annfactory.steppers import Stepper

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    loss = (model(torch.randn(8, 4) * 10) ** 2).mean()
    gradient = _gradient(model, loss)
    norm = float(torch.linalg.vector_norm(gradient))
    assert 0.5 < norm < 1000.0
    before = _flat(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0) if scaled else None
    Stepper(optimizer, scaler, max_norm)(loss)
    step = before - _flat(model)
    torch.testing.assert_close(step, gradient * min(1.0, max_norm / norm))
    assert all(p.grad is None for p in model.parameters())


def test_clipping_with_the_fast_adam_step_equals_torch_s_own_loop() -> None:
    """``backward; clip_grad_norm_; optimizer.step()`` in plain torch and the
    stepper's fast fused-Adam path with the same bound give the same weights."""
    from torch.nn.utils import clip_grad_norm_

    from annfactory.steppers import Stepper

    def run(ours: bool) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
        optimizer = build_optimizer(
            parse_optimizer({"name": "adam", "lr": 0.01}), model.parameters(), CPU
        )
        stepper = Stepper(optimizer, None, 0.1)
        generator = torch.Generator().manual_seed(1)
        for _ in range(6):
            x = torch.randn(8, 5, generator=generator) * 5
            target = torch.randint(0, 3, (8,), generator=generator)
            loss = functional.cross_entropy(model(x), target)
            if ours:
                stepper(loss)
            else:
                loss.backward()
                clip_grad_norm_(model.parameters(), 0.1)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if ours:
            assert stepper._fast_groups() is not None  # the fast path was taken
        return _flat(model)

    torch.testing.assert_close(run(True), run(False), rtol=0, atol=0)


def test_the_fast_step_is_taken_for_fused_adam_and_not_for_sgd() -> None:
    from annfactory.optimizers import build_optimizer, parse_optimizer
    from annfactory.steppers import Stepper

    model = torch.nn.Linear(3, 2)
    for name, fast in (("adam", True), ("adamw", True), ("sgd", False)):
        optimizer = build_optimizer(
            parse_optimizer(name), model.parameters(), torch.device("cpu")
        )
        stepper = Stepper(optimizer, None)
        stepper(model(torch.ones(1, 3)).sum())  # the first step creates the state
        assert (stepper._fast_groups() is not None) is fast, name
        assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    ("rows", "batch_norm", "sizes"),
    [
        (65, False, [64, 1]),
        (65, True, [65]),  # one row cannot be normalized by batch statistics
        (129, True, [64, 65]),
        (66, True, [64, 2]),
        (64, True, [64]),
        (1, False, [1]),
    ],
)
def test_a_last_batch_of_one_row_joins_the_one_before_with_batch_norm(
    rows: int, batch_norm: bool, sizes: list[int]
) -> None:
    from annfactory.training import batch_sizes

    assert batch_sizes(rows, 64, batch_norm=batch_norm) == sizes


def test_batch_norm_is_found_anywhere_in_the_module() -> None:
    from annfactory.training import has_batch_norm

    inner = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    assert has_batch_norm(nn.Sequential(nn.Linear(2, 2), nn.Sequential(inner)))
    assert has_batch_norm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
    assert not has_batch_norm(nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4)))


def test_one_row_left_for_the_last_batch_trains_with_batch_norm() -> None:
    x, labels = _blobs(0, rows=33)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    result = _train(module, (x, labels, x[:8], labels[:8]), batch_size=16, epochs=2)
    assert result.epochs_run == 2


def test_float16_mixed_precision_keeps_float32_weights_and_learns(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    """With ``autocast``, the module stays float32 (the master weights), the losses
    are float32, and the run learns what float32 learns."""
    module = _mlp()
    half = _train(module, blobs, autocast=torch.float16, epochs=8)
    full = _train(_mlp(), blobs, epochs=8)
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    assert half.history[-1].metric >= full.history[-1].metric - 0.02
    assert half.history[0].train_loss == pytest.approx(
        full.history[0].train_loss, rel=0.01
    )


def test_dropout_is_seeded_by_the_dropout_seed(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    """The same dropout_seed gives the same history whatever torch's global
    generator holds, and the caller's generator state is restored."""

    def run(global_seed: int, dropout_seed: int) -> list[float]:
        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.5), nn.Linear(16, 3))
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        result = _train(module, blobs, dropout_seed=dropout_seed, epochs=3)
        assert torch.equal(torch.get_rng_state(), state)
        return [record.train_loss for record in result.history]

    assert run(1, dropout_seed=7) == run(2, dropout_seed=7)
    assert run(1, dropout_seed=7) != run(1, dropout_seed=8)


def test_a_recurrent_network_trains_on_one_thread_whatever_its_size() -> None:
    from annfactory.training import _cpu_threads

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lstm = nn.LSTM(4, 512, batch_first=True)  # 1M weights: large
        with _cpu_threads(lstm, 512, CPU):
            assert torch.get_num_threads() == 1
        wide = nn.Linear(1024, 1024)  # as large, not recurrent: torch's setting
        with _cpu_threads(wide, 512, CPU):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_given_replace_the_rule_for_the_loop_only() -> None:
    from annfactory.training import _cpu_threads

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lstm = nn.LSTM(4, 8, batch_first=True)
        with _cpu_threads(lstm, 16, CPU, 3) as threads:
            assert threads == torch.get_num_threads() == 3
        with _cpu_threads(nn.Linear(1024, 1024), 512, CPU) as threads:
            assert threads == torch.get_num_threads() == 1  # torch's setting
        with _cpu_threads(lstm, 16, torch.device("meta")) as threads:
            assert threads == 1  # another device: torch's setting, whatever the size
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_result_says_how_many_threads_trained(
    blobs: tuple[torch.Tensor, ...],
) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    before = torch.get_num_threads()
    assert _train(module, blobs, epochs=1).threads == 1  # small: one thread
    assert _train(module, blobs, epochs=1, threads=2).threads == 2
    assert torch.get_num_threads() == before
