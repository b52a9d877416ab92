"""`python -m components.train_model --patches DIR --out DIR [--resume last.pt]`: train, checkpoint,
log to MLflow. Under `torchrun --nproc_per_node N -m components.train_model …` it trains with DDP.
Every DIR (and the resume checkpoint) may also be an s3:// URI."""

from __future__ import annotations

import dataclasses

from components.common.cli import (
    base_parser,
    input_location,
    input_path,
    local_paths,
    output_location,
    params_from,
    run_main,
)
from components.common.params import section
from components.common.task import load_task
from components.common.tracking import TrackingConfig
from components.train_model.config import TrainConfig
from components.train_model.core import run


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--patches", type=input_location, required=True, help="crop_patches output folder")
    parser.add_argument("--out", type=output_location, required=True, help="output folder (checkpoint, summary)")
    parser.add_argument("--data-version", default="unknown", help="DVC hash of the raw data")
    parser.add_argument(
        "--resume", type=input_location, help="a last.pt to continue from (overrides train_model.resume)"
    )
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        cfg = section(doc, "train_model", TrainConfig)
        resume = args.resume or (input_path(args, cfg.resume) if cfg.resume else None)
        if resume is not None:
            cfg = dataclasses.replace(cfg, resume=str(resume))
        summary = run(
            cfg, load_task(doc), section(doc, "mlflow", TrackingConfig), args.patches, args.out, args.data_version
        )
    if "skipped" in summary:
        print(f"train_model: skipped: {summary['skipped']}")
    elif "run_id" in summary:  # DDP ranks other than 0 train silently
        print(
            f"train_model: run {summary['run_id']} best val macro-F1 {summary['best_val_macro_f1']:.3f} "
            f"at epoch {summary['best_epoch']} ({summary['epochs_run']} epochs), kept epoch "
            f"{summary['kept_epoch']} (val macro-F1 {summary['kept_val_macro_f1']:.3f})"
        )


if __name__ == "__main__":
    run_main(main)
