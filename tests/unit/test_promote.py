import json
from pathlib import Path

import pytest

from components.common.errors import DataError, GateFailed
from components.common.tracking import TrackingConfig
from components.promote_model.core import PromoteConfig, run


def test_failed_gate_is_refused_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "train" / "train_summary.json").write_text(json.dumps({"run_id": "abc", "model_uri": "x"}))
    (tmp_path / "eval" / "decision.json").write_text(json.dumps({"passed": False, "rules": [
        {"name": "min_accuracy", "passed": False, "reason": "0.4 < 0.5"},
        {"name": "min_macro_f1", "passed": True, "reason": "ok"}]}))
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(GateFailed, match=r"min_accuracy: 0.4 < 0.5") as err:
        run(PromoteConfig(), tracking, tmp_path / "train", tmp_path / "eval", tmp_path / "out")
    assert "min_macro_f1" not in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlflow.db").exists()


def test_missing_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="decision.json"):
        run(PromoteConfig(), TrackingConfig(), tmp_path / "train", tmp_path / "eval", tmp_path / "out")
