"""One error path for every command: one line naming the command and the problem, and the error's
exit code (2 input or setting, 3 gate failed, 4 refused) — stage CLIs and `lesionops` alike."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from components.common.cli import run_main
from components.common.errors import ConfigError, DataError, GateFailed, LesionOpsError
from components.promote_model.core import PromotionRefused
from lesionops.cli import app
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("error", "code", "headline"),
    [
        (DataError("data/a.xml", "not XML"), 2, "failed"),
        (ConfigError("task.classes: empty"), 2, "failed"),
        (GateFailed("macro-F1 0.41 < 0.5"), 3, "gate failed"),
        (PromotionRefused("champion moved"), 4, "refused"),
    ],
)
def test_run_main_prints_one_line_and_exits_with_the_errors_code(
    error: LesionOpsError, code: int, headline: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def main(argv: list[str] | None) -> None:
        raise error

    with pytest.raises(SystemExit) as done:
        run_main(main, [], command="evaluate_model")
    assert done.value.code == code
    assert capsys.readouterr().err == f"evaluate_model {headline}: {error}\n"


def test_a_stage_module_names_itself_and_the_file() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "components.validate_annotations",
            "--params",
            str(REPO / "params.yaml"),
            "--manifest",
            "/nonexistent/m",
            "--out",
            "/tmp/x",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("validate_annotations failed: ")


def test_lesionops_commands_share_the_path() -> None:
    runner = CliRunner()
    for args, line in (
        (["champion", "--task", "nope"], "champion failed: --task: no preset 'nope'"),
        (["pipeline", "compile", "--set", "x"], "pipeline compile failed: --set 'x'"),
        (["rollback", "--task", "missing.yaml"], "rollback failed: --task missing.yaml: no such task file"),
    ):
        done = runner.invoke(app, [*args, "--params", str(REPO / "params.yaml")])
        assert done.exit_code == 2, done.output
        assert line in " ".join(done.output.split()), done.output


def test_renamed_commands_keep_their_old_names_for_one_release(tmp_path) -> None:
    done = CliRunner().invoke(
        app, ["data-review", "nope", "nope", "--dataset", str(tmp_path / "data"), "--params", str(REPO / "params.yaml")]
    )
    text = " ".join(done.output.split())
    assert "`lesionops data-review` is now `lesionops data review`" in text
    assert done.exit_code == 2 and "data-review failed:" in text
