"""Load `params.yaml` (or its JSON twin passed by Kubeflow) and turn one section into a frozen config.

Every stage reads only its own section plus the shared `task` section, as DVC stages do in
iterative/example-get-started. Kubeflow tasks receive the whole document as a JSON string so the
compiled pipeline carries the exact values it was compiled or submitted with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from components.common.errors import ConfigError

T = TypeVar("T")
# Settings that moved, so an old params file gets told where instead of "unknown key" (one release).
MOVED = {"evaluate_model.kfold": "the `crossval` section (k-fold is its own stage now)"}


def load_params(path: Path | None = None, json_text: str | None = None) -> dict[str, Any]:
    """Read the whole params document from a YAML file or a JSON string (exactly one)."""
    if (path is None) == (json_text is None):
        raise ConfigError("give exactly one of --params (a YAML file) or --params-json")
    if json_text is not None:
        try:
            doc = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--params-json is not valid JSON: {exc}") from exc
        source = "--params-json"
    else:
        assert path is not None
        if not path.is_file():
            raise ConfigError(f"{path}: params file not found")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        source = str(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, found {type(doc).__name__}")
    return doc


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert YAML values to the dataclass field type (lists → tuples, nested dataclasses)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return build(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where) if len(non_none) == 1 else value
    if origin is tuple and isinstance(value, list | tuple):
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is dict and isinstance(value, dict):
        return dict(value)
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, found {value!r}")
    return value


def build(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Instantiate dataclass `cls` from a mapping, refusing unknown keys (typos are bugs)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, found {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if moved := [f"{where}.{k}" for k in unknown if f"{where}.{k}" in MOVED]:
        raise ConfigError(f"{moved[0]} moved to {MOVED[moved[0]]}")
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def section(doc: dict[str, Any], name: str, cls: type[T]) -> T:
    """Build the config of one stage from its `params.yaml` section."""
    if name not in doc:
        raise ConfigError(f"params: section '{name}' is missing")
    return build(cls, doc[name] or {}, name)


def params_hash(*parts: Any) -> str:
    """Stable short hash of config values; lineage records which params produced an output."""
    blob = json.dumps(
        [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts],  # type: ignore[arg-type]
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
