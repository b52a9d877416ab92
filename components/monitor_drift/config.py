"""The `monitor_drift` section of params.yaml as frozen dataclasses (unknown keys are refused).

Every test choice and threshold lives here, because the defaults of drift libraries assume
independent rows and false-alarm on windows of a hundred clustered clinical images. Each test is
calibrated on the reference (whole-patient windows, stats.py); the window verdict is "drift" when
any test says so, so the per-test levels add up (union bound) to the false-alarm rate on an
unshifted window: alpha + mmd.alpha + class_mix_alpha + confidence_alpha + skin_tone_alpha.
benchmarks/drift.py measures the real rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from components.common.errors import ConfigError


def _check(section: str, checks: dict[str, bool], values: object) -> None:
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ConfigError(f"{section}: out-of-range value(s) for {bad}: {values}")


@dataclass(frozen=True)
class CalibrationConfig:
    """How the window tests' null distributions are made (stats.py): `windows` reference windows of
    whole patients, each tested against the rest of the reference; p-values in steps of 1/(windows+1).

    999, not 200: at a level of 0.01 a Monte Carlo test on 200 windows fires only when the window
    beats 199 of them, so a medium shift's verdict hung on the one or two most extreme draws (the
    skin-tone test flagged 3 % to 100 % of the same windows, depending on the calibration seed)."""

    windows: int = 999
    seed: int = 0

    def __post_init__(self) -> None:
        _check("monitor_drift.calibration", {"windows": self.windows >= 19, "seed": self.seed >= 0}, asdict(self))


@dataclass(frozen=True)
class MMDConfig:
    """Embedding MMD: RBF kernel, median-heuristic bandwidth (of the reference), unbiased MMD²."""

    alpha: float = 0.01
    # Larger samples are subsampled (seeded): the reference kernel matrix is max_reference², and the
    # null windows are one (max_reference x max_reference) @ (max_reference x windows) product.
    max_reference: int = 2000
    max_current: int = 1000

    def __post_init__(self) -> None:
        _check(
            "monitor_drift.mmd",
            {
                "alpha": 0 < self.alpha < 1,
                "max_reference": self.max_reference >= 10,
                "max_current": self.max_current >= 10,
            },
            asdict(self),
        )


@dataclass(frozen=True)
class CusumConfig:
    """One-sided Bernoulli CUSUM on the error flags of reviewed feedback, since the last retrain.

    S_t = max(0, S_{t-1} + e_t - target - k); an alarm when S_t > h. Reported reviews are a
    self-selected sample (users flag answers they doubt), so the target error is, by default, what
    the first `warmup` reviews show, not the model's test error.
    """

    k: float = 0.1
    h: float = 6.0
    target_error: float | None = None
    warmup: int = 30

    def __post_init__(self) -> None:
        _check(
            "monitor_drift.cusum",
            {
                "k": 0 <= self.k < 1,
                "h": self.h > 0,
                "warmup": self.warmup >= 1,
                "target_error": self.target_error is None or 0 <= self.target_error < 1,
            },
            asdict(self),
        )


@dataclass(frozen=True)
class MonitorConfig:
    """The `monitor_drift` section of params.yaml."""

    alpha: float = 0.01  # image statistics, family-wise; each feature is tested at alpha / n_features
    min_drifted_share: float = 0.1  # share of features that must drift for the image-statistics test
    min_window: int = 30
    window: int = 500  # store mode: at most this many classify predictions per window
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    mmd: MMDConfig = field(default_factory=MMDConfig)
    class_mix_alpha: float = 0.01
    confidence_alpha: float = 0.01
    skin_tone_alpha: float = 0.01  # skin tone (ITA° of the skin, per image): KS on its distribution
    cusum: CusumConfig = field(default_factory=CusumConfig)
    retrain_feedback_threshold: int = 50
    consecutive_windows: int = 2
    cooldown_hours: float = 24.0
    dark_brightness: float = 20.0  # mean luma (0-255) below which an image is near-black
    grey_saturation: float = 0.03  # mean HSV saturation below which an image is grey
    max_acquisition_failure_share: float = 0.02  # tolerated share; alert when significantly above it
    acquisition_alpha: float = 0.01  # level of that one-sided binomial test (window.acquisition_alert)
    max_side: int = 256

    def __post_init__(self) -> None:
        _check(
            "monitor_drift",
            {
                "alpha": 0 < self.alpha < 1,
                "min_drifted_share": 0 < self.min_drifted_share <= 1,
                "min_window": self.min_window >= 2,
                "window": self.window >= self.min_window,
                "class_mix_alpha": 0 < self.class_mix_alpha < 1,
                "confidence_alpha": 0 < self.confidence_alpha < 1,
                "skin_tone_alpha": 0 < self.skin_tone_alpha < 1,
                "retrain_feedback_threshold": self.retrain_feedback_threshold >= 1,
                "consecutive_windows": self.consecutive_windows >= 1,
                "cooldown_hours": self.cooldown_hours >= 0,
                "dark_brightness": 0 <= self.dark_brightness < 255,
                "grey_saturation": 0 <= self.grey_saturation < 1,
                "max_acquisition_failure_share": 0 <= self.max_acquisition_failure_share < 1,
                "acquisition_alpha": 0 < self.acquisition_alpha < 1,
                "max_side": self.max_side >= 16,
            },
            asdict(self),
        )

    @property
    def false_alarm_bound(self) -> float:
        """Union bound on the share of unshifted windows called "drift" by the distribution tests."""
        return self.alpha + self.mmd.alpha + self.class_mix_alpha + self.confidence_alpha + self.skin_tone_alpha
