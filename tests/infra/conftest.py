"""Fixtures for the Terraform tests: the terraform binary, the offline provider mirror, isolated working copies
of infra/terraform and an AWS emulator (moto) on loopback. Nothing here touches the network or the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra" / "terraform"
MIRROR_SEARCH_ROOT = Path("/opt/tf-plugins")
# Never copy another run's state, lock files or provider downloads into a test's working copy.
COPY_IGNORE = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfplan",
                                     "terraform.tfvars")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}

TerraformRun = Callable[..., subprocess.CompletedProcess[str]]


def copy_infra(dest: Path) -> Path:
    """A fresh copy of infra/terraform, so init/plan/apply leave no .terraform/, lock or state files in the repo."""
    shutil.copytree(INFRA, dest, ignore=COPY_IGNORE)
    return dest


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.skip("terraform is not on PATH (install Terraform >= 1.11 to run the infra tests)")
    return path


@pytest.fixture(scope="session")
def plugin_dir() -> Path:
    """Root of the offline provider mirror, found from the provider binary (HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/file)
    so that a different mirrored version or platform needs no edit here."""
    found = sorted(MIRROR_SEARCH_ROOT.rglob("terraform-provider-aws*")) if MIRROR_SEARCH_ROOT.is_dir() else []
    if not found:
        pytest.skip(f"no terraform-provider-aws binary under {MIRROR_SEARCH_ROOT}: the offline provider mirror is missing")
    return found[-1].parents[5]


@pytest.fixture(scope="session")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for terraform: no user CLI config, AWS profile or credentials leak in; one plugin cache per
    session so the ~700 MB provider is copied once and symlinked into every working directory."""
    home = tmp_path_factory.mktemp("tf-home")
    (home / "terraformrc").write_text("# empty: isolate the tests from the user's CLI configuration\n")
    (home / "plugin-cache").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update({
        "TF_CLI_CONFIG_FILE": str(home / "terraformrc"),
        "TF_PLUGIN_CACHE_DIR": str(home / "plugin-cache"),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",  # no version check call to checkpoint-api.hashicorp.com
        "AWS_CONFIG_FILE": str(home / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


@pytest.fixture(scope="session")
def tf(terraform_bin: str) -> TerraformRun:
    """Run `terraform -chdir=ROOT ARGS...`; check=True turns a non-zero exit into a failure showing its output."""

    def run(root: Path, env: dict[str, str], *args: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([terraform_bin, f"-chdir={root}", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            pytest.fail(f"terraform {' '.join(args)} in {root} exited {proc.returncode}:\n"
                        f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    return run


@pytest.fixture(scope="session")
def infra_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_infra(tmp_path_factory.mktemp("infra") / "terraform")


@pytest.fixture(scope="session")
def init_root(tf: TerraformRun, plugin_dir: Path, tf_env: dict[str, str], infra_copy: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, dict[str, str]]]:
    """`terraform init` of a root module of the copy (once per session), offline from the mirror only."""
    done: dict[str, tuple[Path, dict[str, str]]] = {}

    def init(rel: str) -> tuple[Path, dict[str, str]]:
        if rel not in done:
            root = infra_copy / rel
            env = dict(tf_env, TF_DATA_DIR=str(tmp_path_factory.mktemp("tf-data")))
            tf(root, env, "init", "-backend=false", f"-plugin-dir={plugin_dir}", "-input=false", "-no-color")
            done[rel] = (root, env)
        return done[rel]

    return init


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real AWS-compatible HTTP server (moto: S3, IAM, KMS, STS, ECR) on loopback; state lives in memory."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is needed for the apply tests")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def aws_env(moto_endpoint: str) -> dict[str, str]:
    """Standard AWS variables pointing the provider (and boto3) at moto: one endpoint for every service, fake keys."""
    return {"AWS_ENDPOINT_URL": moto_endpoint, **FAKE_CREDENTIALS}
