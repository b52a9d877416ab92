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


def _run(args: list[str], what: str) -> str:
    """Run one dvc command; a failure is an error naming the command and DVC's own message."""
    result = subprocess.run([*_dvc(), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise LesionOpsError(f"{what} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def set_remote(url: str, name: str = "storage") -> None:
    """Make `url` (s3://bucket/prefix, or any DVC remote URL) the default remote.

    Written to `.dvc/config`, which is committed: everyone who clones pulls the same bytes. Only
    the URL goes there; endpoint, region and credentials stay in the standard AWS env/config that
    dvc-s3 (botocore) reads, so a MinIO endpoint or a key never lands in git.
    """
    if not (Path(".dvc") / "config").exists():
        _run(["init", "--quiet"], "dvc init")
    _run(["remote", "add", "--force", "--default", name, url], f"dvc remote add {name} {url}")


def push(dvc_file: Path) -> None:
    """Upload the data a `.dvc` file pins to the default remote (only what the remote lacks)."""
    _run(["push", "--quiet", str(dvc_file)], f"dvc push {dvc_file}")


def pull(dvc_file: Path) -> None:
    """Fetch the exact bytes a `.dvc` file pins from the default remote into the workspace."""
    _run(["pull", "--quiet", str(dvc_file)], f"dvc pull {dvc_file}")
