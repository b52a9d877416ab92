"""The container image every Kubeflow component runs in; its tag is the package version."""

from __future__ import annotations

from components import __version__

IMAGE_REPOSITORY = "ghcr.io/lesionops/lesionops"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
