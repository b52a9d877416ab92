"""Argument parsing shared by every stage's `__main__`: params source plus the stage's paths."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.common.errors import GateFailed, LesionOpsError
from components.common.params import load_params


def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser that already knows where the params come from (YAML file or JSON string)."""
    parser = argparse.ArgumentParser(description=description)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--params", type=Path, help="params.yaml to read (default: ./params.yaml)")
    src.add_argument("--params-json", help="the whole params document as JSON (used by Kubeflow)")
    return parser


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    if args.params_json is not None:
        return load_params(json_text=args.params_json)
    return load_params(path=args.params or Path("params.yaml"))


def run_main(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> None:
    """Run a stage and turn our typed errors into one clear line and a distinct exit code."""
    try:
        main(argv)
    except GateFailed as exc:
        print(f"GATE FAILED: {exc}", file=sys.stderr)
        raise SystemExit(3) from None
    except LesionOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
