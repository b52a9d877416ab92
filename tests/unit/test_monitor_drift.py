"""monitor_drift: image features, the KS verdict, folder-mode core.run, the CLI and the pipeline (policy: test_drift_policy.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from components.common.errors import DataError
from components.common.image_stats import COLUMNS, FEATURES, features_frame, image_features
from components.common.io import read_json
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.core import assess, load_history, reference_paths, run

REPO = Path(__file__).resolve().parents[2]
CFG = MonitorConfig(min_window=20, consecutive_windows=2, retrain_feedback_threshold=50)


def _write_images(folder: Path, n: int, level: float, seed: int, size: tuple[int, int] = (32, 32)) -> list[Path]:
    """`n` noisy skin-toned PNGs whose mean level is drawn around `level` (one draw per image)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = rng.normal(level, 15) * np.array([1.0, 0.8, 0.6])
        pixels = base + rng.normal(0, 10, (size[1], size[0], 3))
        path = folder / f"img_{seed}_{i:03d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def _fake_crop(tmp: Path, n_train: int = 30, level: float = 100, seed: int = 1) -> tuple[Path, Path]:
    """A crop_patches output (patches.parquet) over raw images in a source folder."""
    source, crop = tmp / "source", tmp / "crop"
    train = _write_images(source / "train_imgs", n_train, level, seed)
    test = _write_images(source / "test_imgs", 5, level + 100, seed + 1)  # must be ignored
    rows = [
        {"rel_path": p.relative_to(source).as_posix(), "split": "train", "box_index": b}
        for p in train
        for b in range(2)
    ]  # two boxes per image: the image counts once
    rows += [{"rel_path": p.relative_to(source).as_posix(), "split": "test", "box_index": 0} for p in test]
    crop.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(crop / "patches.parquet", index=False)
    return crop, source


# --- features ---------------------------------------------------------------------------------


def test_black_image_has_zero_brightness_and_sharpness() -> None:
    f = image_features(Image.new("RGB", (64, 48)))
    assert set(f) == set(COLUMNS) and math.isnan(f["ita"])  # no skin in a black frame
    assert f["brightness"] == pytest.approx(0) and f["contrast"] == pytest.approx(0)
    assert f["sharpness"] == pytest.approx(0) and f["saturation"] == pytest.approx(0)
    assert (f["width"], f["height"]) == (64, 48)


def test_colour_and_saturation_of_a_pure_red_image() -> None:
    f = image_features(Image.new("RGB", (10, 10), (255, 0, 0)))
    assert (f["mean_r"], f["mean_g"], f["mean_b"]) == pytest.approx((255, 0, 0))
    assert f["saturation"] == pytest.approx(1.0)
    assert f["brightness"] == pytest.approx(0.299 * 255, abs=0.01)
    assert math.isnan(f["ita"])  # far too saturated to be skin


def test_blur_lowers_sharpness() -> None:
    rng = np.random.default_rng(0)
    sharp = Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    blurred = sharp.filter(ImageFilter.GaussianBlur(2))
    assert image_features(blurred)["sharpness"] < 0.2 * image_features(sharp)["sharpness"]


def test_large_image_is_downscaled_but_keeps_its_stored_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1200, 800), (90, 60, 40)).save(path, quality=95)
    table = features_frame([path], max_side=256)
    row = table.frame.iloc[0]
    assert (row["width"], row["height"]) == (1200, 800)
    assert row["mean_r"] == pytest.approx(90, abs=2)


def test_unreadable_images_are_skipped_and_listed(tmp_path: Path) -> None:
    good = _write_images(tmp_path, 2, 100, seed=3)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    table = features_frame([*good, bad])
    assert len(table.frame) == 2
    assert [p for p, _ in table.unreadable] == [str(bad)]


def test_feature_progress_stays_off_logs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    paths = _write_images(tmp_path, 5, 100, seed=4)
    table = features_frame(paths, progress="current image statistics")
    assert len(table.frame) == 5 and capfd.readouterr() == ("", "")  # the bar is drawn on a terminal only


# --- the drift verdict ------------------------------------------------------------------------


def _tables(tmp: Path, ref_level: float, cur_level: float, n_cur: int = 40):
    ref = features_frame(_write_images(tmp / "ref", 40, ref_level, seed=10))
    cur = features_frame(_write_images(tmp / "cur", n_cur, cur_level, seed=11))
    return ref, cur


def test_ks_detects_a_brightness_shift(tmp_path: Path) -> None:
    window, per_feature = assess(*_tables(tmp_path, 100, 160), CFG)
    assert window.verdict == "drift"
    assert {"brightness", "mean_r"} <= set(window.drifted_features)
    assert window.drifted_share >= CFG.min_drifted_share
    assert per_feature["brightness"]["p_value"] <= CFG.alpha / len(FEATURES)
    assert not window.acquisition_alert


def test_ks_does_not_flag_the_same_distribution(tmp_path: Path) -> None:
    window, per_feature = assess(*_tables(tmp_path, 100, 100), CFG)
    assert window.verdict == "no_drift"
    assert window.drifted_features == ()
    assert set(per_feature) == set(FEATURES)


def test_small_window_is_insufficient_data_not_drift(tmp_path: Path) -> None:
    window, per_feature = assess(*_tables(tmp_path, 100, 160, n_cur=CFG.min_window - 1), CFG)
    assert window.verdict == "insufficient_data"
    assert per_feature == {}


def test_dark_and_unreadable_images_raise_an_acquisition_alert(tmp_path: Path) -> None:
    ref = features_frame(_write_images(tmp_path / "ref", 30, 100, seed=1))
    cur_dir = tmp_path / "cur"
    paths = _write_images(cur_dir, 30, 100, seed=2)
    for i in range(3):
        Image.new("RGB", (32, 32), (3, 2, 1)).save(cur_dir / f"black_{i}.png")
    (cur_dir / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    cur = features_frame([*paths, *sorted(cur_dir.glob("black_*")), cur_dir / "cut.png"])
    window, _ = assess(ref, cur, CFG)
    assert (window.n_dark, window.n_unreadable) == (3, 1)
    assert window.acquisition_failure_share == pytest.approx(4 / 34)
    assert window.acquisition_alert


# --- core.run, CLI, pipeline ------------------------------------------------------------------


def test_reference_is_the_unique_train_images(tmp_path: Path) -> None:
    crop, source = _fake_crop(tmp_path, n_train=7)
    paths = reference_paths(crop, source)
    assert len(paths) == 7 and all("train_imgs" in p.as_posix() for p in paths)


def test_run_writes_reports_and_remembers_windows(tmp_path: Path) -> None:
    crop, source = _fake_crop(tmp_path)
    current = tmp_path / "window"
    _write_images(current / "clinic_a", 25, 160, seed=5)  # recursive listing
    history = tmp_path / "state" / "history.json"

    first = run(CFG, crop, source, current, tmp_path / "out1", history, accepted_feedback=0)
    assert first["drift"]["verdict"] == "drift" and not first["decision"]["retrain"]
    drift = read_json(tmp_path / "out1" / "drift.json")
    assert drift["counts"]["reference_images"] == 30 and drift["counts"]["current_images"] == 25
    assert set(drift["features"]) == set(FEATURES)
    assert {"statistic", "p_value", "drifted"} <= set(drift["features"]["brightness"])
    html = (tmp_path / "out1" / "drift_report.html").read_text(encoding="utf-8")
    assert len(html) > 1000 and "<html" in html.lower()
    assert read_json(tmp_path / "out1" / "decision.json")["reasons"]

    second = run(CFG, crop, source, current, tmp_path / "out2", history, accepted_feedback=0)
    assert second["decision"]["retrain"]
    records = load_history(history)
    assert [r["verdict"] for r in records] == ["drift", "drift"]
    assert [r["retrain"] for r in records] == [False, True]


def test_run_with_an_empty_window_is_insufficient(tmp_path: Path) -> None:
    crop, source = _fake_crop(tmp_path, n_train=5)
    (tmp_path / "empty").mkdir()
    result = run(CFG, crop, source, tmp_path / "empty", tmp_path / "out")
    assert result["drift"]["verdict"] == "insufficient_data" and not result["decision"]["retrain"]
    assert (tmp_path / "out" / "drift_report.html").stat().st_size > 0


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    crop, source = _fake_crop(tmp_path, n_train=3)
    with pytest.raises(DataError, match="patches.parquet"):
        run(CFG, tmp_path / "nowhere", source, source, tmp_path / "out")
    with pytest.raises(DataError, match="does not exist"):
        run(CFG, crop, source, tmp_path / "missing", tmp_path / "out")
    bad = tmp_path / "history.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="history.json"):
        run(CFG, crop, source, source, tmp_path / "out", bad)


@pytest.mark.slow
def test_cli_with_the_repository_params(tmp_path: Path) -> None:
    crop, source = _fake_crop(tmp_path, n_train=30)
    current = tmp_path / "window"
    _write_images(current, 30, 160, seed=9)  # repo params: min_window = 30
    cmd = [
        sys.executable,
        "-m",
        "components.monitor_drift",
        "--params",
        "params.yaml",
        "--reference",
        str(crop),
        "--source",
        str(source),
        "--current",
        str(current),
        "--out",
        str(tmp_path / "out"),
        "--history",
        str(tmp_path / "h.json"),
        "--accepted-feedback",
        "0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("monitor_drift: drift")
    assert json.loads((tmp_path / "out" / "decision.json").read_text())["retrain"] is False
    assert len(json.loads((tmp_path / "h.json").read_text())) == 1


def test_monitoring_pipeline_compiles(tmp_path: Path) -> None:
    from kfp import compiler

    from pipelines.monitoring import PIPELINE_NAME, monitoring_pipeline

    target = tmp_path / "monitoring.yaml"
    compiler.Compiler().compile(monitoring_pipeline, str(target))
    text = target.read_text(encoding="utf-8")
    assert PIPELINE_NAME in text and "monitor_drift" in text.replace("-", "_")
    assert "retrain" in text and "alert" in text
