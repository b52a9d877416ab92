"""The synthetic data side of a task: the `synth` section and the generator it names.

Presets (`tasks/<name>.yaml`) and task files are merged over params.yaml by
`components.common.settings`; a preset also says which generator `lesionops synth` runs for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.common.errors import ConfigError
from components.common.params import section

GENERATORS = ("skin", "acupoint", "chest_xray", "ct", "monkeypox")


@dataclass(frozen=True)
class SynthSettings:
    """The `synth` section: which generator `lesionops synth` runs and with what defaults."""

    generator: str = "skin"
    n_images: int = 400
    seed: int = 7
    image_width: int = 640
    image_height: int = 480
    class_priors: tuple[float, ...] | None = None  # None: the generator's own (seed-like) mix
    out: str = "data"  # where `lesionops synth` writes and `pipeline run --task` reads by default

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ConfigError(f"synth.generator: expected one of {list(GENERATORS)}, found {self.generator!r}")


@dataclass(frozen=True)
class Generated:
    """What a generator wrote, in one shape whatever the generator (for the CLI to print)."""

    generator: str
    out: Path
    n_images: int
    n_patients: int
    n_boxes: int
    per_class: dict[str, int]  # boxes per class for labelImg sets, images per class otherwise


def synth_settings(doc: dict[str, Any]) -> SynthSettings:
    """The document's `synth` section (absent: the defaults, i.e. the skin generator)."""
    return section(doc, "synth", SynthSettings) if "synth" in doc else SynthSettings()


def generate(settings: SynthSettings, classes: tuple[str, ...], out: Path, progress: bool = True) -> Generated:
    """Run the generator `settings` names into `out` with the task's classes."""
    size = {"image_width": settings.image_width, "image_height": settings.image_height}
    if settings.generator in ("skin", "acupoint"):
        if settings.generator == "skin":
            from lesionops.synth.skin import SynthConfig, generate_skin_dataset

            summary = generate_skin_dataset(
                SynthConfig(
                    out_dir=out,
                    n_images=settings.n_images,
                    seed=settings.seed,
                    classes=classes,
                    class_priors=settings.class_priors,
                    **size,
                ),
                progress,
            )
        else:
            if settings.class_priors is not None:
                raise ConfigError(
                    "synth.class_priors: the acupoint generator boxes every point on every hand; leave it null"
                )
            from lesionops.synth.acupoint import AcupointConfig, generate_acupoint_dataset

            summary = generate_acupoint_dataset(
                AcupointConfig(out_dir=out, n_images=settings.n_images, seed=settings.seed, classes=classes, **size),
                progress,
            )
        return Generated(
            settings.generator, out, summary.n_images, summary.n_patients, summary.n_boxes, summary.per_class_boxes
        )
    from lesionops.synth.whole_image import WholeImageConfig, generate_whole_image_dataset

    kind = _whole_image_kind(settings.generator)
    cfg = WholeImageConfig(
        out_dir=out,
        n_images=settings.n_images,
        seed=settings.seed,
        classes=classes,
        class_priors=settings.class_priors,
        **size,
    )
    done = generate_whole_image_dataset(kind, cfg, progress)
    return Generated(settings.generator, out, done.n_images, done.n_patients, 0, done.per_class_images)


def _whole_image_kind(generator: str) -> Any:
    if generator == "chest_xray":
        from lesionops.synth.chest_xray import KIND
    elif generator == "ct":
        from lesionops.synth.ct import KIND
    else:
        from lesionops.synth.monkeypox import KIND
    return KIND
