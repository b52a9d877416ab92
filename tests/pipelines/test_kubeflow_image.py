"""The Dockerfile's structure (no Docker engine here to build it): two targets, installs pinned by
constraints.txt, only the interpreter, venv and source in the final images, a non-root user, a
version label the build checks; .dockerignore keeps data, models and local state out."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess

import pytest

from components.common.kfp_image import IMAGE, IMAGE_REPOSITORY, image
from tests.conftest import REPO

SOURCES = [
    "components",
    "pipelines",
    "lesionops",
    "tasks",
    "params.yaml",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name → its instructions (the FROM line first)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    name = None
    for instruction, args in _instructions():
        if instruction == "FROM":
            name = re.split(r"\s+[Aa][Ss]\s+", args)[1].strip()
            stages[name] = []
        if name is not None:
            stages[name].append((instruction, args))
    return stages


def _global_args() -> dict[str, str]:
    out = {}
    for instruction, args in _instructions():
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in args:
            key, value = args.split("=", 1)
            out[key] = value
    return out


def _base(stage: str) -> str:
    base = re.split(r"\s+[Aa][Ss]\s+", _stages()[stage][0][1])[0]
    base = re.sub(r"^--platform=\S+\s+", "", base)
    return re.sub(r"\$\{(\w+)\}", lambda m: _global_args()[m.group(1)], base)


def test_cpu_and_cuda_targets_on_pinned_bases() -> None:
    stages = _stages()
    assert {"cpu", "cuda"} <= set(stages)
    assert _base("cuda").startswith("nvidia/cuda:") and re.search(r":\d+\.\d+\.\d+-", _base("cuda"))
    assert _base("cpu").split(":")[0] in ("debian", "python") and "slim" in _base("cpu")
    for stage in stages:
        base = _base(stage)
        assert base in stages or (":" in base and not base.endswith(":latest")), f"{stage}: unpinned base {base}"


def test_builders_install_exactly_the_constraints() -> None:
    stages = _stages()
    for target, builder in (("cpu", "build-cpu"), ("cuda", "build-cuda")):
        copies = [args for instruction, args in stages[target] if instruction == "COPY"]
        assert {c.split()[0] for c in copies} == {f"--from={builder}"}, "final stages copy from their builder only"
        assert sorted(c.split()[1] for c in copies) == ["/app", "/opt/python", "/opt/venv"]
        runs = " ".join(args for instruction, args in stages[builder] if instruction == "RUN")
        assert "uv pip install" in runs and "-c constraints.txt -r pyproject.toml" in runs
        assert ("--torch-backend cpu" in runs) == (target == "cpu")  # cuda: PyPI's CUDA wheels, as constraints pin
    builder_runs = " ".join(args for instruction, args in stages["builder"] if instruction in ("RUN", "ENV"))
    assert "uv venv" in builder_runs and "UV_PYTHON_INSTALL_DIR=/opt/python" in builder_runs
    copied = {
        args.split()[0]
        for stage in stages.values()
        for instruction, args in stage
        if instruction == "COPY" and not args.startswith("--from")
    }
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_final_images_run_as_non_root_with_a_sane_entrypoint(target: str) -> None:
    instructions = _stages()[target]
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    workdir = [args for instruction, args in instructions if instruction == "WORKDIR"]
    assert workdir[-1] == "/app"
    entry = [args for instruction, args in instructions if instruction == "ENTRYPOINT"]
    cmd = [args for instruction, args in instructions if instruction == "CMD"]
    assert json.loads(entry[-1]) == ["lesionops"] and json.loads(cmd[-1]) == ["--help"]  # exec form
    env = " ".join(args for instruction, args in instructions if instruction == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env  # KFP's executor calls `python3`, the PyTorchJob `torchrun`


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_version_label_is_checked_against_the_package(target: str) -> None:
    instructions = _stages()[target]
    assert ("ARG", "VERSION") in instructions  # no default: the build must be told
    labels = " ".join(args for instruction, args in instructions if instruction == "LABEL")
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "components.__version__" in runs and "${VERSION}" in runs


def test_no_secrets_in_the_dockerfile() -> None:
    for instruction, args in _instructions():
        if instruction in ("ARG", "ENV"):
            assert not re.search(r"(SECRET|TOKEN|PASSWORD|ACCESS_KEY)\w*\s*=", args, re.IGNORECASE), args


def test_tags_derive_from_the_package_version() -> None:
    from components import __version__

    assert f"{IMAGE_REPOSITORY}:{__version__}" == IMAGE and image(cuda=True) == f"{IMAGE}-cuda"
    assert (
        image("123.dkr.ecr.eu-west-1.amazonaws.com/lesionops")
        == f"123.dkr.ecr.eu-west-1.amazonaws.com/lesionops:{__version__}"
    )


def test_dockerignore_keeps_data_and_state_out_and_the_source_in() -> None:
    patterns = [
        p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    for excluded in (
        "data",
        "mlruns",
        ".venv",
        ".venv-tools",
        "outputs",
        ".git",
        ".kfp_local",
        ".cache",
        "feedback",
        "serving",
        "datasets",
    ):
        assert any(fnmatch.fnmatch(excluded, p) for p in patterns), f"{excluded} is not ignored"
    for needed in SOURCES:
        assert not any(fnmatch.fnmatch(needed, p) for p in patterns), f"{needed} would be ignored"


HADOLINT = shutil.which("hadolint", path=str(REPO / ".venv-tools" / "bin")) or shutil.which("hadolint")


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (`make tools` puts it in .venv-tools)")
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([str(HADOLINT), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
