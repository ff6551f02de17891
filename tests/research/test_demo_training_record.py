"""The shipped demo weights' training record: it belongs to the shipped file and its stages add up."""

import hashlib
import json
from dataclasses import fields
from pathlib import Path

from research.shapes import HELD_OUT_SEED_OFFSET, IMAGE_SIZE
from research.train import TrainingMix

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "research" / "training_record"
LOG_EVERY_STEPS = 50


def lineage() -> dict:
    return json.loads((RECORD / "lineage.json").read_text())


def test_the_record_is_of_the_shipped_weights():
    record = lineage()
    assert hashlib.sha256((ROOT / record["weights"]).read_bytes()).hexdigest() == record["sha256"], (
        "the shipped weights changed: update research/training_record (lineage.json and the new stage's loss log)")


def test_each_stage_adds_up_and_its_loss_log_covers_it():
    stages = lineage()["stages"]
    assert [stage["started_from"] for stage in stages[1:]] == [stage["run"] for stage in stages[:-1]]
    mix_fields = {field.name for field in fields(TrainingMix)}
    for stage in stages:
        assert stage["steps"] * stage["batch"] == stage["scenes"], stage["run"]
        assert set(stage["mix"]) <= mix_fields, stage["run"]
        entries = [json.loads(line) for line in (RECORD / f"{stage['run']}.loss.jsonl").read_text().splitlines()]
        images = [entry["images"] for entry in entries]
        for before, after in zip(entries, entries[1:], strict=False):
            if after["images"] <= before["images"]:
                # only where a resumed process began again from its last checkpoint, a few intervals back
                assert after["minutes"] < before["minutes"], (stage["run"], before, after)
                assert before["images"] - after["images"] < 10 * LOG_EVERY_STEPS * stage["batch"], (stage["run"], after)
        # the last log line is at most one logging interval before or after the exported checkpoint
        assert abs(images[-1] - stage["scenes"]) <= LOG_EVERY_STEPS * stage["batch"], stage["run"]
        assert all(entry["loss"] > 0 for entry in entries)


def test_the_stages_seeds_are_apart_and_below_the_held_out_scenes():
    spans = sorted((stage["first_seed"], stage["first_seed"] + stage["scenes"])
                   for stage in lineage()["stages"] if stage["first_seed"] is not None)
    assert len(spans) >= 3
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start
    assert spans[-1][1] <= HELD_OUT_SEED_OFFSET


def test_the_last_stage_trained_on_scenes_of_the_size_the_bar_measures():
    """The held-out scenes of the semantic test are drawn at IMAGE_SIZE: weights last trained at another
    size would be measured off their training distribution (the README's demo-model section shows
    what the size does to the maps)."""
    stages = lineage()["stages"]
    assert all(isinstance(stage["image_size"], int) and stage["image_size"] % 16 == 0 for stage in stages)
    assert stages[-1]["image_size"] == IMAGE_SIZE, (
        f"the shipped weights last trained on {stages[-1]['image_size']}-pixel scenes, the semantic test's are {IMAGE_SIZE}")
