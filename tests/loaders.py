"""Config loaders shared by the sweep tests."""

from __future__ import annotations

from typing import Any

from hydra.core.config_loader import ConfigLoader
from omegaconf import DictConfig

from annfactory.sweep import ComposeOnce


class Counting(ComposeOnce):
    """A loader that counts its compositions (a ``ComposeOnce`` is the simplest
    complete ``ConfigLoader`` that delegates): what ``ComposeOnce`` wraps in a test."""

    def __init__(self, loader: ConfigLoader) -> None:
        super().__init__(loader)
        self.calls: list[list[str]] = []

    def load_sweep_config(
        self, master_config: DictConfig, sweep_overrides: list[str]
    ) -> DictConfig:
        self.calls.append(list(sweep_overrides))
        return super().load_sweep_config(master_config, sweep_overrides)

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the calls too

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
