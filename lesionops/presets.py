"""Task presets: each seed system as a partial params document (`tasks/<name>.yaml`) over params.yaml.

A preset says only what differs from params.yaml for its task — the taxonomy, the input layout,
the model and its hyper-parameters, the registry names, the synthetic data generator — and is
deep-merged over the base document, so every threshold a preset does not mention keeps its
reviewed default. Mappings merge key by key; lists and scalars are replaced; `task.aliases` is
replaced whole, because one taxonomy's aliases mean nothing in another. The merged document is
an ordinary params document: every stage reads it exactly as it reads params.yaml.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import ConfigError
from components.common.params import section
from components.common.task import load_task

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
REPLACED = (("task", "aliases"),)  # mappings a preset replaces instead of merging into
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


def list_presets(tasks_dir: Path = TASKS_DIR) -> list[str]:
    """Names of the presets shipped in `tasks/` (the file names without `.yaml`)."""
    return sorted(p.stem for p in tasks_dir.glob("*.yaml")) if tasks_dir.is_dir() else []


def deep_merge(base: dict[str, Any], over: dict[str, Any], where: tuple[str, ...] = ()) -> dict[str, Any]:
    """`over` on top of `base` (neither is modified): mappings merge, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        path = (*where, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and path not in REPLACED:
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of params sections, found {type(doc).__name__}")
    return doc


def load_preset(name: str, base_doc: dict[str, Any], tasks_dir: Path = TASKS_DIR) -> dict[str, Any]:
    """The params document for task `name`: `tasks/<name>.yaml` deep-merged over `base_doc`.

    Refused, naming the file and the key: an unknown preset (the message lists the available
    ones), a section params.yaml does not have (a typo would otherwise be silently ignored), a
    `task.name` that is not the file's name (registry and experiment names follow it), and a
    merged `task` or `synth` section that does not build.
    """
    available = list_presets(tasks_dir)
    if name not in available:
        raise ConfigError(f"--task: no preset {name!r} in {tasks_dir}; available: {', '.join(available) or 'none'}")
    path = tasks_dir / f"{name}.yaml"
    preset = _read(path)
    unknown = sorted(set(preset) - set(base_doc))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; params sections: {sorted(base_doc)}")
    doc = deep_merge(base_doc, preset)
    task = load_task(doc)
    if task.name != name:
        raise ConfigError(f"{path}: task.name is {task.name!r}; a preset's task.name must be its file name {name!r}")
    synth_settings(doc)
    return doc


def apply_overrides(doc: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """`section.key=value` assignments (values parsed as YAML) applied on top of `doc`, for
    one-off runs such as `--set train_model.epochs=2`; the section must exist."""
    out = copy.deepcopy(doc)
    for item in assignments:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. train_model.epochs=2")
        if parts[0] not in out:
            raise ConfigError(f"--set {item!r}: unknown section {parts[0]!r}; params sections: {sorted(out)}")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a mapping")
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def synth_settings(doc: dict[str, Any]) -> SynthSettings:
    """The document's `synth` section (absent: the defaults, i.e. the skin generator)."""
    return section(doc, "synth", SynthSettings) if "synth" in doc else SynthSettings()


def generate(settings: SynthSettings, classes: tuple[str, ...], out: Path, progress: bool = True) -> Generated:
    """Run the generator `settings` names into `out` with the task's classes."""
    size = {"image_width": settings.image_width, "image_height": settings.image_height}
    if settings.generator in ("skin", "acupoint"):
        if settings.generator == "skin":
            from lesionops.synth.skin import SynthConfig, generate_skin_dataset

            summary = generate_skin_dataset(SynthConfig(out_dir=out, n_images=settings.n_images, seed=settings.seed,
                                                        classes=classes, class_priors=settings.class_priors,
                                                        **size), progress)
        else:
            if settings.class_priors is not None:
                raise ConfigError("synth.class_priors: the acupoint generator boxes every point on every hand; "
                                  "leave it null")
            from lesionops.synth.acupoint import AcupointConfig, generate_acupoint_dataset

            summary = generate_acupoint_dataset(AcupointConfig(out_dir=out, n_images=settings.n_images,
                                                               seed=settings.seed, classes=classes, **size), progress)
        return Generated(settings.generator, out, summary.n_images, summary.n_patients, summary.n_boxes,
                         summary.per_class_boxes)
    from lesionops.synth.whole_image import WholeImageConfig, generate_whole_image_dataset

    kind = _whole_image_kind(settings.generator)
    cfg = WholeImageConfig(out_dir=out, n_images=settings.n_images, seed=settings.seed, classes=classes,
                           class_priors=settings.class_priors, **size)
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
