"""The window verdict on store-like DataFrames: each test fires on its own shift, acquisition failures
alert, missing inputs say why, and monitor_frames writes drift.json / decision.json / history."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.drift_reference import Reference, load_reference
from components.common.image_stats import FEATURES
from components.common.io import read_json, write_json
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.core import monitor_frames
from components.monitor_drift.window import acquisition_alert, assess_window

CFG = MonitorConfig(min_window=30)
CLASSES = ("eczema", "psoriasis", "lichen_planus")
PRIORS = (0.3, 0.6, 0.1)
DIM = 12
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def rows(
    n: int,
    seed: int,
    *,
    bright: float = 130.0,
    emb_shift: float = 0.0,
    priors=PRIORS,
    conf: tuple[float, float] = (8, 2),
    grey: float = 0.0,
    version: str = "3",
    ita: float = 35.0,
) -> pd.DataFrame:
    """n store-like rows: FEATURES, skin tone (ITA°), model outputs and embeddings (class-dependent means)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLASSES, n, p=priors)
    centres = {c: np.eye(DIM)[i] * 2.0 for i, c in enumerate(CLASSES)}
    emb = np.stack([centres[c] for c in labels]) + rng.normal(0, 1, (n, DIM)) + emb_shift
    frame = pd.DataFrame(
        {
            "prediction_id": [f"p{seed}_{i}" for i in range(n)],
            "created_at": [T0 + timedelta(minutes=i) for i in range(n)],
            "kind": "classify",
            "model_version": version,
            "predicted_class": labels,
            "confidence": rng.beta(*conf, n),
            "brightness": rng.normal(bright, 15, n),
            "contrast": rng.normal(40, 5, n),
            "mean_r": rng.normal(bright * 1.3, 15, n),
            "mean_g": rng.normal(bright * 0.9, 12, n),
            "mean_b": rng.normal(bright * 0.7, 10, n),
            "saturation": rng.normal(0.45, 0.05, n),
            "sharpness": rng.lognormal(4, 0.5, n),
            "width": 640.0,
            "height": 480.0,
            "ita": rng.normal(ita, 15, n),
            "embedding": list(emb),
        }
    )
    n_grey = int(round(grey * n))
    frame.loc[: n_grey - 1, "saturation"] = 0.0
    return frame


def reference(seed: int = 0, **kw: object) -> Reference:
    img, model = rows(400, seed, **kw), rows(500, seed + 1, **kw)
    return Reference(
        img[[*FEATURES, "ita"]],
        model[["predicted_class", "confidence", "embedding"]],
        {"model_version": "3", "pixels": "raw"},
        "test reference",
    )


def verdicts(result) -> dict[str, str]:
    return {c.name: c.verdict for c in result.checks}


@pytest.fixture(scope="module")
def ref() -> Reference:
    return reference()


def test_unshifted_window_is_no_drift_and_every_test_reports(ref: Reference) -> None:
    result = assess_window(ref, rows(150, 7), CFG)
    assert result.window.verdict == "no_drift" and not result.window.acquisition_alert
    assert verdicts(result) == {
        "image_statistics": "no_drift",
        "skin_tone": "no_drift",
        "embedding_mmd": "no_drift",
        "class_mix": "no_drift",
        "confidence": "no_drift",
        "error_cusum": "skipped",
    }
    for check in result.checks[:5]:
        assert check.statistic is not None and check.p_value is not None and check.threshold is not None
        assert check.reason


@pytest.mark.parametrize(
    "shift, fired",
    [
        ({"emb_shift": 0.6}, "embedding_mmd"),
        ({"priors": (0.1, 0.3, 0.6)}, "class_mix"),
        ({"conf": (3, 3)}, "confidence"),
        ({"bright": 100.0}, "image_statistics"),
        ({"ita": 20.0}, "skin_tone"),
    ],
)
def test_each_test_fires_on_its_shift(ref: Reference, shift: dict, fired: str) -> None:
    result = assess_window(ref, rows(150, 8, **shift), CFG)
    assert result.window.verdict == "drift"
    assert fired in result.window.drifted_checks
    assert any(fired.split("_")[0] in r or "image statistics" in r for r in result.window.check_reasons)


def test_wrong_modality_share_raises_the_alert_and_is_left_out_of_the_tests(ref: Reference) -> None:
    result = assess_window(ref, rows(150, 9, grey=0.2), CFG)
    w = result.window
    assert w.acquisition_alert and w.n_wrong_modality == 30 and w.n_current == 120
    assert w.verdict == "no_drift"  # the grey images are not population drift, they are a fault


def test_a_grey_reference_flags_colour_images() -> None:
    grey_ref = reference(grey=1.0)
    result = assess_window(grey_ref, rows(100, 4, grey=0.7), CFG)
    assert result.window.n_wrong_modality == 30 and result.window.acquisition_alert


def test_near_black_frames_count_as_dark_not_wrong_modality(ref: Reference) -> None:
    cur = rows(100, 5)
    cur.loc[:14, ["brightness", "saturation"]] = [2.0, 0.0]
    w = assess_window(ref, cur, CFG).window
    assert (w.n_dark, w.n_wrong_modality) == (15, 0) and w.acquisition_alert


def test_small_window_is_insufficient_and_says_why(ref: Reference) -> None:
    result = assess_window(ref, rows(20, 6), CFG)
    assert result.window.verdict == "insufficient_data"
    assert all(c.verdict == "skipped" and "20 usable" in c.reason for c in result.checks[:5])


def test_skin_tone_is_skipped_with_a_reason_when_either_side_has_no_tone(ref: Reference) -> None:
    old_ref = Reference(ref.images.drop(columns="ita"), ref.model, ref.meta, "reference built before ITA")
    old = {c.name: c for c in assess_window(old_ref, rows(100, 7), CFG).checks}["skin_tone"]
    assert old.verdict == "skipped" and "no skin tone" in old.reason
    stored = rows(100, 7)
    stored.loc[:80, "ita"] = np.nan  # grey films and store rows from before ITA was measured
    few = {c.name: c for c in assess_window(ref, stored, CFG).checks}["skin_tone"]
    assert few.verdict == "skipped" and "19 window image(s) with a measured skin tone" in few.reason
    grey = {c.name: c for c in assess_window(reference(grey=1.0), rows(100, 4, grey=1.0), CFG).checks}
    assert grey["skin_tone"].verdict == "skipped" and "grey modality" in grey["skin_tone"].reason


def test_skin_tone_reports_the_tone_mix_a_clinician_reads(ref: Reference) -> None:
    check = {c.name: c for c in assess_window(ref, rows(150, 8, ita=5.0), CFG).checks}["skin_tone"]
    assert check.verdict == "drift" and check.p_value <= CFG.skin_tone_alpha
    ref_mix, cur_mix = check.detail["reference_mix"], check.detail["current_mix"]
    assert sum(ref_mix.values()) == pytest.approx(1.0, abs=1e-3)
    assert cur_mix["brown"] > ref_mix["brown"] and cur_mix["intermediate"] < ref_mix["intermediate"]
    assert check.detail["current_median_ita"] < check.detail["reference_median_ita"] - 20


def test_no_reference(ref: Reference) -> None:
    result = assess_window(None, rows(100, 6), CFG)
    assert result.window.verdict == "no_reference"


def test_folder_windows_have_image_statistics_only(ref: Reference) -> None:
    cur = rows(100, 7)[list(FEATURES)]
    result = assess_window(ref, cur, CFG)
    assert result.window.verdict == "no_drift"
    assert all("folder mode" in c.reason for c in result.checks if c.name in ("class_mix", "confidence"))


def test_other_model_versions_are_left_out_of_the_model_tests(ref: Reference) -> None:
    cur = pd.concat([rows(100, 7), rows(50, 8, emb_shift=3.0, version="2")], ignore_index=True)
    result = assess_window(ref, cur, CFG)
    assert "embedding_mmd" not in result.window.drifted_checks
    assert any("50 prediction(s) from other model versions" in n for n in result.notes)


def test_patch_references_leave_sharpness_out(ref: Reference) -> None:
    patch_ref = Reference(
        ref.images.drop(columns="sharpness"),
        ref.model,
        {"features": [f for f in FEATURES if f != "sharpness"]},
        "patch reference",
    )
    result = assess_window(patch_ref, rows(100, 7), CFG)
    assert "sharpness" not in result.per_feature and len(result.per_feature) == len(FEATURES) - 1


def reviews(n_ok: int, n_bad_tail: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    correct = list(rng.random(n_ok) >= 0.15) + list(rng.random(n_bad_tail) >= 0.7)
    return pd.DataFrame(
        {
            "feedback_id": [f"f{i}" for i in range(len(correct))],
            "reviewed_at": [T0 + timedelta(hours=i) for i in range(len(correct))],
            "status": "accepted",
            "model_label": "psoriasis",
            "true_label": ["psoriasis" if c else "eczema" for c in correct],
            "correct": correct,
        }
    )


def test_a_rising_feedback_error_rate_is_drift(ref: Reference) -> None:
    quiet = assess_window(ref, rows(100, 7), CFG, reviews=reviews(120, 0, 1))
    assert quiet.window.verdict == "no_drift"
    result = assess_window(ref, rows(100, 7), CFG, reviews=reviews(60, 60, 1).sample(frac=1, random_state=0))
    assert result.window.verdict == "drift" and result.window.drifted_checks == ("error_cusum",)


def test_monitor_frames_two_windows_retrain_then_cooldown(ref: Reference, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    cfg = replace(CFG, cooldown_hours=24)
    out = [tmp_path / f"w{i}" for i in range(3)]
    first = monitor_frames(cfg, ref, "ref", rows(120, 11, emb_shift=0.6), out[0], history_file=history, now=T0)
    assert first["drift"]["verdict"] == "drift" and not first["decision"]["retrain"]
    second = monitor_frames(
        cfg, ref, "ref", rows(120, 12, emb_shift=0.6), out[1], history_file=history, now=T0 + timedelta(hours=1)
    )
    assert second["decision"]["retrain"] and second["decision"]["trigger"] == "drift"
    third = monitor_frames(
        cfg, ref, "ref", rows(120, 13), out[2], history_file=history, accepted_feedback=60, now=T0 + timedelta(hours=2)
    )
    assert not third["decision"]["retrain"] and any(r.startswith("cooldown") for r in third["decision"]["reasons"])
    drift = read_json(out[1] / "drift.json")
    assert {c["name"] for c in drift["checks"]} >= {
        "image_statistics",
        "skin_tone",
        "embedding_mmd",
        "class_mix",
        "confidence",
    }
    assert drift["false_alarm_bound"] == pytest.approx(0.05)
    assert drift["skin_tone"]["verdict"] == "no_drift" and set(drift["skin_tone"]["current_mix"]) >= {"dark"}
    decision = read_json(out[1] / "decision.json")
    assert decision["skin_tone"]["verdict"] == "no_drift" and "ITA" in decision["skin_tone"]["reason"]
    assert "ita" in (out[1] / "drift_report.html").read_text(encoding="utf-8")
    assert (out[1] / "drift_report.html").stat().st_size > 1000
    assert (out[1] / "model_drift_report.html").stat().st_size > 1000
    assert [r["retrain"] for r in read_json(history)] == [False, True, False]


def test_a_reference_folder_round_trip(ref: Reference, tmp_path: Path) -> None:
    ref.images.to_parquet(tmp_path / "images.parquet")
    ref.model.assign(embedding=[list(e) for e in ref.model.embedding]).to_parquet(tmp_path / "model.parquet")
    write_json(tmp_path / "reference.json", {"pixels": "raw", "features": list(FEATURES)})
    loaded = load_reference(tmp_path)
    assert loaded.embeddings().shape == (500, DIM)
    assert assess_window(loaded, rows(150, 8, emb_shift=0.6), CFG).window.verdict == "drift"


@pytest.mark.parametrize(("shift", "expected"), [(0.0, "no_drift"), (30.0, "drift")])
def test_drift_pages_open_with_the_decisions_verdict(
    ref: Reference, tmp_path: Path, shift: float, expected: str
) -> None:
    """Unshifted and shifted windows: both Evidently pages start with the verdict decision.json
    holds and every calibrated check's p-value; Evidently's snapshot is saved as JSON."""
    import json

    from components.monitor_drift.report import BANNER_ID

    monitor_frames(CFG, ref, "ref", rows(150, 7, bright=130.0 + shift), tmp_path, now=T0)
    decision, drift = read_json(tmp_path / "decision.json"), read_json(tmp_path / "drift.json")
    assert decision["verdict"] == drift["verdict"] == expected
    for page in ("drift_report.html", "model_drift_report.html"):
        html = (tmp_path / page).read_text(encoding="utf-8")
        banner = html[html.index(f"id='{BANNER_ID}'") :]
        body = html[html.lower().index("<body") :].split(">", 1)[1]
        assert body.lstrip().startswith(f"<section id='{BANNER_ID}'")  # the first thing on the page
        assert f"LesionOps verdict: {expected}</h1>" in banner
        assert html.count("LesionOps verdict:") == 1
        for check in drift["checks"]:
            assert f"<td>{check['name']}</td><td>{check['verdict']}</td>" in banner
        snapshot = json.loads((tmp_path / page.replace(".html", ".evidently.json")).read_text(encoding="utf-8"))
        assert snapshot and isinstance(snapshot, dict)


@pytest.mark.parametrize(
    ("failures", "n", "alert"),
    [
        (0, 500, False),
        (1, 100, False),
        (2, 100, False),
        (10, 500, False),
        (50, 500, True),
        (10, 100, True),
        (3, 20, True),
    ],
)
def test_the_acquisition_alert_is_a_binomial_test_above_the_tolerated_share(failures: int, n: int, alert: bool) -> None:
    """Tolerance 2 %, level 1 %: a share at the tolerance never alerts, 10 % chest films always do."""
    cfg = MonitorConfig(max_acquisition_failure_share=0.02, acquisition_alpha=0.01)
    assert acquisition_alert(failures, n, cfg) is alert
