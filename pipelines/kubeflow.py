"""Kubernetes settings of every pipeline task, applied in one place: `configure(task, stage, cfg)`.

From params.yaml `kubeflow`: the image (version-tagged; the CUDA flavour for tasks given GPUs),
cpu/memory requests and limits on every task (defaults + per-stage overrides), GPUs, retries for
the steps that fail for reasons outside the data (S3, preempted GPU nodes, the registry), and
caching. A task is cached only when its outputs are a function of its inputs: KFP's cache key
covers the inputs, so ingest_data takes the data fingerprint (`data_version`) as one, and every
later task inherits it through its input artifacts. Steps that read or move registry aliases
(evaluate_* compare with the current champion, promote_model, monitor_drift) never are: their
answer depends on the registry's state, which no input captures.

kfp.local (pipelines/local.py) accepts the same tasks and ignores image, resources, accelerators,
retries and caching (SubprocessRunner runs each task once, here).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from components import STAGES
from components.common.errors import ConfigError
from components.common.kfp_image import IMAGE_REPOSITORY, image

UNCACHED = frozenset({"evaluate_model", "evaluate_detector", "promote_model", "monitor_drift"})
DDP_STAGES = frozenset({"train_model"})  # stages that run one process per GPU under torchrun
_REPOSITORY = re.compile(r"^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9._-]+)+$")


@dataclass(frozen=True)
class TaskSettings:
    """Kubernetes resources and retries of one task. In `kubeflow.stages.<stage>` a missing key
    keeps the value from `kubeflow.defaults`. Quantities as Kubernetes writes them ("500m", "2",
    "4Gi"); quote plain numbers in YAML."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    gpus: int | None = None  # accelerator limit; 0 = CPU only
    retries: int | None = None  # re-runs after a failure (0 = none)


@dataclass(frozen=True)
class PyTorchJobConfig:
    """`kubeflow.pytorchjob`: multi-node DDP training as a Training Operator PyTorchJob
    (pipelines/pytorchjob.py). GPUs and resources per node are `train_model`'s task settings."""

    nodes: int = 2  # pods: one Master + (nodes - 1) Workers
    name: str = "lesionops-train"
    master_port: int = 23456
    shm_size: str = "8Gi"  # /dev/shm for NCCL and loader workers (the container default is 64 MB)
    backoff_limit: int = 3  # pod restarts before the job fails (preempted nodes)
    env_secret: str | None = None  # NAME of a Secret whose keys become env (AWS_*, MLFLOW_TRACKING_TOKEN)


_DEFAULTS = TaskSettings(cpu_request="500m", cpu_limit="2", memory_request="2Gi", memory_limit="4Gi", gpus=0, retries=0)


@dataclass(frozen=True)
class KubeflowConfig:
    """The `kubeflow` section of params.yaml (read when compiling, submitting or rendering a job)."""

    image_repository: str = IMAGE_REPOSITORY  # tag = package version; "-cuda" for GPU tasks
    accelerator_type: str = "nvidia.com/gpu"  # Kubernetes resource name of a GPU
    pipeline_root: str | None = None  # s3://bucket/prefix for task outputs on the cluster
    source_uri: str | None = None  # s3:// copy of retrain.data the cluster reads (retrain target kubeflow)
    namespace: str | None = None  # Kubeflow profile namespace (multi-user); None = the client's
    service_account: str | None = None  # runs' service account (S3 access via IRSA); None = the namespace's
    caching: bool = True  # False: no task is cached
    gpu_toleration: bool = True  # GPU tasks tolerate the `<accelerator_type>:NoSchedule` taint GPU nodes carry
    gpu_shm_size: str = "8Gi"  # /dev/shm (memory-backed) of GPU tasks: loader workers and NCCL outgrow 64 MB
    retry_backoff: str = "60s"  # wait before the first retry
    retry_backoff_factor: float = 2.0  # each further wait is this many times longer
    retry_backoff_max: str = "3600s"  # no retry after this long (KFP's maximum)
    defaults: TaskSettings = field(default_factory=lambda: _DEFAULTS)
    stages: dict[str, Any] = field(default_factory=dict)  # stage → TaskSettings keys overriding defaults
    pytorchjob: PyTorchJobConfig = field(default_factory=PyTorchJobConfig)

    def __post_init__(self) -> None:
        if not _REPOSITORY.match(self.image_repository):
            raise ConfigError(
                f"kubeflow.image_repository: a registry/repository without tag or digest "
                f"(the tag is the package version), found {self.image_repository!r}"
            )
        missing = [f.name for f in dataclasses.fields(TaskSettings) if getattr(self.defaults, f.name) is None]
        if missing:
            raise ConfigError(f"kubeflow.defaults: every key needs a value, missing {missing}")
        unknown = sorted(set(self.stages) - set(STAGES))
        if unknown:
            raise ConfigError(f"kubeflow.stages: unknown stage(s) {unknown}; stages are {list(STAGES)}")
        for stage in STAGES:
            _check_settings(self.settings(stage), f"kubeflow.stages.{stage}", stage)
        _quantity(self.gpu_shm_size, "kubeflow.gpu_shm_size")
        for name in ("retry_backoff", "retry_backoff_max"):
            _seconds(getattr(self, name), f"kubeflow.{name}")
        if self.retry_backoff_factor < 1:
            raise ConfigError(f"kubeflow.retry_backoff_factor: at least 1, found {self.retry_backoff_factor}")
        for name in ("pipeline_root", "source_uri"):
            value = getattr(self, name)
            if value is not None and "://" not in value:
                raise ConfigError(f"kubeflow.{name}: a URI the cluster can reach (s3://bucket/prefix), found {value!r}")
        if self.pytorchjob.nodes < 1:
            raise ConfigError(f"kubeflow.pytorchjob.nodes: at least 1, found {self.pytorchjob.nodes}")

    def settings(self, stage: str) -> TaskSettings:
        """`defaults` with the stage's overrides applied."""
        from components.common.params import build

        if stage not in STAGES:
            raise ConfigError(f"kubeflow: unknown stage {stage!r}; stages are {list(STAGES)}")
        override = build(TaskSettings, self.stages.get(stage) or {}, f"kubeflow.stages.{stage}")
        changes = {k: v for k, v in dataclasses.asdict(override).items() if v is not None}
        return dataclasses.replace(self.defaults, **changes)

    def image_for(self, stage: str) -> str:
        return image(self.image_repository, cuda=bool(self.settings(stage).gpus))

    def nproc_per_node(self, stage: str) -> int:
        """Processes per pod: one per GPU for DDP stages, else one."""
        return max(1, int(self.settings(stage).gpus or 0)) if stage in DDP_STAGES else 1


def from_params(doc: dict[str, Any]) -> KubeflowConfig:
    """The `kubeflow` section, or its defaults when the document has none (a kfp.local run needs
    no cluster settings; compiling and submitting read the section strictly)."""
    from components.common.params import section

    return section(doc, "kubeflow", KubeflowConfig) if "kubeflow" in doc else KubeflowConfig()


def _quantity(value: str | None, where: str) -> Any:
    from kubernetes.utils import parse_quantity

    try:
        return parse_quantity(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: not a Kubernetes quantity: {value!r}") from exc


def _check_settings(s: TaskSettings, where: str, stage: str) -> None:
    """Refuse what a cluster would refuse later, when a pod is created: a request above its limit,
    a quantity Kubernetes cannot parse, GPUs a stage cannot use."""
    for kind in ("cpu", "memory"):
        request = _quantity(getattr(s, f"{kind}_request"), f"{where}.{kind}_request")
        limit = _quantity(getattr(s, f"{kind}_limit"), f"{where}.{kind}_limit")
        if request > limit:
            raise ConfigError(
                f"{where}: {kind}_request {getattr(s, f'{kind}_request')} is above "
                f"{kind}_limit {getattr(s, f'{kind}_limit')}"
            )
    if (s.gpus or 0) < 0 or (s.retries or 0) < 0:
        raise ConfigError(f"{where}: gpus and retries must be >= 0, found {s.gpus} and {s.retries}")
    if (s.gpus or 0) > 1 and stage not in DDP_STAGES:
        raise ConfigError(
            f"{where}.gpus: {stage} trains in one process and would use 1 of {s.gpus} GPUs; "
            f"only {sorted(DDP_STAGES)} run one process per GPU"
        )


def _seconds(text: str, where: str) -> int:
    from kfp.dsl.structures import convert_duration_to_seconds

    try:
        return convert_duration_to_seconds(text)
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{where}: a duration like 30s, 5m or 1h, found {text!r}") from exc


def _gpu_pod(task: Any, cfg: KubeflowConfig) -> None:
    """What a GPU pod needs beyond the GPU request (kfp-kubernetes platform config): GPU node groups
    are tainted so CPU work stays off them (infra/terraform: `nvidia.com/gpu=true:NoSchedule`) and
    only EKS/AKS admission controllers that are often off add the toleration; and the container's
    64 MB /dev/shm kills DataLoader workers and NCCL."""
    from kfp import kubernetes

    if cfg.gpu_toleration:
        kubernetes.add_toleration(task, key=cfg.accelerator_type, operator="Exists", effect="NoSchedule")
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=cfg.gpu_shm_size
    )


def configure(task: Any, stage: str, cfg: KubeflowConfig) -> Any:
    """Apply image, resources, GPUs, retries and caching to one kfp PipelineTask; returns it."""
    s = cfg.settings(stage)
    task.set_container_image(cfg.image_for(stage))
    task.set_cpu_request(s.cpu_request).set_cpu_limit(s.cpu_limit)
    task.set_memory_request(s.memory_request).set_memory_limit(s.memory_limit)
    if s.gpus:
        task.set_accelerator_type(cfg.accelerator_type).set_accelerator_limit(s.gpus)
        _gpu_pod(task, cfg)
    if s.retries:
        task.set_retry(
            s.retries,
            backoff_duration=cfg.retry_backoff,
            backoff_factor=cfg.retry_backoff_factor,
            backoff_max_duration=cfg.retry_backoff_max,
        )
    task.set_caching_options(cfg.caching and stage not in UNCACHED)
    return task
