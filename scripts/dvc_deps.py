"""The code each `dvc.yaml` stage really depends on, from its imports: `python -m scripts.dvc_deps`.

A stage's code dependencies are its own folder plus every file under `components/` its entry point
imports, transitively (read from the source with `ast`, nothing is executed). dvc.yaml lists exactly
these, so editing a shared module re-runs the stages that import it and no others;
tests/pipelines/test_dvc_graph.py fails, printing this script's lines, when the two disagree.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _module_file(module: str) -> Path | None:
    base = REPO / Path(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path, module: str) -> list[str]:
    """Absolute module names `path` imports (relative imports resolved), package and attribute forms."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return names


def code_files(stage: str) -> set[str]:
    """Repo-relative files under components/ that `python -m components.<stage>` imports."""
    seen: set[str] = set()
    todo = [f"components.{stage}.__main__"]
    while todo:
        module = todo.pop()
        path = _module_file(module)
        if path is None or module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run their __init__
        todo += [m for m in _imported(path, module) if m.split(".")[0] == "components"]
    return {_module_file(m).relative_to(REPO).as_posix() for m in seen}  # type: ignore[union-attr]


def expected_deps(stage: str) -> list[str]:
    """What dvc.yaml's code deps for `stage` must be: its folder, then each outside file it imports."""
    own = f"components/{stage}"
    return [own, *sorted(f for f in code_files(stage) if not f.startswith(f"{own}/"))]


if __name__ == "__main__":
    from components import STAGES

    for name in sys.argv[1:] or STAGES:
        print(f"{name}: {expected_deps(name)}")
