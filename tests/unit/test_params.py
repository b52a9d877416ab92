from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.common.errors import ConfigError
from components.common.params import build, load_params, section
from components.common.task import load_task
from tests.conftest import REPO


@dataclass(frozen=True)
class Inner:
    a: float = 1.0


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    sizes: tuple[int, ...] = (1,)
    inner: Inner = field(default_factory=Inner)
    maybe: str | None = None


def test_build_coerces_nested_and_lists() -> None:
    cfg = build(Outer, {"sizes": [3, 4], "inner": {"a": 2}, "maybe": None}, "outer")
    assert cfg == Outer(sizes=(3, 4), inner=Inner(2.0))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nmae": "typo"}, "unknown key"),
        ({"name": 3}, "expected str"),
        ({"inner": {"b": 1}}, "outer.inner"),
    ],
)
def test_build_refuses_bad_values(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(Outer, values, "outer")


def test_repo_params_build_every_stage_config() -> None:
    from components.common.scope import ScopeConfig
    from components.crop_patches.config import CropConfig
    from components.crossval.config import CrossvalConfig
    from components.evaluate_detector.config import EvaluateDetectorConfig
    from components.evaluate_model.core import EvaluateConfig
    from components.ingest_data.config import IngestConfig
    from components.monitor_drift.config import MonitorConfig
    from components.promote_model.config import PromoteConfig
    from components.train_baseline.config import BaselineConfig
    from components.train_detector.config import DetectorConfig
    from components.train_model.config import TrainConfig
    from components.validate_annotations.config import ValidateConfig
    from lesionops.serve.config import ServeConfig
    from lesionops.serve.k8s_config import ServeK8sConfig
    from pipelines.kubeflow import KubeflowConfig
    from pipelines.schedule import RetrainConfig

    doc = load_params(REPO / "params.yaml")
    for name, cls in [
        ("ingest_data", IngestConfig),
        ("validate_annotations", ValidateConfig),
        ("crop_patches", CropConfig),
        ("train_model", TrainConfig),
        ("train_baseline", BaselineConfig),
        ("train_detector", DetectorConfig),
        ("evaluate_model", EvaluateConfig),
        ("promote_model", PromoteConfig),
        ("crossval", CrossvalConfig),
        ("evaluate_detector", EvaluateDetectorConfig),
        ("monitor_drift", MonitorConfig),
        ("serve", ServeConfig),
        ("serve_k8s", ServeK8sConfig),
        ("serve_scope", ScopeConfig),
        ("retrain", RetrainConfig),
        ("kubeflow", KubeflowConfig),
    ]:
        section(doc, name, cls)
    assert load_task(doc).classes[-1] == "psoriasis"


def test_params_sources_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_params()
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_params(json_text="{nope")
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Psoriasis ", "psoriasis"),
        ("lichen planus", "lichen_planus"),
        ("SLE", "lupus_erythematosus"),
        ("lichen-planus", "lichen_planus"),
        ("acne", None),
    ],
)
def test_task_normalizes_labels(raw: str, expected: str | None) -> None:
    assert load_task(load_params(REPO / "params.yaml")).normalize(raw) == expected
