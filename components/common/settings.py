"""One way to build the settings of any command: params.yaml, then `--task`, then `--set`.

`--task` is either the name of a preset shipped in `tasks/` (each seed system) or the path of a
task file of the user's own (`lesionops task new` writes one). Either is a partial params document
deep-merged over params.yaml, so every threshold it does not mention keeps its reviewed default:
mappings merge key by key; lists and scalars are replaced; `task.aliases` is replaced whole,
because one taxonomy's aliases mean nothing in another. `--set SECTION.KEY=VALUE` overrides come
last. The result is an ordinary params document that every stage reads exactly as params.yaml.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import ConfigError
from components.common.params import load_params
from components.common.task import load_task

TASKS_DIR = Path(__file__).resolve().parents[2] / "tasks"
REPLACED = (("task", "aliases"),)  # mappings a task document replaces instead of merging into
TASK_FILE_SUFFIXES = (".yaml", ".yml")


def list_presets(tasks_dir: Path = TASKS_DIR) -> list[str]:
    """Names of the presets shipped in `tasks/` (the file names without `.yaml`)."""
    return sorted(p.stem for p in tasks_dir.glob("*.yaml")) if tasks_dir.is_dir() else []


def deep_merge(base: dict[str, Any], over: dict[str, Any], where: tuple[str, ...] = ()) -> dict[str, Any]:
    """`over` on top of `base` (neither is modified): mappings merge, anything else is replaced.
    A new `task.classes` without `task.aliases` drops the base's aliases: they named other classes."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        path = (*where, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and path not in REPLACED:
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = copy.deepcopy(value)
    if where == ("task",) and "classes" in over and "aliases" not in over:
        out.pop("aliases", None)
    return out


def read_document(path: Path) -> dict[str, Any]:
    """A YAML mapping of params sections, or a ConfigError naming the file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of params sections, found {type(doc).__name__}")
    return doc


def is_task_file(task: str) -> bool:
    """`--task` names a file when it ends in .yaml/.yml; otherwise it is a preset name."""
    return str(task).lower().endswith(TASK_FILE_SUFFIXES)


def _merge_checked(path: Path, base_doc: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(over) - set(base_doc))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; params sections: {sorted(base_doc)}")
    doc = deep_merge(base_doc, over)
    load_task(doc)
    return doc


def load_preset(name: str, base_doc: dict[str, Any], tasks_dir: Path = TASKS_DIR) -> dict[str, Any]:
    """The params document for preset `name`: `tasks/<name>.yaml` deep-merged over `base_doc`.

    Refused, naming the file and the key: an unknown preset (the message lists the available
    ones), a section params.yaml does not have (a typo would otherwise be silently ignored), a
    `task.name` that is not the file's name (registry and experiment names follow it), and a
    merged `task` section that does not build.
    """
    available = list_presets(tasks_dir)
    if name not in available:
        raise ConfigError(
            f"--task: no preset {name!r} in {tasks_dir}; available: {', '.join(available) or 'none'} "
            "(or the path of a task file ending in .yaml, e.g. from `lesionops task new`)"
        )
    path = tasks_dir / f"{name}.yaml"
    doc = _merge_checked(path, base_doc, read_document(path))
    task = load_task(doc)
    if task.name != name:
        raise ConfigError(f"{path}: task.name is {task.name!r}; a preset's task.name must be its file name {name!r}")
    return doc


def load_task_file(path: Path, base_doc: dict[str, Any]) -> dict[str, Any]:
    """A user's own task file over `base_doc`. It must name the task and its classes (inheriting the
    demo's taxonomy would be silently wrong); registry names default to `<name>_classifier` and
    `<name>_detector` so a new task never overwrites another task's champion."""
    if not path.is_file():
        raise ConfigError(
            f"--task {path}: no such task file (create one with `lesionops task new --from DIR --out {path}`)"
        )
    over = read_document(path)
    task = over.get("task")
    if not isinstance(task, dict) or not task.get("name") or not task.get("classes"):
        raise ConfigError(f"{path}: a task file must set task.name and task.classes")
    doc = _merge_checked(path, base_doc, over)
    name, own = str(task["name"]), over.get("mlflow") or {}
    if isinstance(doc.get("mlflow"), dict) and isinstance(own, dict):
        doc["mlflow"]["registered_model"] = own.get("registered_model") or f"{name}_classifier"
        doc["mlflow"]["registered_detector"] = own.get("registered_detector") or f"{name}_detector"
    if task.get("data") is not None:  # a relative data folder is relative to the task file
        data = Path(str(task["data"])).expanduser()
        doc["task"]["data"] = str(data if data.is_absolute() else (path.parent / data).resolve())
    return doc


def apply_task(doc: dict[str, Any], task: str | None) -> dict[str, Any]:
    """`--task` (preset name or task file) over `doc`; None leaves it as it is."""
    if task is None:
        return doc
    return load_task_file(Path(task).expanduser(), doc) if is_task_file(task) else load_preset(task, doc)


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
    keys = {item.partition("=")[0].strip() for item in assignments}
    if "task.classes" in keys and "task.aliases" not in keys and isinstance(out.get("task"), dict):
        out["task"].pop("aliases", None)  # as in deep_merge: the old aliases named other classes
    return out


def build_settings(
    params: Path | None = None,
    task: str | None = None,
    overrides: list[str] | None = None,
    json_text: str | None = None,
) -> dict[str, Any]:
    """params.yaml (or Kubeflow's JSON twin), then `--task`, then `--set`: the one settings path."""
    doc = load_params(json_text=json_text) if json_text is not None else load_params(path=params or Path("params.yaml"))
    return apply_overrides(apply_task(doc, task), overrides or [])
