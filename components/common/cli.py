"""Argument parsing shared by every stage's `__main__`: params source plus the stage's paths.

Path flags are declared with `type=input_location` / `output_location` (or `output_file`): each
takes a local path or an `s3://bucket/key` URI, and `local_paths` turns them into local Paths for
core.py, so no stage has its own copy of the storage logic. Inputs are fetched (an S3 prefix as a
folder with the same layout); outputs are local folders published to S3 only when the stage
succeeded. Local paths pass through unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from components.common import storage
from components.common.errors import LesionOpsError
from components.common.settings import build_settings


class InputLocation(str):
    """An input flag's value (a path or URI) that `local_paths` fetches."""


class OutputLocation(str):
    """An output folder's location that `local_paths` publishes after success."""


class OutputFile(str):
    """A single output file (read if there, then rewritten, e.g. a history) published after success."""


def _typed(kind: type[str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        try:
            storage.parse(text)
        except LesionOpsError as exc:  # argparse reports ArgumentTypeError as a usage error
            raise argparse.ArgumentTypeError(str(exc)) from None
        return kind(text)

    convert.__name__ = "path or s3:// URI"  # what argparse shows in "invalid <name> value"
    return convert


input_location = _typed(InputLocation)
output_location = _typed(OutputLocation)
output_file = _typed(OutputFile)


def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser that already knows where the params come from (YAML file or JSON string)."""
    parser = argparse.ArgumentParser(description=description)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--params", type=Path, help="params.yaml to read (default: ./params.yaml)")
    src.add_argument("--params-json", help="the whole params document as JSON (used by Kubeflow)")
    parser.add_argument(
        "--task", help="a task preset name (tasks/NAME.yaml) or a task file (*.yaml) merged over the params"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting (YAML value) after the task; repeatable",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=storage.DEFAULT_CACHE,
        help="where s3:// inputs and outputs are mirrored locally, reused across runs "
        f"(default: ./{storage.DEFAULT_CACHE})",
    )
    return parser


def _publishes() -> bool:
    """Under torchrun only rank 0 writes outputs, so only rank 0 publishes them."""
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def _output(value: str, cache_dir: Path, is_file: bool) -> Iterator[Path]:
    with storage.local_output(value, cache_dir, is_file=is_file, publish_on_success=_publishes()) as path:
        yield path
    if storage.is_remote(value) and _publishes():
        print(f"published {path} → {value}", file=sys.stderr)


@contextlib.contextmanager
def local_paths(parser: argparse.ArgumentParser, argv: list[str] | None) -> Iterator[argparse.Namespace]:
    """Parse `argv`; inside the block every location flag is a local Path. Leaving the block
    normally publishes the outputs; an exception publishes nothing and propagates."""
    args = parser.parse_args(argv)
    flags = list(vars(args).items())
    for dest, value in flags:  # every input first: a missing one fails before any output is opened
        if isinstance(value, InputLocation):
            setattr(args, dest, storage.local_input(value, args.cache_dir))
    with contextlib.ExitStack() as outputs:
        for dest, value in flags:
            if isinstance(value, OutputLocation | OutputFile):
                setattr(
                    args, dest, outputs.enter_context(_output(value, args.cache_dir, isinstance(value, OutputFile)))
                )
        yield args


def input_path(args: argparse.Namespace, value: str | Path) -> Path:
    """A location that came from params rather than a flag (e.g. train_model.resume), made local."""
    return storage.local_input(value, args.cache_dir)


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every command builds the same way: params (file or JSON), --task, --set."""
    return build_settings(args.params, args.task, args.overrides, json_text=args.params_json)


def error_line(exc: LesionOpsError, command: str) -> str:
    """`<command> failed: <file>: <problem>` (or `gate failed`, `refused`): what every command prints."""
    return f"{command} {exc.headline}: {exc}"


def fail(exc: LesionOpsError, command: str) -> NoReturn:
    """The one error path of every command: one line naming the command and the problem on stderr,
    then the error's exit code (2 bad input or setting, 3 gate failed, 4 refused)."""
    print(error_line(exc, command), file=sys.stderr)
    raise SystemExit(exc.exit_code)


def run_main(
    main: Callable[[list[str] | None], Any], argv: list[str] | None = None, command: str | None = None
) -> None:
    """Run a stage's `main` under the one error path (`python -m components.<stage>`)."""
    try:
        main(argv)
    except LesionOpsError as exc:
        fail(exc, command or _stage_name(main))


def _stage_name(main: Callable[..., Any]) -> str:
    """`components.<stage>.__main__` → `<stage>`, also when run as `python -m` (module `__main__`)."""
    module = getattr(main, "__module__", "") or ""
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else ""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "components" else module or "lesionops"
