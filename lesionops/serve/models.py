"""The champion classifier and detector, loaded from the MLflow registry and swapped when the alias moves.

`models:/<name>@champion` is resolved to a version; that version's pickled nn.Module is loaded
with everything serving needs from its training run: `preprocessing.json` (classes, input size,
mean/std, logged by train_model / train_detector) and the metric `temperature` (fitted on val by
evaluate_model; 1.0 when absent, i.e. uncalibrated softmax). No champion yet is a normal state,
reported with its reason, never a crash.

Reload: `Champions.refresh()` asks the registry which version each alias points at and loads only
what changed; the new model is built completely before the reference is swapped, so a request
sees either the old or the new model, never half of one. A failed load keeps the model in service
and records the error. The app polls every `serve.reload_every_s` and `POST /reload` forces it.
All registry calls go through an explicit client for this store: MLflow's process-global tracking
URI is never touched (tests run several apps on several stores in one process).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from torch import nn

from components.common.drift_reference import ARTIFACT_PATH as REFERENCE_DIR
from components.common.drift_reference import MODEL_TABLE
from components.common.errors import DataError
from components.common.onnx_export import ARTIFACT, checked_session, export_classifier
from components.common.scope import ScopeConfig, ScopeModel, fit_scope
from components.common.tracking import TrackingConfig, resolved_uri, version_by_alias
from lesionops.serve.batching import MicroBatcher, on_model_thread
from lesionops.serve.model_process import ModelProcess, ModelProcessError, model_process

log = logging.getLogger("lesionops.serve")
KINDS = ("classifier", "detector")


class LoadError(Exception):
    """A registry version that cannot be served (missing artifact, unreadable model)."""


@dataclass(frozen=True)
class Classifier:
    name: str
    version: str
    run_id: str
    module: nn.Module
    classes: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    temperature: float
    onnx: Any = field(default=None, compare=False, repr=False)  # ONNX Runtime session (serve.backend: onnx)
    batcher: MicroBatcher = field(default_factory=MicroBatcher, compare=False, repr=False)  # concurrent requests
    scope: ScopeModel | None = field(default=None, compare=False, repr=False)  # serve_scope; None: every photo answered
    worker: ModelProcess | None = field(default=None, compare=False, repr=False)  # serve.model_process: forwards there
    key: str = field(default_factory=lambda: uuid.uuid4().hex, compare=False, repr=False)  # this load, in `worker`

    def info(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class Detector:
    name: str
    version: str
    run_id: str
    module: nn.Module
    classes: tuple[str, ...]
    label_offset: int  # model label = class index + offset (0 is background)

    def info(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def _run_json(client: MlflowClient, run_id: str, name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, name, tmp)
        except (MlflowException, OSError) as exc:
            raise LoadError(f"run {run_id} has no {name} artifact ({exc})") from exc
        return json.loads(Path(path).read_text(encoding="utf-8"))


def _load_module(client: MlflowClient, uri: str, name: str, version: str) -> nn.Module:
    """The pickled module of one registry version. The download goes through this store's client:
    a `models:/` URI would be resolved against MLflow's process-global registry instead."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            source = client.get_model_version_download_uri(name, version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=uri)
            loaded = mlflow.pytorch.load_model(local, map_location="cpu")
        except (MlflowException, OSError, RuntimeError, AttributeError, ModuleNotFoundError) as exc:
            raise LoadError(f"models:/{name}/{version} cannot be loaded ({exc})") from exc
    exported = isinstance(loaded, torch.export.ExportedProgram | torch.fx.GraphModule)
    if exported or not isinstance(loaded, nn.Module):
        raise LoadError(
            f"models:/{name}/{version} is a {type(loaded).__name__} (a torch.export program), not a "
            "pickled nn.Module: serving needs the module to take embeddings; retrain to register "
            "a servable version (train_model now logs pickled modules)"
        )
    return loaded.eval()


def _reference_rows(client: MlflowClient, run_id: str) -> pd.DataFrame | None:
    """The held-out rows of the version's drift reference (evaluate_model logs `reference/` on the
    training run): what the scope check is fitted and calibrated on. None when the run has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"{REFERENCE_DIR}/{MODEL_TABLE}", tmp)
        except (MlflowException, OSError):
            return None
        return pd.read_parquet(path)


def _scope(client: MlflowClient, run_id: str, cfg: ScopeConfig | None, label: str) -> ScopeModel | None:
    if cfg is None or not cfg.enabled:
        return None
    scope = fit_scope(_reference_rows(client, run_id), cfg)
    log.info("serve: %s scope: %s", label, scope.note)
    return scope


def load_classifier(
    client: MlflowClient,
    uri: str,
    name: str,
    version: Any,
    backend: str = "torch",
    scope: ScopeConfig | None = None,
    process_threads: int | None = None,
) -> Classifier:
    """One registry version, ready to serve. `process_threads`: torch forwards run in the server's
    model process with that many threads (model_process.py); None: on the in-process model thread."""
    prep = _run_json(client, version.run_id, "preprocessing.json")
    try:
        classes, size = tuple(str(c) for c in prep["classes"]), int(prep["image_size"])
        mean, std = tuple(float(v) for v in prep["mean"]), tuple(float(v) for v in prep["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadError(f"run {version.run_id}: preprocessing.json lacks classes/image_size/mean/std ({exc})") from exc
    temperature = float(client.get_run(version.run_id).data.metrics.get("temperature", 1.0))
    if not temperature > 0:
        raise LoadError(f"run {version.run_id}: temperature {temperature} is not positive")
    module = _load_module(client, uri, name, str(version.version))
    label = f"models:/{name}/{version.version}"
    # the export and its check run forwards: on the model thread, which must stay the only one (batching.py)
    onnx = on_model_thread(_onnx_session, client, version.run_id, module, size, label) if backend == "onnx" else None
    loaded = Classifier(
        name,
        str(version.version),
        version.run_id,
        module,
        classes,  # type: ignore[arg-type]
        size,
        mean,  # type: ignore[arg-type]
        std,  # type: ignore[arg-type]
        temperature,
        onnx=onnx,
        scope=_scope(client, version.run_id, scope, label),
    )
    if onnx is not None or process_threads is None:
        return loaded
    return replace(loaded, worker=_worker(module, loaded.key, label, process_threads))  # held there as this load's key


def _worker(module: nn.Module, key: str, label: str, threads: int) -> ModelProcess:
    """The model process, holding `module` as `key`: a model it cannot load (or a process that
    cannot start) fails the load here, not the first request."""
    try:
        worker = model_process(threads)
        worker.load(key, module)
    except ModelProcessError as exc:
        raise LoadError(f"{label} cannot be served by the model process ({exc})") from exc
    return worker


def _onnx_session(client: MlflowClient, run_id: str, module: nn.Module, size: int, label: str) -> Any:
    """The version's ONNX graph (logged at promotion with promote_model.export_onnx), or one exported
    here from the torch module when it was promoted without; either is checked against torch."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = Path(client.download_artifacts(run_id, ARTIFACT, tmp))
        except (MlflowException, OSError):
            log.warning("serve: %s has no %s artifact: exporting it now", label, ARTIFACT)
            try:
                return export_classifier(module, size, Path(tmp) / "model.onnx")
            except (DataError, RuntimeError, ValueError) as exc:
                raise LoadError(f"{label} cannot be exported to ONNX ({exc}); serve.backend: torch serves it") from exc
        try:
            return checked_session(module, path, size)
        except DataError as exc:
            raise LoadError(f"{label}: its {ARTIFACT} differs from the torch model ({exc.problem})") from exc


def load_detector(client: MlflowClient, uri: str, name: str, version: Any, fallback: tuple[str, ...]) -> Detector:
    try:
        prep = _run_json(client, version.run_id, "preprocessing.json")
    except LoadError:
        prep = {}  # older detectors: the task's classes, background at 0
    classes = tuple(str(c) for c in prep.get("classes", fallback))
    module = _load_module(client, uri, name, str(version.version))
    return Detector(name, str(version.version), version.run_id, module, classes, int(prep.get("label_offset", 1)))


class Champions:
    """The models in service, and why one is missing; `refresh()` follows the registry aliases."""

    def __init__(
        self,
        tracking: TrackingConfig,
        alias: str,
        task_classes: tuple[str, ...],
        wanted: tuple[str, ...] = KINDS,
        backend: str = "torch",
        scope: ScopeConfig | None = None,
        process_threads: int | None = None,
    ) -> None:
        self.uri = resolved_uri(tracking)
        self.scope, self.process_threads = scope, process_threads  # load_classifier's
        self.names = {"classifier": tracking.registered_model, "detector": tracking.registered_detector}
        self.alias, self.task_classes, self.wanted, self.backend = alias, task_classes, wanted, backend
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.models: dict[str, Classifier | Detector | None] = dict.fromkeys(KINDS)
        self.problems: dict[str, str] = {}
        self._refresh_lock = threading.Lock()

    @property
    def classifier(self) -> Classifier | None:
        return self.models["classifier"]  # type: ignore[return-value]

    @property
    def detector(self) -> Detector | None:
        return self.models["detector"]  # type: ignore[return-value]

    def reason(self, kind: str) -> str:
        """Why `kind` is not being served (for the 503)."""
        return self.problems.get(kind, f"no {kind} champion loaded")

    def refresh(self) -> dict[str, str | None]:
        """Load whatever the aliases point at now; returns kind → version in service."""
        with self._refresh_lock:  # the poller and POST /reload must not load the same version twice
            for kind in self.wanted:
                self._refresh_one(kind)
            return {k: (m.version if m else None) for k, m in self.models.items()}

    def _refresh_one(self, kind: str) -> None:
        name, current = self.names[kind], self.models[kind]
        try:
            version = version_by_alias(self.client, name, self.alias)
        except MlflowException as exc:  # registry unreachable: keep serving what we have
            self.problems[kind] = f"registry unreachable ({exc})"
            return
        if version is None:
            self.models[kind] = None
            self.problems[kind] = f"no {kind} champion yet: models:/{name}@{self.alias} does not exist"
            return
        if current is not None and current.version == str(version.version):
            return
        try:
            loaded = (
                load_classifier(self.client, self.uri, name, version, self.backend, self.scope, self.process_threads)
                if kind == "classifier"
                else load_detector(self.client, self.uri, name, version, self.task_classes)
            )
        except LoadError as exc:
            log.error("serve: keeping %s %s: %s", kind, current.version if current else "none", exc)
            self.problems[kind] = str(exc)
            return
        self.models[kind] = loaded
        self.problems.pop(kind, None)
        log.info("serve: %s %s version %s in service", kind, name, loaded.version)


class Poller:
    """Background thread calling `champions.refresh()` every `every_s` seconds until stopped."""

    def __init__(self, champions: Champions, every_s: float, on_change: Callable[[], None] | None = None) -> None:
        self.champions, self.every_s, self.on_change = champions, every_s, on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="champion-poller", daemon=True)

    def start(self) -> None:
        if self.every_s > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                before = {k: (m.version if m else None) for k, m in self.champions.models.items()}
                if self.champions.refresh() != before and self.on_change is not None:
                    self.on_change()
            except Exception:  # noqa: BLE001 - a poll must never kill the poller; the error is logged
                log.exception("serve: champion refresh failed")
