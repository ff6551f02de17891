"""The semantic benchmark's report of the demo model's results against the thresholds it must meet,
read from its recorded runs (research/semantic*.json)."""

import argparse
import json
import re

from research import semantic


def recorded(name: str) -> dict:
    return json.loads((semantic.MARGIN_OVER_1000_SCENES.parent / name).read_text())


def judged_run() -> argparse.Namespace:
    """The settings the thresholds are judged on: the first held-out scenes, shape words."""
    return argparse.Namespace(images=semantic.SEMANTIC_SCENES, skip_scenes=0, words="shape")


def test_the_recorded_run_meets_every_criterion():
    criteria = semantic.semantic_criteria(recorded("semantic.json"))
    assert len(criteria) == 3 + len(semantic.BROKEN_VARIANTS) + 1  # mIoU twice, margin, each variant, drawing
    assert {name: measured for name, (measured, required) in criteria.items() if measured < required} == {}
    assert criteria["margin over cross-attention"][1] == 0.08


def test_the_report_gives_each_criterion_and_the_margin_over_1000_scenes(capsys):
    semantic.print_criteria(recorded("semantic.json"), judged_run())
    report = capsys.readouterr().out
    assert "MISSED" not in report
    assert re.search(r"margin over cross-attention +0\.096  \(>= 0\.08: met\)", report), report
    assert "broken variant lower: softmax over tokens" in report and "drawing" in report
    assert "over the first 1000 held-out scenes: 0.091 (95 % interval 0.080 to 0.102" in report


def test_a_run_on_other_scenes_says_so_instead_of_judging_it(capsys):
    other_scenes = recorded("semantic_1000_scenes.json")
    semantic.print_criteria(other_scenes, argparse.Namespace(images=1000, skip_scenes=0, words="shape"))
    report = capsys.readouterr().out
    assert "this run is not that" in report and "met" not in report


def test_a_missed_criterion_is_reported_as_missed(capsys):
    results = recorded("semantic.json")
    results["generation"]["shape_accuracy"] = 0.5
    semantic.print_criteria(results, judged_run())
    assert "drawing" in (missed := [line for line in capsys.readouterr().out.splitlines() if "MISSED" in line])[0]
    assert len(missed) == 1
