"""LesionOps application layer: the `lesionops` CLI, synthetic data and local pipeline drivers."""

from components import __version__

__all__ = ["__version__"]
