"""train_model.keep_weights: which epoch's weights a run keeps (components/common/classifier/selection.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from components.common.bootstrap import BootstrapConfig, paired_difference, patient_counts
from components.common.classifier.config import TrainConfig
from components.common.classifier.data import load_split
from components.common.classifier.engine import predict
from components.common.classifier.models import build_model
from components.common.classifier.selection import TieTest
from components.common.errors import ConfigError
from tests.components.test_train_model import TASK, _fit, write_patches


def _tie_test(labels: np.ndarray, n_units: int) -> TieTest:
    units = [f"P{i % n_units}" for i in range(len(labels))]
    return TieTest(labels, units, 2, confidence=0.95, resamples=1000, seed=0)


def test_a_tie_goes_to_the_candidate_and_a_clear_loss_does_not() -> None:
    y = np.tile([0, 1], 200)
    ties = _tie_test(y, 100)
    one_off = y.copy()
    one_off[0] = 1  # one val patch of 400 differs: no val split can call that a difference
    half_wrong = np.where(np.arange(len(y)) < 200, 1 - y, y)
    assert ties.tied(y, y) and ties.tied(y, one_off) and ties.tied(one_off, y)
    assert not ties.tied(y, half_wrong)
    assert ties.tied(half_wrong, y)  # a candidate better than the best is never "beaten"


def test_the_tie_is_the_gates_paired_bootstrap_interval() -> None:
    """The rule is exactly: lower bound of the paired (best − candidate) interval ≤ 0."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    best = np.where(rng.random(300) < 0.9, y, 1 - y)
    for flip in (0.05, 0.12, 0.2, 0.3):
        candidate = np.where(rng.random(300) < 1 - flip, y, 1 - y)
        units = [f"P{i % 60}" for i in range(300)]
        counts, index = patient_counts(units, BootstrapConfig(1000, 0.95, 0))
        low, _ = paired_difference(y, best, candidate, counts, index, 2, 0.95)
        assert _tie_test(y, 60).tied(best, candidate) == (low <= 0)


@pytest.mark.parametrize(("key", "value"), [("keep_weights", "last"), ("keep_confidence", 1.0), ("keep_resamples", 0)])
def test_bad_settings_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"train_model.{key}"):
        TrainConfig(**{key: value})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def patches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_patches(tmp_path_factory.mktemp("keep"), {"train": 40, "val": 24, "test": 8})


def test_the_kept_weights_are_tied_with_the_best_epoch_on_val(patches: Path, tmp_path: Path) -> None:
    """Trained for real: the weights the run keeps predict val so that the best epoch's predictions
    do not beat them significantly, they are never older than the best epoch, and `best` keeps the
    best epoch itself."""
    cfg = TrainConfig(
        arch="small_cnn", image_size=32, epochs=6, batch_size=16, threads=1, scheduler="onecycle",
        patience=10, keep_weights="latest_tied",
    )  # fmt: skip
    state = _fit(cfg, patches, tmp_path / "tied")
    assert state.best_state is not None and state.best_pred is not None
    assert state.best_epoch <= state.kept_epoch < len(state.history)
    assert state.kept_epoch == len(state.history) - 1 > state.best_epoch  # val is perfect from epoch 1 on: all tie
    assert state.kept_score == state.history[state.kept_epoch]["val_macro_f1"]
    model = build_model(cfg.arch, 2, cfg.dropout)
    model.load_state_dict(state.best_state)
    val = load_split(patches, "val", TASK.classes, cfg.image_size)
    kept_pred = predict(model.eval(), val.images, torch.device("cpu"), state.norm).argmax(1)
    assert TieTest(val.labels.numpy(), val.units, 2, 0.95, 1000, cfg.seed).tied(state.best_pred.numpy(), kept_pred)
    best = _fit(dataclasses.replace(cfg, keep_weights="best"), patches, tmp_path / "best")
    assert best.kept_epoch == best.best_epoch == state.best_epoch
