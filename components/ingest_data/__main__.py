"""`python -m components.ingest_data --source URI --out DIR`: the one entry point for DVC, kfp and containers.
DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.ingest_data.config import IngestConfig
from components.ingest_data.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    # Not an input_location: ingest stages the source itself (zip too) to keep each file's origin URI.
    parser.add_argument(
        "--source", required=True, help="dataset: a folder, a .zip file, file:///abs/dir or s3://bucket/prefix"
    )
    parser.add_argument("--out", type=output_location, required=True, help="output folder for manifest.parquet")
    with local_paths(parser, argv) as args:
        cfg = section(params_from(args), "ingest_data", IngestConfig)
        manifest = run(cfg, args.source, args.out)
    print(
        f"ingest_data: {int((manifest.row_type == 'image').sum())} images, "
        f"{int((manifest.row_type == 'box').sum())} boxes → {args.out}"
    )


if __name__ == "__main__":
    run_main(main)
