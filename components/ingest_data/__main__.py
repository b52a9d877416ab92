"""`python -m components.ingest_data --source URI --out DIR`: the one entry point for DVC, kfp and containers."""

from __future__ import annotations

from pathlib import Path

from components.common.cli import base_parser, params_from, run_main
from components.common.params import section
from components.ingest_data.core import IngestConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--source", required=True,
                        help="dataset: a folder, a .zip file, file:///abs/dir or s3://bucket/prefix")
    parser.add_argument("--out", type=Path, required=True, help="output folder for manifest.parquet")
    args = parser.parse_args(argv)
    cfg = section(params_from(args), "ingest_data", IngestConfig)
    manifest = run(cfg, args.source, args.out)
    print(f"ingest_data: {int((manifest.row_type == 'image').sum())} images, "
          f"{int((manifest.row_type == 'box').sum())} boxes → {args.out}")


if __name__ == "__main__":
    run_main(main)
