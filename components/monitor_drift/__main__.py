"""`python -m components.monitor_drift --out DIR (--current DIR --reference DIR [--source DIR] | --store URL
[--reference DIR])`: drift tests + retrain decision on a folder of images or on the serving store.
Every DIR (and --history) may also be an s3:// URI."""

from __future__ import annotations

from components.common.cli import (
    base_parser,
    input_location,
    local_paths,
    output_file,
    output_location,
    params_from,
    run_main,
)
from components.common.params import section
from components.monitor_drift.config import MonitorConfig
from components.monitor_drift.core import run, run_store


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--reference",
        type=input_location,
        default=None,
        help="evaluate_model's <out>/reference folder, or a crop_patches output folder (its "
        "train split, with --source); store mode without it: the MLflow champion's reference",
    )
    parser.add_argument(
        "--source",
        type=input_location,
        default=None,
        help="raw dataset folder a crop_patches --reference was cropped from",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--current", type=input_location, help="folder of current-window images (recursive)")
    mode.add_argument("--store", help="serving store URL (sqlite:///serving/lesionops.db, postgresql://...)")
    parser.add_argument(
        "--out", type=output_location, required=True, help="output folder (drift.json, reports, decision)"
    )
    parser.add_argument(
        "--history",
        type=output_file,
        default=None,
        help="JSON list of earlier windows' verdicts; read, then this window is appended",
    )
    parser.add_argument(
        "--accepted-feedback",
        type=int,
        default=0,
        help="folder mode: expert-reviewed feedback accepted since the last retrain "
        "(store mode counts it in the store)",
    )
    with local_paths(parser, argv) as args:
        doc = params_from(args)
        cfg = section(doc, "monitor_drift", MonitorConfig)
        if args.store:
            from components.common.tracking import TrackingConfig  # mlflow: only the champion lookup needs it

            result = run_store(
                cfg,
                args.store,
                args.out,
                reference_dir=args.reference,
                tracking=section(doc, "mlflow", TrackingConfig),
                history_file=args.history,
            )
        else:
            if args.reference is None:
                parser.error("--current needs --reference")
            result = run(cfg, args.reference, args.source, args.current, args.out, args.history, args.accepted_feedback)
    drift, decision = result["drift"], result["decision"]
    fired = ", ".join(drift["drifted_checks"]) or "no test fired"
    print(
        f"monitor_drift: {drift['verdict']} ({fired}; {len(drift['drifted_features'])} features drifted) on "
        f"{drift['counts']['usable']} image(s); retrain={'yes' if decision['retrain'] else 'no'} "
        f"alert={'yes' if decision['alert'] else 'no'}: {'; '.join(decision['reasons'])}"
    )


if __name__ == "__main__":
    run_main(main)
