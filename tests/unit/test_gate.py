import pytest

from components.evaluate_model.gate import GateConfig, decide

CFG = GateConfig(min_accuracy=0.6, min_macro_f1=0.6, min_class_recall=0.3, max_drop_vs_champion=0.02,
                 min_test_samples=10)


def metrics(acc: float = 0.8, f1: float = 0.8, recalls: tuple = (0.8, 0.7), n: int = 50) -> dict:
    return {"accuracy": acc, "macro_f1": f1, "n": n,
            "per_class": {f"c{i}": {"recall": r, "support": 0 if r is None else 10}
                          for i, r in enumerate(recalls)}}


def failed(decision) -> list[str]:
    return [r.name for r in decision.rules if not r.passed]


def test_first_model_passes_with_no_champion_recorded() -> None:
    d = decide(metrics(), None, CFG)
    assert d.passed
    rule = next(r for r in d.rules if r.name == "non_inferior_to_champion")
    assert rule.passed and "no champion yet" in rule.reason


@pytest.mark.parametrize(("challenger", "expected"), [
    (metrics(acc=0.5), ["min_accuracy"]),
    (metrics(f1=0.5), ["min_macro_f1"]),
    (metrics(recalls=(0.9, 0.1)), ["recall[c1]"]),
    (metrics(recalls=(0.9, None)), ["recall[c1]"]),
    (metrics(n=3), ["min_test_samples"]),
])
def test_each_floor_fails_alone(challenger: dict, expected: list[str]) -> None:
    d = decide(challenger, None, CFG)
    assert not d.passed and failed(d) == expected


@pytest.mark.parametrize(("champion_f1", "passes"), [(0.70, True), (0.81, True), (0.83, False)])
def test_non_inferiority_against_champion(champion_f1: float, passes: bool) -> None:
    d = decide(metrics(f1=0.8), metrics(f1=champion_f1), CFG)
    assert d.passed is passes
    assert d.as_dict()["failed"] == ([] if passes else ["non_inferior_to_champion"])
