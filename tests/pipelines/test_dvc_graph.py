"""dvc.yaml is the whole graph, and its code deps are exactly what each stage imports.

Editing a shared module must re-run the stages that import it and no others; a stage importing
another stage would make that impossible, so the import-linter contract in pyproject.toml forbids it
and this test checks the resulting file lists (scripts/dvc_deps.py prints the expected ones)."""

from __future__ import annotations

import yaml

from components import STAGES
from scripts.dvc_deps import code_files, expected_deps
from tests.conftest import REPO


def _stages() -> dict[str, dict]:
    return yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def test_every_stage_is_in_dvc_yaml_once() -> None:
    assert list(_stages()) == list(STAGES)


def test_code_deps_are_exactly_the_imports() -> None:
    for name, stage in _stages().items():
        body = stage.get("do", stage)  # foreach stages keep cmd/deps under `do`
        code = [d for d in body["deps"] if str(d).startswith("components")]
        assert code == expected_deps(name), (
            f"dvc.yaml {name} code deps differ from its imports; run `python -m scripts.dvc_deps {name}`"
        )


def test_a_stage_never_reaches_into_another_stage() -> None:
    for name in STAGES:
        others = {
            f
            for f in code_files(name)
            if f.startswith("components/")
            and f.count("/") >= 2
            and not f.startswith(("components/common/", f"components/{name}/"))
        }
        assert not others, f"{name} imports another stage's code: {sorted(others)}"


def test_each_stage_reads_its_own_params_section() -> None:
    for name, stage in _stages().items():
        params = stage.get("do", stage).get("params", [])
        assert name in params, f"{name} does not list its own section: {params}"
