"""The container images the Kubeflow components run in; tags are the package version.

One repository, two flavours built from the repo's Dockerfile: `<repo>:<version>` (CPU torch) and
`<repo>:<version>-cuda` (CUDA torch, for tasks given GPUs). Never `:latest`: a compiled pipeline
names exactly the code it runs. The components declare the CPU image as their base; at compile
time pipelines/kubeflow.py swaps in `kubeflow.image_repository` (e.g. a private ECR) and the
CUDA tag for GPU tasks.
"""

from __future__ import annotations

from components import __version__

IMAGE_REPOSITORY = "ghcr.io/lesionops/lesionops"
CUDA_SUFFIX = "-cuda"


def image(repository: str = IMAGE_REPOSITORY, *, cuda: bool = False, version: str = __version__) -> str:
    """`<repository>:<version>` or `<repository>:<version>-cuda`."""
    return f"{repository}:{version}{CUDA_SUFFIX if cuda else ''}"


IMAGE = image()
CUDA_IMAGE = image(cuda=True)
