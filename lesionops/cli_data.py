"""`lesionops data …`: the raw dataset's versions — DVC tracking, the S3 remote, the copy Kubeflow pods
read, and the review of a data change between two revisions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lesionops.cli_common import Commands, ParamsOpt, console

data_app = Commands(
    prefix="data",
    help="Dataset versions: DVC track/pull/remote, the S3 copy pods read, data-change review.",
    no_args_is_help=True,
)


@data_app.command("track")
def data_track(
    path: Annotated[Path, typer.Argument(help="dataset folder")] = Path("data"),
    push: Annotated[bool, typer.Option(help="also upload it to the default DVC remote")] = False,
) -> None:
    """Track the raw dataset with DVC (`dvc add`), writing `<path>.dvc`."""
    from lesionops import datavc

    console.print(f"data version (DVC md5): {datavc.track(path)}")
    if push:
        datavc.push(Path(f"{path}.dvc"))
        console.print(f"pushed {path} to the default DVC remote")


@data_app.command("remote")
def data_remote(
    url: Annotated[str, typer.Argument(help="remote URL, e.g. s3://<dvc bucket>/lesionops")],
    name: Annotated[str, typer.Option(help="remote name in .dvc/config")] = "storage",
) -> None:
    """Set the default DVC remote (credentials and endpoint come from the standard AWS env/config)."""
    from lesionops.datavc import set_remote

    set_remote(url, name)
    console.print(f"default DVC remote: {name} → {url}")


@data_app.command("pull")
def data_pull(path: Annotated[Path, typer.Argument(help="DVC-tracked folder")] = Path("data")) -> None:
    """Fetch the dataset version `<path>.dvc` pins from the default DVC remote."""
    from lesionops.datavc import pull

    pull(Path(f"{path}.dvc"))
    console.print(f"pulled {path} ({path}.dvc)")


@data_app.command("upload")
def data_upload(
    folder: Annotated[Path, typer.Argument(help="DVC-tracked dataset folder")],
    uri: Annotated[str, typer.Argument(help="s3://<data bucket>/raw: where cluster pods read it")],
) -> None:
    """Copy the dataset to the S3 prefix Kubeflow runs read (only changed files are uploaded).

    A prefix holding files the folder lacks is refused, not cleaned: the run must train on exactly
    the DVC version it is labelled with, and a mistyped prefix must not cost anyone data.
    """
    from pipelines.datasource import mirror_to_s3

    done = mirror_to_s3(folder, uri)
    console.print(f"{folder} → {uri}: {done['uploaded']} uploaded, {done['unchanged']} unchanged")


@data_app.command("review")
def data_review(
    rev_a: Annotated[str, typer.Argument(help="base git revision (or WORKTREE: the uncommitted folder)")],
    rev_b: Annotated[str, typer.Argument(help="revision to review (or WORKTREE)")],
    dataset: Annotated[Path, typer.Option(help="DVC-tracked folder (its .dvc file is <dataset>.dvc)")] = Path("data"),
    params: ParamsOpt = Path("params.yaml"),
    out: Annotated[Path, typer.Option(help="Markdown report (a .json twin is written next to it)")] = Path("review.md"),
    work_dir: Annotated[Optional[Path], typer.Option(help="where versions are rebuilt (default: a temp dir)")] = None,
) -> None:
    """Review a data change for a PR: images, boxes, classes, patients and findings from REV_A to REV_B."""
    from lesionops.data_review import review

    done = review(rev_a, rev_b, dataset, params, out, work_dir)
    verdict = done.result["verdict"]
    colour = "green" if verdict["ok"] else "yellow"
    console.print(f"[bold {colour}]{verdict['status']}[/]: {'; '.join(verdict['reasons'])}")
    console.print(f"report: {done.markdown}  (JSON: {done.json})")


def renamed(old: str, new: str, command: Callable[..., Any]) -> Callable[..., Any]:
    """The old top-level name, kept for one release: says what it is called now, then runs it."""

    @functools.wraps(command)
    def alias(*args: Any, **kwargs: Any) -> Any:
        console.print(f"[yellow]`lesionops {old}` is now `lesionops {new}`; the old name goes in the next release[/]")
        return command(*args, **kwargs)

    return alias


OLD_NAMES = {
    "data-track": data_track,
    "data-remote": data_remote,
    "data-pull": data_pull,
    "data-upload": data_upload,
    "data-review": data_review,
}
