"""Small file helpers: atomic writes so an interrupted stage never leaves half a report behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def write_json(path: Path, obj: Any) -> Path:
    """Write JSON atomically (temp file + rename), sorted keys for reviewable diffs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    """Write a table atomically; parquet keeps dtypes so the next stage reads what was written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values as None (parquet turns None into NaN in mixed tables).

    Built from `itertuples` on the object-typed frame: `to_dict("records")` boxes every cell again
    and was a third of validation time on 10,000 images.
    """
    clean = frame.astype(object).where(frame.notna(), None)
    columns = [str(c) for c in clean.columns]
    return [dict(zip(columns, row)) for row in clean.itertuples(index=False, name=None)]
