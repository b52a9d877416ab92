"""Run a stage's own entry point from a Kubeflow component.

Kubeflow components are thin: they call `python -m components.<stage>` with the same arguments a
`dvc.yaml` stage passes, so there is exactly one implementation of each stage.
"""

from __future__ import annotations

import subprocess
import sys


def launch(stage: str, args: list[str]) -> None:
    """Run `python -m components.<stage> ARGS` in this interpreter; raise if it fails."""
    cmd = [sys.executable, "-m", f"components.{stage}", *args]
    print("+", " ".join(cmd[:3]), " ".join(a if len(a) < 200 else "<…>" for a in args), flush=True)
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"stage {stage} failed with exit code {result.returncode}")
