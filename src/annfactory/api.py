"""The public entry points that need torch, imported lazily so that
``import annfactory`` and :func:`annfactory.compose` stay fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from annfactory.config import to_spec
from annfactory.spec import RunSpec

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from annfactory.network import Network

__all__ = ["build_model", "build_network", "materialize"]


def build_model(cfg: DictConfig | Mapping[str, Any]) -> Network:
    """Build the initialized network that a composed config describes.

    Args:
        cfg: A config as :func:`annfactory.compose` or ``@hydra.main`` gives it (or the
            same as plain data). Top-level keys other than annfactory's (``model``,
            ``init``, ``activation``, ``seed``, ``batch_size``, ``device``, ``dtype``)
            are ignored, so an application's own config can be passed whole.

    Returns:
        The network (an ``nn.Module``) on ``cfg.device`` in ``cfg.dtype``.

    Raises:
        ConfigError: The config is invalid; the message names the config path.

    Example:
        >>> import annfactory
        >>> model = annfactory.build_model(annfactory.compose(["model=demo"]))
        >>> sum(p.numel() for p in model.parameters())
        26
    """
    return build_network(to_spec(cfg, strict=False))


def build_network(spec: RunSpec) -> Network:
    """Build the initialized network of a resolved :class:`~annfactory.spec.RunSpec`."""
    from annfactory.factory import build_network as build

    return build(spec)


def materialize(network: Network, spec: RunSpec) -> Network:
    """Allocate and initialize a network built on the meta device, in place, exactly as
    :func:`build_network` would have (same bits)."""
    from annfactory.factory import materialize as fill

    return fill(network, spec)
