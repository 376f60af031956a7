"""Puts the axes demo plugin's config groups on Hydra's search path.

Hydra imports every module of the ``hydra_plugins`` namespace package at start-up and
runs each ``SearchPathPlugin`` it finds; this one appends the plugin's ``conf``
package, so ``task=probe``, ``+noise=gaussian`` and ``--help`` see its YAML files.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class AxesDemoSearchPathPlugin(SearchPathPlugin):
    """Appends ``pkg://axes_demo_plugin.conf``."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(
            provider="axes-demo-plugin", path="pkg://axes_demo_plugin.conf"
        )
