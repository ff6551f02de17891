"""The demo model's training batches: the same scenes, in the same order, with or without workers;
flow times that reach the high-noise end."""

import itertools
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from demo_model.codec import fit_pca_codec
from demo_model.config import DemoConfig
from demo_model.text import FIRST_DESIGN, TextConfig, WordTokenizer
from research.evaluation import token_masks
from research.export import export
from research.flux_twin import FluxTwin, float16_megabytes
from research.probe import load
from research.shapes import IMAGE_SIZE, VOCABULARY, WORD_TO_ID, is_centred, make_batch, make_scene
from research.train import (
    DATA_FILE,
    GROUNDING_MAX_TIME,
    OUTLINE_WEIGHT,
    RETRIEVED_COLOURS,
    SHAPE_WINDOW,
    TOKEN_GRID,
    WITHOUT_COLOURS,
    Trainer,
    TrainingMix,
    colour_stated,
    grounding_loss,
    learning_rate,
    named_colours,
    outline_weights,
    retrieval_loss,
    retrieval_targets,
    scene_batches,
    training_caption,
    training_times,
    without_colours,
    word_regions,
)

CENTRED_SCENES = TrainingMix().centred_scenes


def test_worker_processes_give_the_same_batches_in_order_as_the_training_process():
    codec = fit_pca_codec(make_batch(range(64))[0])
    here = list(itertools.islice(scene_batches(codec, first_seed=40, batch=3, centred_share=CENTRED_SCENES), 4))
    ahead = list(itertools.islice(scene_batches(codec, first_seed=40, batch=3, workers=2, centred_share=CENTRED_SCENES), 4))
    for (latents, captions, weights, regions), (latents_ahead, captions_ahead, weights_ahead, regions_ahead) in zip(
            here, ahead, strict=True):
        assert captions == captions_ahead
        torch.testing.assert_close(latents, latents_ahead)
        torch.testing.assert_close(weights, weights_ahead)
        assert torch.equal(regions, regions_ahead)
    # the training scenes mix in centred ones; the third batch (seeds 46-48) holds both kinds
    assert [is_centred(seed, CENTRED_SCENES) for seed in range(46, 49)] == [True, False, False]
    images, captions, scenes = make_batch(range(46, 49), CENTRED_SCENES)
    assert len(scenes[0].objects) == 1
    assert here[2][1] == captions
    torch.testing.assert_close(here[2][0], codec.encode(images))
    torch.testing.assert_close(here[2][2], outline_weights(scenes))
    assert torch.equal(here[2][3], word_regions(scenes, TOKEN_GRID))


def test_outline_weights_mark_the_cells_an_outline_crosses_and_their_neighbours_only():
    scene = make_scene(3)
    weights = outline_weights([scene])[0, 0]
    cells = IMAGE_SIZE // 8
    assert weights.shape == (cells, cells)
    covered = np.any([obj.mask for obj in scene.objects], axis=0).reshape(cells, 8, cells, 8).mean(axis=(1, 3))
    crossed = torch.from_numpy((covered > 0) & (covered < 1))
    assert crossed.any()
    assert (weights[crossed] == 1 + OUTLINE_WEIGHT).all()
    near = torch.nn.functional.max_pool2d(crossed[None].float(), 3, stride=1, padding=1)[0].bool()
    assert (weights[near] == 1 + OUTLINE_WEIGHT).all() and (weights[~near] == 1).all()
    assert (~near).sum() > near.sum()  # most of the image: plain background and object insides


def test_a_new_run_from_shipped_weights_ramps_its_learning_rate_and_resumes_from_its_own_seeds(tmp_path):
    shipped = Path(__file__).parents[2] / "demo_model" / "weights" / "demo_model.safetensors"
    trainer = Trainer(tmp_path, seed=0, batch=2, lr=1e-4, init_from=shipped, first_seed=7_000, warmup_steps=4)
    batches = trainer.batches()
    learning_rates = []
    for _ in range(5):
        trainer.train_step(*next(batches))
        learning_rates.append(trainer.optimiser.param_groups[0]["lr"])
    assert learning_rates == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4])
    assert trainer.next_seed == 7_010
    trainer.save()
    resumed = Trainer(tmp_path, seed=0, batch=2, lr=1e-4, init_from=shipped, first_seed=0)
    assert (resumed.step, resumed.next_seed, resumed.first_seed) == (5, 7_010, 7_000)
    for name, value in trainer.ema.items():
        torch.testing.assert_close(resumed.ema[name], value)


def test_a_new_run_takes_the_current_text_design_and_its_export_says_so(tmp_path):
    shipped = Path(__file__).parents[2] / "demo_model" / "weights" / "demo_model.safetensors"
    shipped_text = {k: v for k, v in load_file(shipped).items() if k.startswith("text.")}
    trainer = Trainer(tmp_path / "new", seed=0, batch=2, lr=1e-4, init_from=shipped)
    assert trainer.text.config == TextConfig() != FIRST_DESIGN
    # the word and position embeddings carry over from the first design's weights
    torch.testing.assert_close(trainer.text.token_embedding.weight, shipped_text["text.token_embedding.weight"].float())
    trainer.save()
    _, text, _ = load(export(tmp_path / "new", tmp_path / "new.safetensors"))
    assert text.config == TextConfig()
    torch.testing.assert_close(text.token_embedding.weight, trainer.ema["text.token_embedding.weight"])


def test_the_export_takes_the_ema_or_with_raw_the_latest_weights(tmp_path):
    shipped = Path(__file__).parents[2] / "demo_model" / "weights" / "demo_model.safetensors"
    trainer = Trainer(tmp_path, seed=0, batch=2, lr=1e-3, init_from=shipped, first_seed=7_000)
    batches = trainer.batches()
    for _ in range(3):
        trainer.train_step(*next(batches))
    trainer.save()
    name = "model.final_layer.linear.weight"
    latest = trainer.weights()[name]
    assert not torch.allclose(trainer.ema[name], latest)  # else the test could not tell them apart
    torch.testing.assert_close(load_file(export(tmp_path, tmp_path / "ema.safetensors"))[name], trainer.ema[name])
    torch.testing.assert_close(load_file(export(tmp_path, tmp_path / "raw.safetensors", raw=True))[name], latest)
    assert load_file(export(tmp_path, tmp_path / "half.safetensors", half=True, raw=True))[name].dtype == torch.float16


def test_a_run_begun_before_the_text_design_was_recorded_resumes_with_the_first_design(tmp_path, monkeypatch):
    with monkeypatch.context() as old_code:  # the trainer as it was: first design, nothing recorded
        old_code.setattr("research.train.TextConfig", lambda: FIRST_DESIGN)
        Trainer(tmp_path, seed=0, batch=2, lr=1e-4).save()
    (tmp_path / "text.json").unlink()
    resumed = Trainer(tmp_path, seed=0, batch=2, lr=1e-4)
    assert resumed.text.config == FIRST_DESIGN
    assert any(name.startswith("encoder.") for name in resumed.text.state_dict())


GPU_TRAINING_SCRIPT = Path(__file__).parents[2] / "scripts" / "train_demo_on_gpu.sh"


def test_the_gpu_training_script_names_missing_weights_before_training(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "START": str(tmp_path / "absent.safetensors"), "OUT": str(tmp_path)}
    missing_weights = subprocess.run(["bash", str(GPU_TRAINING_SCRIPT)], env=env, capture_output=True, text=True)
    assert missing_weights.returncode == 2
    assert "no starting weights at" in missing_weights.stderr and "absent.safetensors" in missing_weights.stderr


TINY_DESIGN = DemoConfig(hidden_size=32, num_heads=2, depth=2, depth_single_blocks=1)


def test_a_design_reads_from_name_value_pairs_and_a_bad_one_is_refused_by_name():
    assert DemoConfig.from_design("") == DemoConfig()
    assert DemoConfig.from_design(" hidden_size=160, num_heads=5 ") == DemoConfig(hidden_size=160, num_heads=5)
    assert DemoConfig.from_design("mlp_ratio=2.5,depth=8").mlp_ratio == 2.5
    assert DemoConfig.from_design("num_heads=8").axes_dim == [4, 6, 6]  # heads of 16 channels
    for spec, named in (("heads=8", "cannot read 'heads=8'"), ("num_heads", "cannot read 'num_heads'"),
                        ("theta=5", "cannot read 'theta=5'"), ("depth=six", "depth must be a whole number"),
                        ("num_heads=3", "does not split into 3 heads"), ("num_heads=32", "heads of 4 channels"),
                        ("depth=0", "depth must be positive"), ("depth_single_blocks=-1", "0 or more")):
        with pytest.raises(ValueError, match=named):
            DemoConfig.from_design(spec)


def test_a_wider_design_costs_what_its_parameters_weigh_as_shipped():
    shipped = Path(__file__).parents[2] / "demo_model" / "weights" / "demo_model.safetensors"
    transformer = sum(v.numel() for k, v in load_file(shipped).items() if k.startswith("model.")) * 2 / 1e6
    assert float16_megabytes(DemoConfig()) == pytest.approx(transformer)
    # width costs its square: 160 channels instead of 128 cost (160 / 128)^2 as much, less the fixed in/out layers
    assert float16_megabytes(DemoConfig(hidden_size=160, num_heads=5)) == pytest.approx(1.5625 * transformer, rel=0.02)


def test_a_new_run_trains_its_chosen_design_keeps_it_when_resumed_and_exports_it(tmp_path):
    trainer = Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3, design=TINY_DESIGN)
    assert trainer.config == TINY_DESIGN and trainer.model.config == TINY_DESIGN
    trainer.train_step(*next(trainer.batches()))
    trainer.save()
    assert Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3).config == TINY_DESIGN
    with pytest.raises(ValueError, match="keeps its design"):
        Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3, design=DemoConfig())
    model, _, _ = load(export(tmp_path / "run", tmp_path / "tiny.safetensors"))
    assert model.config == TINY_DESIGN
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, trainer.ema[f"model.{name}"])


def test_weights_of_another_design_are_refused_as_a_start_naming_both_designs(tmp_path):
    shipped = Path(__file__).parents[2] / "demo_model" / "weights" / "demo_model.safetensors"
    with pytest.raises(ValueError, match=r"another design \(hidden_size=128,num_heads=4.*\(hidden_size=32,num_heads=2.*"
                                         r"from scratch"):
        Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3, init_from=shipped, design=TINY_DESIGN)


def test_the_gpu_training_script_trains_a_new_design_from_scratch(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "START": "scratch", "DEVICE": "cpu", "MINUTES": "0.01",
           "WORKERS": "1", "BATCH": "2", "WARMUP": "0", "PYTHON": sys.executable,
           "DESIGN": "hidden_size=32,num_heads=2,depth=2,depth_single_blocks=1"}
    done = subprocess.run(["bash", str(GPU_TRAINING_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "design: hidden_size=32,num_heads=2,depth=2,depth_single_blocks=1" in done.stdout
    model, _, _ = load(tmp_path / "demo_model.safetensors")
    assert model.config == TINY_DESIGN
    env["DESIGN"] = "num_heads=3"
    refused = subprocess.run(["bash", str(GPU_TRAINING_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    # the training output, errors too, goes through tee to stdout and train.log
    assert refused.returncode != 0 and "--design: hidden_size 128 does not split into 3 heads" in refused.stdout


def test_flow_times_train_the_high_noise_end_where_layout_and_shape_are_decided():
    torch.manual_seed(0)
    times = training_times(40_000)
    assert times.shape == (40_000,) and 0.0 < times.min() and times.max() < 1.0
    # Logit-normal alone puts 1.4 % of times above 0.9 and 0.16 % above 0.95.
    assert (times > 0.9).float().mean() > 0.05
    assert (times > 0.95).float().mean() > 0.02
    # ... and the middle, where most of the detail is learnt, keeps most of the steps.
    assert 0.5 < ((times > 0.2) & (times < 0.8)).float().mean() < 0.8


def test_flow_times_in_the_shape_window_come_on_top_and_runs_without_it_draw_as_before():
    low, high = SHAPE_WINDOW
    torch.manual_seed(0)
    plain = training_times(40_000)
    torch.manual_seed(0)
    windowed = training_times(40_000, shape_window=0.3)
    in_window = ((windowed > low) & (windowed < high)).float().mean().item()
    plain_in_window = ((plain > low) & (plain < high)).float().mean().item()
    assert in_window == pytest.approx(0.7 * plain_in_window + 0.3, abs=0.01)
    assert 0.0 < windowed.min() and windowed.max() < 1.0
    # without the window the times take the same three draws as before it existed, so a run
    # recorded without it resumes on the same random stream
    torch.manual_seed(0)
    training_times(1_000, shape_window=0.0)
    after = torch.rand(1)
    torch.manual_seed(0)
    torch.randn(1_000), torch.rand(1_000), torch.rand(1_000)
    assert torch.equal(after, torch.rand(1))


def test_a_new_run_records_its_mix_and_an_older_run_resumes_with_what_it_recorded(tmp_path):
    new = Trainer(tmp_path / "new", seed=0, batch=2, lr=1e-4)
    assert new.mix == TrainingMix() and new.mix.centred_scenes > 0 and new.mix.shape_window_times > 0
    new.save()
    (tmp_path / "new" / DATA_FILE).write_text('{"centred_scenes": 0.5}')  # a run from before the time window
    assert Trainer(tmp_path / "new", seed=0, batch=2, lr=1e-4).mix == TrainingMix(0.5, 0.0)
    (tmp_path / "new" / DATA_FILE).unlink()  # a run begun before the mix was recorded
    old = Trainer(tmp_path / "new", seed=0, batch=2, lr=1e-4)
    assert old.mix == TrainingMix(0.0, 0.0)
    old.next_seed = 46  # a seed the current share makes centred
    _, captions, _, _ = next(old.batches())
    assert captions == make_batch(range(46, 48))[1] != make_batch(range(46, 48), CENTRED_SCENES)[1]
    assert old.mix.without_colours == WITHOUT_COLOURS  # what runs trained with before it was recorded
    for wrong in ('{"centred": 0.5}', '{"centred_scenes": 2.0}', '{"centred_scenes": "0.5"}', "[0.5]",
                  '{"grounding_side": "pixels"}', '{"grounding_side": 0.5}', '{"grounded_through": 0}',
                  '{"grounded_through": 1.0}', '{"grounded_through": true}'):
        (tmp_path / "new" / DATA_FILE).write_text(wrong)
        with pytest.raises(ValueError, match="data.json: expected"):
            Trainer(tmp_path / "new", seed=0, batch=2, lr=1e-4)


def test_a_new_run_takes_a_chosen_colourless_share_and_a_resumed_run_refuses_another(tmp_path):
    chosen = TrainingMix(without_colours=0.6)
    trainer = Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-4, mix=chosen)
    assert trainer.mix == chosen
    trainer.save()
    assert Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-4).mix == chosen  # resumes with what it recorded
    with pytest.raises(ValueError, match="keeps its mix"):
        Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-4, mix=TrainingMix())


def test_the_colourless_share_sets_how_many_captions_lose_their_colours():
    caption = "a red circle and a blue square on a gray background"
    colourless = without_colours(caption)

    def share(colourless_share):
        rng = random.Random(0)
        return sum(training_caption(caption, rng, colourless_share) == colourless for _ in range(4000)) / 4000

    assert share(0.0) == 0.0
    assert abs(share(0.35) - 0.35) < 0.03 and abs(share(0.6) - 0.6) < 0.03


def test_a_run_draws_its_share_of_same_colour_scenes_in_every_batch_path(tmp_path):
    trainer = Trainer(tmp_path / "run", seed=0, batch=8, lr=1e-4, mix=TrainingMix(same_colour_objects=1.0))
    _, captions, _, _ = next(trainer.batches())
    _, ahead, _, _ = next(trainer.batches(workers=2))
    expected = make_batch(range(8), CENTRED_SCENES, same_colour_share=1.0)[1]
    assert captions == ahead == expected != make_batch(range(8), CENTRED_SCENES)[1]


def _train_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    import sys
    return subprocess.run([sys.executable, "-m", "research.train", *args], cwd=cwd, capture_output=True, text=True)


def test_the_training_command_refuses_mix_shares_out_of_range_naming_the_option(tmp_path):
    repo = Path(__file__).parents[2]
    for option, value, says in (("--without-colours", "0.9", "--without-colours must be in 0..0.65"),
                                ("--same-colour-objects", "1.5", "--same-colour-objects must be in 0..1"),
                                ("--grounding", "-0.1", "--grounding must be in 0..1"),
                                ("--retrieval", "2", "--retrieval must be in 0..1"),
                                ("--retrieval-stated", "-1", "--retrieval-stated must be in 0..1")):
        refused = _train_cli("--out", str(tmp_path / "run"), option, value, cwd=repo)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
    assert not (tmp_path / "run").exists()


def test_the_learning_rate_ramps_up_then_falls_along_a_half_cosine_to_zero_at_the_runs_end():
    assert [learning_rate(step, 1.0, warmup_steps=2) for step in range(3)] == [0.5, 1.0, 1.0]
    decayed = [learning_rate(step, 1.0, decay_steps=4) for step in range(6)]
    assert decayed == pytest.approx([1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0], abs=1e-4)
    assert learning_rate(1, 2.0, warmup_steps=4, decay_steps=4) == pytest.approx(2.0 * 0.5 * 0.8536, abs=1e-4)


def test_a_decaying_run_keeps_its_schedule_when_resumed_and_refuses_another(tmp_path):
    trainer = Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3, decay_steps=4)
    batches = trainer.batches()
    trainer.train_step(*next(batches))
    trainer.train_step(*next(batches))
    assert trainer.optimiser.param_groups[0]["lr"] == pytest.approx(learning_rate(1, 1e-3, decay_steps=4))
    trainer.save()
    resumed = Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3)
    assert resumed.decay_steps == 4
    resumed.train_step(*resumed.batches().__next__())
    assert resumed.optimiser.param_groups[0]["lr"] == pytest.approx(learning_rate(2, 1e-3, decay_steps=4))
    with pytest.raises(ValueError, match="decay_steps 4"):
        Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-3, decay_steps=8)


def test_a_decaying_run_ends_where_its_learning_rate_reaches_zero(tmp_path):
    repo = Path(__file__).parents[2]
    run = _train_cli("--out", str(tmp_path / "run"), "--batch", "2", "--minutes", "5", "--decay-steps", "3",
                     cwd=repo)
    assert run.returncode == 0, run.stderr
    assert "stopping: the learning rate has decayed to 0 at step 3" in run.stdout
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 3
    refused = _train_cli("--out", str(tmp_path / "other"), "--decay-steps", "10", "--warmup-steps", "10", cwd=repo)
    assert refused.returncode != 0 and "--decay-steps must be more than --warmup-steps" in refused.stderr


def test_training_stops_before_a_batch_would_reach_the_held_out_seeds(tmp_path):
    from research.shapes import HELD_OUT_SEED_OFFSET

    repo = Path(__file__).parents[2]
    run = _train_cli("--out", str(tmp_path / "run"), "--batch", "8", "--minutes", "5",
                     "--first-seed", str(HELD_OUT_SEED_OFFSET - 12), cwd=repo)
    assert run.returncode == 0, run.stderr
    assert "stopping: the next batch would reach the held-out seeds" in run.stdout
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["next_seed"] == HELD_OUT_SEED_OFFSET - 4  # one batch of 8 fitted below them, the next did not


def test_word_regions_give_each_shape_colour_and_background_word_the_tokens_it_names():
    scenes = [make_scene(seed) for seed in range(3)]
    two = next(scene for scene in scenes if len(scene.objects) == 2)
    regions = word_regions([two], TOKEN_GRID)[0]
    assert TOKEN_GRID == (IMAGE_SIZE // 16, IMAGE_SIZE // 16)
    assert regions.shape == (len(WORD_TO_ID), TOKEN_GRID[0] * TOKEN_GRID[1])
    for obj in two.objects:
        expected = torch.from_numpy(token_masks(obj.mask, TOKEN_GRID))
        assert expected.any()
        assert torch.equal(regions[WORD_TO_ID[obj.shape]], expected)
        assert torch.equal(regions[WORD_TO_ID[obj.colour]], expected)
    background = torch.from_numpy(token_masks(two.masks["background"], TOKEN_GRID))
    assert torch.equal(regions[WORD_TO_ID["background"]], background)
    assert torch.equal(regions[WORD_TO_ID[two.background]], background)
    named = {obj.shape for obj in two.objects} | {obj.colour for obj in two.objects} | {"background", two.background}
    assert not regions[[index for word, index in WORD_TO_ID.items() if word not in named]].any()  # "a", "and", ...


def test_the_grounding_loss_is_the_squared_share_of_a_words_attention_outside_its_region():
    targets = torch.zeros(1, 3, 4, dtype=torch.bool)
    targets[0, 0, :2] = True  # word 0 names tokens 0-1; word 1 names token 3; word 2 names nothing
    targets[0, 1, 3] = True
    looks = torch.tensor([[[[0.3, 0.3, 0.2, 0.0], [0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.5, 0.5]]]])  # [1 block, 1, 3, 4]
    # word 0: 0.6 of its 0.8 on the image inside (1 - 0.75)^2; word 1: (1 - 0.25)^2; word 2 unscored
    expected = ((1 - 0.75) ** 2 + (1 - 0.25) ** 2) / 2
    assert grounding_loss(looks, targets, torch.tensor([0.5])).item() == pytest.approx(expected)
    assert grounding_loss(looks, targets, torch.tensor([GROUNDING_MAX_TIME])).item() == 0.0
    inside = torch.tensor([[[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.7], [0.2, 0.2, 0.2, 0.2]]]])
    assert grounding_loss(inside, targets, torch.tensor([0.5])).item() == 0.0


def test_the_twins_word_maps_are_its_own_attention_and_leave_its_output_alone():
    torch.manual_seed(0)
    model = FluxTwin(DemoConfig())
    for name, parameter in model.named_parameters():
        torch.nn.init.normal_(parameter, std=0.05)
        if name.endswith("norm.scale"):  # q/k norms: sharp attention, so that its two directions differ
            torch.nn.init.constant_(parameter, 4.0)
    x, t = torch.randn(2, 16, 24, 24), torch.tensor([0.3, 0.8])
    context, pooled = torch.randn(2, 16, 64), torch.zeros(2, 64)
    plain = model(x, t, context, pooled)
    # the same probabilities as the block's own attention: replace it by an explicit softmax that keeps them
    import research.flux_twin as twin
    kept = []

    def explicit(q, k, v, pe):
        q, k = twin.apply_rope(q, pe), twin.apply_rope(k, pe)
        probs = torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)
        kept.append(probs.mean(1))
        return (probs @ v).transpose(1, 2).flatten(2)

    original = twin.attention
    twin.attention = explicit
    try:
        torch.testing.assert_close(model(x, t, context, pooled), plain, atol=1e-5, rtol=1e-4)
    finally:
        twin.attention = original
    kept = torch.stack(kept[:6])  # the double blocks: [6, B, 16 + 144, 16 + 144]
    for side, expected in (("text", kept[..., :16, 16:]), ("image", kept[..., 16:, :16].transpose(-1, -2))):
        velocity, maps = model(x, t, context, pooled, word_maps_side=side)
        torch.testing.assert_close(velocity, plain)
        assert maps.shape == (6, 2, 16, 144)
        torch.testing.assert_close(maps, expected, atol=1e-6, rtol=1e-5)
    assert (kept[..., :16, 16:] - kept[..., 16:, :16].transpose(-1, -2)).abs().mean() > 0.1 * kept[..., :16, 16:].mean()
    # the text states after the double blocks: what the single blocks read beside the image
    velocity, maps, states = model(x, t, context, pooled, word_maps_side="text", text_states=True)
    torch.testing.assert_close(velocity, plain)
    entering = []  # what the first single block receives: the text tokens, then the image tokens
    model.single_blocks[0].register_forward_pre_hook(lambda module, args: entering.append(args[0][:, :16]))
    model(x, t, context, pooled)
    torch.testing.assert_close(states, entering[0])


def _first_and_last_loss_on_one_batch(trainer: Trainer, loss: str, steps: int = 12) -> tuple[float, float]:
    """Train `steps` times on the run's first batch; the auxiliary `loss` (last_<loss>) after the first and last step."""
    batch = next(trainer.batches())
    trainer.next_seed = 0
    values = []
    for _ in range(steps):
        trainer.train_step(*batch)
        values.append(getattr(trainer, f"last_{loss}"))
    return values[0], values[-1]


@pytest.mark.parametrize("side", ["text", "image"])
def test_a_grounded_run_trains_its_words_attention_onto_what_they_name(tmp_path, side):
    torch.manual_seed(0)
    trainer = Trainer(tmp_path / "run", seed=0, batch=8, lr=3e-3, mix=TrainingMix(grounding=1.0, grounding_side=side))
    assert TrainingMix.of_run(tmp_path / "run") == TrainingMix(grounding=1.0, grounding_side=side)
    first, last = _first_and_last_loss_on_one_batch(trainer, "grounding")  # the same batch again: it must fall
    assert 0.0 < last < 0.7 * first
    plain = Trainer(tmp_path / "plain", seed=0, batch=8, lr=3e-3)
    plain.train_step(*next(plain.batches()))
    assert plain.last_grounding == 0.0


def test_a_run_grounded_through_a_block_grounds_only_the_blocks_up_to_it(tmp_path, monkeypatch):
    import research.train as train

    read = []
    monkeypatch.setattr(train, "grounding_loss", lambda maps, targets, t: read.append(maps.shape[0]) or maps.sum() * 0)
    for through, blocks in ((None, DemoConfig().depth - 1), (1, 1), (3, 3)):
        mix = TrainingMix(grounding=1.0, grounded_through=through)
        trainer = Trainer(tmp_path / f"through{through}", seed=0, batch=2, lr=1e-4, mix=mix)
        assert TrainingMix.of_run(tmp_path / f"through{through}") == mix
        trainer.train_step(*next(trainer.batches()))
        assert read.pop() == blocks, through
    assert TrainingMix.of_run(tmp_path / "elsewhere").grounded_through is None  # runs from before the field
    depth = DemoConfig().depth
    with pytest.raises(ValueError, match=f"ground through at most {depth - 1}"):
        Trainer(tmp_path / "too_deep", seed=0, batch=2, lr=1e-4, mix=TrainingMix(grounding=1.0, grounded_through=depth))


def test_retrieval_targets_give_each_shape_word_and_background_the_colour_it_names_in_the_scene():
    caption = "a red circle and a blue square on a gray background"
    assert named_colours(caption) == {"circle": RETRIEVED_COLOURS.index("red"), "square": RETRIEVED_COLOURS.index("blue"),
                                      "background": RETRIEVED_COLOURS.index("gray")}
    tokenizer = WordTokenizer(VOCABULARY)
    ids = torch.tensor([tokenizer.ids("a square and a circle on a gray background"), tokenizer.ids("red circle"),
                        tokenizer.ids("")])
    targets = retrieval_targets([caption, caption, caption], ids)
    blue, red, gray = (RETRIEVED_COLOURS.index(name) for name in ("blue", "red", "gray"))
    assert targets[0, :9].tolist() == [-1, blue, -1, -1, red, -1, -1, -1, gray]
    assert targets[1, :2].tolist() == [-1, red]  # a colour word names no object to find: it is the answer
    assert (targets[0, 9:] == -1).all() and (targets[2] == -1).all()


def test_the_retrieval_loss_scores_only_the_words_that_name_something():
    logits = torch.tensor([[[4.0, 0.0], [0.0, 4.0], [9.0, -9.0]]])
    targets = torch.tensor([[0, 0, -1]])
    expected = (torch.nn.functional.cross_entropy(logits[0, :2], targets[0, :2])).item()
    assert retrieval_loss(logits, targets).item() == pytest.approx(expected)
    assert retrieval_loss(logits, torch.full((1, 3), -1)).item() == 0.0


def test_colour_stated_marks_the_words_whose_colour_the_training_caption_names():
    caption = "a red circle and a blue square on a gray background"
    tokenizer = WordTokenizer(VOCABULARY)
    training = ["a red circle and a blue square on a gray background", "a circle and a square on a gray background",
                "red circle", "square"]
    ids = torch.tensor([tokenizer.ids(text) for text in training])
    stated = colour_stated(ids, retrieval_targets([caption] * 4, ids))
    assert stated[0, :12].tolist() == [False, False, True, False, False, False, True, False, False, False, True, False]
    assert stated[1, :9].tolist() == [False] * 8 + [True]  # only the background's gray is named
    assert stated[2, :2].tolist() == [False, True] and not stated[3].any()


def test_the_retrieval_loss_weighs_each_scored_word_and_scores_nothing_where_every_weight_is_zero():
    logits = torch.tensor([[[4.0, 0.0], [0.0, 4.0], [9.0, -9.0]]], requires_grad=True)
    targets = torch.tensor([[0, 0, -1]])
    second_only = retrieval_loss(logits, targets, torch.tensor([[0.0, 1.0, 1.0]]))
    assert second_only.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[0, 1:2], targets[0, 1:2]).item())
    second_only.backward()
    assert logits.grad[0, 0].abs().sum() == 0  # a weight-0 word gets no gradient
    assert retrieval_loss(logits, targets, torch.tensor([[0.0, 0.0, 1.0]])).item() == 0.0


def test_a_run_with_retrieval_stated_0_scores_no_word_whose_colour_its_caption_names(tmp_path, monkeypatch):
    # Every training caption is the full one: every scored word's colour is named in it.
    monkeypatch.setattr("research.train.training_caption", lambda caption, rng, share: caption)
    losses = {}
    for stated in (0.0, 1.0):
        torch.manual_seed(0)
        trainer = Trainer(tmp_path / f"run{stated}", seed=0, batch=4, lr=1e-4,
                          mix=TrainingMix(retrieval=1.0, retrieval_stated=stated))
        losses[stated], _ = _first_and_last_loss_on_one_batch(trainer, "retrieval", steps=1)
    assert losses[0.0] == 0.0 and losses[1.0] > 0.1


def test_a_retrieval_run_trains_the_words_states_to_tell_their_objects_colours_and_keeps_its_head(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(tmp_path / "run", seed=0, batch=8, lr=3e-3, mix=TrainingMix(retrieval=1.0))
    first, last = _first_and_last_loss_on_one_batch(trainer, "retrieval")  # the same batch again: it must fall
    assert 0.0 < last < 0.7 * first
    trainer.save()
    resumed = Trainer(tmp_path / "run", seed=0, batch=8, lr=3e-3)
    for name, value in trainer.retrieval_head.state_dict().items():
        torch.testing.assert_close(resumed.retrieval_head.state_dict()[name], value)
    assert not any(name.startswith("retrieval") for name in trainer.weights())  # never exported
