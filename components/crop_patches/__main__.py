"""`python -m components.crop_patches --accepted DIR --source DIR --out DIR`: build the patch dataset.
Every DIR may also be an s3://bucket/prefix URI."""

from __future__ import annotations

from components.common.cli import base_parser, input_location, local_paths, output_location, params_from, run_main
from components.common.params import section
from components.common.task import load_task
from components.crop_patches.config import CropConfig
from components.crop_patches.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--accepted", type=input_location, required=True, help="folder holding accepted.parquet")
    parser.add_argument("--source", type=input_location, required=True, help="the raw dataset folder")
    parser.add_argument("--out", type=output_location, required=True, help="output folder for patches")
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        patches = run(section(doc, "crop_patches", CropConfig), load_task(doc), args.accepted, args.source, args.out)
    print(f"crop_patches: {len(patches)} patches → {args.out} ({patches.groupby('split').size().to_dict()})")


if __name__ == "__main__":
    run_main(main)
