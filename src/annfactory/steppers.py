"""The optimizer step of the training loop (:mod:`annfactory.training`), with less
Python than ``loss.backward(); optimizer.step(); optimizer.zero_grad()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["Stepper"]


class Stepper:
    """``loss.backward()``, ``optimizer.step()`` then ``zero_grad(set_to_none=True)``,
    with less Python.

    With a :class:`torch.amp.GradScaler` (float16 mixed precision), the loss is
    scaled before the backward pass, and the scaler steps the optimizer (skipping a
    step whose gradients overflowed) and updates its scale.

    With ``clip_grad_norm``, the gradients are scaled down before each step so that
    their norm over all the parameters (one vector) is at most that value
    (:func:`torch.nn.utils.clip_grad_norm_`; under a scaler, after unscaling).

    For a fused Adam or AdamW (what :func:`annfactory.optimizers.build_optimizer`
    makes), after the first step has created the optimizer's state, each step calls
    torch's functional ``torch.optim.adam.adam`` (public: in that module's
    ``__all__``) on the same state tensors, with the group's current settings (a
    schedule's ``lr`` included): the update is the one ``Adam.step`` makes, without
    its per-step bookkeeping, which costs more than the update of a small network
    (``tests/test_training.py`` checks both give equal weights). Any other optimizer,
    or a step where a parameter has no gradient, goes through ``optimizer.step()``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        clip_grad_norm: float | None = None,
    ) -> None:
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm ({clip_grad_norm}) must be > 0 or None")
        self._optimizer = optimizer
        self._scaler = scaler
        self._clip = clip_grad_norm
        self._parameters = [
            parameter
            for group in optimizer.param_groups
            for parameter in group["params"]
        ]
        self._groups: list[tuple[dict[str, Any], list[list[Tensor]]]] | None = None
        self._steps = 0

    def __call__(self, loss: Tensor) -> None:
        scaler = self._scaler
        if scaler is not None:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            if self._clip is not None:
                scaler.unscale_(self._optimizer)
                self._clip_gradients(self._clip)
            scaler.step(self._optimizer)
            scaler.update()
        else:
            loss.backward()  # type: ignore[no-untyped-call]
            if self._clip is not None:
                self._clip_gradients(self._clip)
            groups = self._fast_groups() if self._steps else None
            self._steps += 1
            if groups is None or not self._step_fast(groups):
                self._optimizer.step()
        for parameter in self._parameters:
            parameter.grad = None

    def _clip_gradients(self, max_norm: float) -> None:
        from torch.nn.utils import clip_grad_norm_

        clip_grad_norm_(self._parameters, max_norm)  # it skips those without a grad

    def _fast_groups(self) -> list[tuple[dict[str, Any], list[list[Tensor]]]] | None:
        if self._groups is not None:
            return self._groups
        import torch

        optimizer = self._optimizer
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
            return None
        groups = []
        for group in optimizer.param_groups:
            if not group.get("fused") or any(
                group.get(flag)
                for flag in ("amsgrad", "maximize", "capturable", "differentiable")
            ):
                return None
            states = [optimizer.state.get(parameter) for parameter in group["params"]]
            if any(not state for state in states):
                return None
            lists = [
                list(group["params"]),
                [state["exp_avg"] for state in states],  # type: ignore[index]
                [state["exp_avg_sq"] for state in states],  # type: ignore[index]
                [state["step"] for state in states],  # type: ignore[index]
            ]
            groups.append((group, lists))
        self._groups = groups
        return groups

    @staticmethod
    def _step_fast(groups: list[tuple[dict[str, Any], list[list[Tensor]]]]) -> bool:
        from torch.optim.adam import adam

        grads = [[parameter.grad for parameter in lists[0]] for _, lists in groups]
        if any(grad is None for group_grads in grads for grad in group_grads):
            return False
        for (group, (parameters, exp_avgs, exp_avg_sqs, steps)), group_grads in zip(
            groups, grads, strict=True
        ):
            beta1, beta2 = group["betas"]
            adam(
                parameters,
                group_grads,  # type: ignore[arg-type]
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                fused=True,
                decoupled_weight_decay=bool(group.get("decoupled_weight_decay")),
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
            )
        return True
