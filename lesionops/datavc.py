"""DVC for the raw dataset: `data.dvc` pins the exact bytes a model was trained on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from components.common.errors import LesionOpsError


def _dvc() -> list[str]:
    exe = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    return [exe]


def track(path: Path) -> str:
    """`dvc add` the folder (initialising DVC in the git repo if needed); returns its md5."""
    if not (Path(".dvc") / "config").exists():
        subprocess.run([*_dvc(), "init", "--quiet"], check=True)
    result = subprocess.run([*_dvc(), "add", "--quiet", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise LesionOpsError(f"dvc add {path} failed: {result.stderr.strip() or result.stdout.strip()}")
    return data_version(Path(f"{path}.dvc"))


def data_version(dvc_file: Path) -> str:
    """The md5 DVC recorded for a tracked folder, or 'untracked' when there is no .dvc file."""
    if not dvc_file.is_file():
        return "untracked"
    doc = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    outs = doc.get("outs") or [{}]
    return str(outs[0].get("md5", "unknown"))
