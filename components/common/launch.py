"""Run a stage's own entry point from a Kubeflow component.

Kubeflow components are thin: they call `python -m components.<stage>` with the same arguments a
`dvc.yaml` stage passes, so there is exactly one implementation of each stage. A task given
several GPUs runs the same module under torchrun (`python -m torch.distributed.run`), one process
per GPU on this pod; the stage itself turns DDP on from the variables torchrun sets.
"""

from __future__ import annotations

import subprocess
import sys


def command(stage: str, args: list[str], nproc_per_node: int = 1) -> list[str]:
    """The command line: plain `python -m components.<stage>`, or under torchrun when
    `nproc_per_node` > 1 (`--standalone`: a single-node rendezvous on a free local port)."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node: at least 1, found {nproc_per_node}")
    module = ["-m", f"components.{stage}", *args]
    if nproc_per_node == 1:
        return [sys.executable, *module]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc_per_node),
        *module,
    ]


def launch(stage: str, args: list[str], nproc_per_node: int = 1) -> None:
    """Run the stage (see `command`) in this interpreter's environment; raise if it fails."""
    cmd = command(stage, args, nproc_per_node)
    head = cmd[: len(cmd) - len(args)]
    print("+", " ".join(head), " ".join(a if len(a) < 200 else "<…>" for a in args), flush=True)
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"stage {stage} failed with exit code {result.returncode}")
