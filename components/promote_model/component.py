"""Kubeflow interface of promote_model (the pipeline runs it only inside `dsl.If(gate_passed)`)."""

from kfp import dsl

from components.common.kfp_image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote_model(
    model: dsl.Input[dsl.Model],
    evaluation: dsl.Input[dsl.Artifact],
    patches: dsl.Input[dsl.Dataset],
    params_json: str,
    promotion: dsl.Output[dsl.Artifact],
    model_card: dsl.Output[dsl.Markdown],
) -> None:
    """`patches` gives the model card its per-split class counts (crop_report.json); `model_card`
    shows the card in the KFP UI (or why there is none: skipped, already promoted)."""
    from pathlib import Path

    from components.common.kfp_outputs import publish_file
    from components.common.launch import launch

    launch(
        "promote_model",
        [
            "--model",
            model.path,
            "--evaluation",
            evaluation.path,
            "--patches",
            patches.path,
            "--out",
            promotion.path,
            "--params-json",
            params_json,
        ],
    )
    out = Path(promotion.path)
    summary = (out / "promotion.json").read_text(encoding="utf-8") if (out / "promotion.json").is_file() else "{}"
    publish_file(model_card, out / "model_card.md", f"No model card written by this run:\n\n```json\n{summary}\n```\n")
