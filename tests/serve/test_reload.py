"""Alias reload: moving `champion` in the registry changes the model in service, by the poller and
on demand; a version that cannot be served leaves the current one in place with the reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.common.tracking import setup
from components.promote_model.audit import read_audit
from tests.serve.fixtures import (
    ADMIN,
    CLINICIAN,
    REVIEWER,
    ServeSetup,
    build_serving,
    image_bytes,
    log_classifier,
    serve_in_thread,
)

AUTH = {"Authorization": f"Bearer {ADMIN}"}  # reload and rollback are the admin's
# The tests share one server and registry (module fixture): keep them on one xdist worker, and let each
# test name the versions it logs rather than assume which tests ran before it.
pytestmark = pytest.mark.xdist_group("serve-reload")


@pytest.fixture(scope="module")
def reloading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeSetup, str]]:
    serving = build_serving(tmp_path_factory.mktemp("reload"), detector=False, reload_every_s=0.5)
    with serve_in_thread(serving.app()) as url:
        yield serving, url


def _classify(url: str) -> dict:
    r = httpx.post(
        url + "/classify",
        files={"file": ("a.jpg", image_bytes(), "image/jpeg")},
        timeout=60,
        headers={"Authorization": f"Bearer {CLINICIAN}"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def _version(url: str) -> str | None:
    clf = httpx.get(url + "/health").json()["classifier"]
    return None if clf is None else clf["version"]


def test_poller_and_reload_follow_the_alias(reloading: tuple[ServeSetup, str], tmp_path: Path) -> None:
    serving, url = reloading
    served = _version(url)
    assert served is not None and _classify(url)["model"]["version"] == served
    before = _classify(url)["top"]

    new = log_classifier(serving.tracking, serving.task, tmp_path, seed=1, temperature=0.5)  # the new champion
    deadline = time.monotonic() + 60
    while _version(url) != new and time.monotonic() < deadline:  # the poller picks it up
        time.sleep(0.2)
    assert _version(url) == new
    answer = _classify(url)
    assert answer["model"] == {"name": "tiny_classifier", "version": new} and answer["top"] != before
    assert (
        f'lesionops_model_info{{kind="classifier",name="tiny_classifier",version="{new}"}} 1.0'
        in httpx.get(url + "/metrics").text
    )

    MlflowClient(serving.tracking.tracking_uri).set_registered_model_alias("tiny_classifier", "champion", served)
    r = httpx.post(url + "/reload", headers=AUTH, timeout=60)  # rollback, applied at once on demand
    assert r.status_code == 200 and r.json()["classifier"]["version"] == served
    assert _classify(url)["model"]["version"] == served and _classify(url)["top"] == before
    metrics = httpx.get(url + "/metrics").text
    assert f'version="{served}"}} 1.0' in metrics
    assert f'lesionops_model_info{{kind="classifier",name="tiny_classifier",version="{new}"}}' not in metrics
    assert httpx.post(url + "/reload").status_code == 401
    for token in (REVIEWER, CLINICIAN):  # a reviewer (or clinician) cannot reload
        r = httpx.post(url + "/reload", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403 and "may not admin" in r.json()["detail"]


def test_unservable_version_keeps_the_current_one(reloading: tuple[ServeSetup, str]) -> None:
    """A champion without preprocessing.json (not logged by train_model) is refused, not half-loaded."""
    serving, url = reloading
    current = _version(url)
    setup(serving.tracking)
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(
            torch.nn.Linear(2, 2), name="model", serialization_format="pickle", pip_requirements=["torch"]
        )
    version = mlflow.register_model(info.model_uri, "tiny_classifier").version
    MlflowClient().set_registered_model_alias("tiny_classifier", "champion", str(version))
    body = httpx.post(url + "/reload", headers=AUTH, timeout=60).json()
    assert body["classifier"]["version"] == current
    assert "preprocessing.json" in body["problems"]["classifier"]
    assert _classify(url)["model"]["version"] == current


def test_rollback_by_an_admin_is_audited_with_their_id(reloading: tuple[ServeSetup, str], tmp_path: Path) -> None:
    serving, url = reloading
    older = log_classifier(serving.tracking, serving.task, tmp_path, seed=2, alias="previous")
    newer = log_classifier(serving.tracking, serving.task, tmp_path, seed=3)  # champion
    assert httpx.post(url + "/reload", headers=AUTH, timeout=60).json()["classifier"]["version"] == newer
    body = {"kind": "classifier", "reason": "bad batch"}
    r = httpx.post(url + "/rollback", json=body, headers={"Authorization": f"Bearer {REVIEWER}"})
    assert r.status_code == 403
    r = httpx.post(url + "/rollback", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    assert (r.json()["from_version"], r.json()["to_version"]) == (newer, older) and _version(url) == older
    last = read_audit(Path(serving.promote.audit_log))[-1]
    assert last["action"] == "rollback" and last["user"] == ADMIN.split(".")[0] and last["reason"] == "bad batch"
