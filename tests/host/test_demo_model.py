"""The shipped demo model through ComfyUI's own nodes: loader, CLIP, VAE, sampling, concept maps."""

import importlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_host import run_prompt
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from research import export, probe, shapes, train


@pytest.fixture(scope="module")
def demo(ca):
    loader = importlib.import_module(f"{ca.__name__}.nodes.demo_loader")
    return loader, shapes


def test_shipped_weights_load_on_this_host(demo):
    """One committed weights file for every pinned ComfyUI: each tensor lands, unchanged, on the module
    parameter the running host names for it (q/k RMSNorm `.scale` became `.weight` in 0.33)."""
    loader, _ = demo
    model, _, _ = loader.load_demo_model()
    diffusion_model = model.model.diffusion_model
    shipped = {k[len("model."):]: v for k, v in load_file(str(loader.WEIGHTS)).items() if k.startswith("model.")}
    on_host = diffusion_model.state_dict()
    renamed = loader.host_parameter_names(shipped, diffusion_model)
    assert set(renamed) == set(on_host) and len(renamed) == len(shipped)
    for name, tensor in renamed.items():
        assert torch.equal(on_host[name].cpu(), tensor), name
    norms = [name for name in on_host if name.endswith(("query_norm.scale", "query_norm.weight"))]
    assert norms and all(not torch.all(on_host[name] == 1) for name in norms)  # trained, not a default


def demo_graph(size: int, concepts="circle, square, background"):
    return {
        "1": {"class_type": "ConceptAttentionLoadDemoModel", "inputs": {}},
        "2": {"class_type": "CLIPTextEncode",
              "inputs": {"text": "a red circle and a blue square on a gray background", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "5": {"class_type": "ConceptAttentionSampler",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "seed": 1, "steps": 4, "cfg": 3.0,
                         "sampler_name": "euler", "scheduler": "simple", "positive": ["2", 0], "negative": ["3", 0],
                         "latent_image": ["4", 0], "denoise": 1.0, "concepts": concepts, "layers": "auto",
                         "space": "output", "softmax": True, "token_pooling": "first", "start_step": 0,
                         "end_step": 10000}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "ConceptAttentionSaliencyMap",
              "inputs": {"concept_maps": ["5", 1], "image": ["6", 0], "normalisation": "joint",
                         "overlay_opacity": 0.6, "space": "as_made"}},
        "8": {"class_type": "ConceptAttentionMask",
              "inputs": {"concept_maps": ["5", 1], "concepts": "circle", "method": "argmax", "threshold": 0.5,
                         "grow": 0, "blur": 0.0, "fill_holes": False, "invert": False, "space": "as_made"}},
        "9": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["1", 2]}},
        "10": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["9", 0], "mask": ["8", 0]}},
        "11": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def test_the_demo_graph_runs_through_comfyuis_executor(demo):
    _, shapes = demo
    result = run_prompt(demo_graph(shapes.IMAGE_SIZE))
    assert result["valid"], result
    assert result["success"], result["errors"]
    assert result["outputs"]["7"]["concepts"] == ["circle", "square", "background"]
    # each heatmap named for the frontend's App mode and queue, which label an image by its display_name
    assert [image["display_name"] for image in result["outputs"]["7"]["images"]] == ["circle", "square", "background"]
    assert len(result["outputs"]["8"]["images"]) == 1


def test_the_codec_vae_reconstructs_held_out_scenes(demo):
    loader, shapes = demo
    _, _, vae = loader.load_demo_model()
    scenes = [shapes.make_scene(seed) for seed in shapes.held_out_seeds(8)]
    images = torch.from_numpy(np.stack([s.image for s in scenes]))
    latents = vae.encode(images)
    assert latents.shape == (8, 16, shapes.IMAGE_SIZE // 8, shapes.IMAGE_SIZE // 8)
    decoded = vae.decode(latents)
    mse = torch.mean((decoded.float() - images) ** 2).item()
    assert 10 * np.log10(1 / mse) > 30


def test_concepts_encode_through_the_demo_clip(ca, demo):
    loader, _ = demo
    _, clip, _ = loader.load_demo_model()
    tokens = clip.tokenize("red circle", return_word_ids=True)["demo"][0]
    assert [t[2] for t in tokens[:3]] == [1, 2, 0]
    concepts, _ = ca.nodes.stream.encoding.encode_concepts(clip, ["circle", "square"], "first",
                                                           ca.nodes.families.flux.FluxFamily())
    states = clip.encode_from_tokens(clip.tokenize("circle"))
    assert concepts.shape == (1, 2, states.shape[-1])
    assert torch.allclose(concepts[0, 0], states[0, 0])


def test_missing_weights_say_how_to_get_them(demo, tmp_path):
    loader, _ = demo
    with pytest.raises(FileNotFoundError, match="demo model weights are missing.*research.train"):
        loader.load_demo_model(Path(tmp_path) / "nothing.safetensors")


def test_weights_of_either_text_design_load_with_their_own_encoder(ca, demo, tmp_path):
    loader, shapes = demo
    text = importlib.import_module(f"{ca.__name__}.demo_model.text")
    run = train.Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-4, init_from=loader.WEIGHTS)
    run.save()
    _, clip, _ = loader.load_demo_model(export.export(tmp_path / "run", tmp_path / "second.safetensors"))
    assert clip.cond_stage_model.encoder.config == text.TextConfig()
    states, pooled = clip.encode_from_tokens(clip.tokenize("a red circle"), return_pooled=True)
    assert torch.count_nonzero(pooled) == 0  # nothing reaches the modulation but the timestep
    words = torch.tensor([text.WordTokenizer(shapes.VOCABULARY).ids("a red circle")])
    width = run.config.context_in_dim
    twin_encoder = text.TextEncoder(len(shapes.VOCABULARY), dim=width, config=text.TextConfig())
    twin_encoder.load_state_dict({k[5:]: v for k, v in run.ema.items() if k.startswith("text.")})
    torch.testing.assert_close(states[0], twin_encoder(words)[0][0])

    # a file from before the design was stored: first-design text weights, no "text" metadata
    first_encoder = text.TextEncoder(len(shapes.VOCABULARY), dim=width, config=text.FIRST_DESIGN)
    tensors = {k: v for k, v in load_file(loader.WEIGHTS).items() if not k.startswith("text.")}
    tensors.update({f"text.{k}": v for k, v in first_encoder.state_dict().items()})
    with safe_open(str(loader.WEIGHTS), framework="pt") as shipped:
        metadata = {k: v for k, v in shipped.metadata().items() if k != "text"}
    save_file(tensors, tmp_path / "first.safetensors", metadata=metadata)
    _, first_clip, _ = loader.load_demo_model(tmp_path / "first.safetensors")
    assert first_clip.cond_stage_model.encoder.config == text.FIRST_DESIGN
    first_states, first_pooled = first_clip.encode_from_tokens(first_clip.tokenize("a red circle"), return_pooled=True)
    torch.testing.assert_close(first_states[0], first_encoder(words)[0][0])
    assert first_pooled.abs().sum() > 0


def test_weights_whose_text_design_comes_from_another_version_fail_naming_the_file(demo, tmp_path):
    loader, _ = demo
    tensors = load_file(loader.WEIGHTS)
    with safe_open(str(loader.WEIGHTS), framework="pt") as shipped:
        metadata = {**shipped.metadata(), "text": '{"layers": 0, "pooled_summary": false, "heads": 4}'}
    save_file(tensors, tmp_path / "other_version.safetensors", metadata=metadata)
    with pytest.raises(ValueError, match=r"other_version\.safetensors: the text design .* re-export it"):
        loader.load_demo_model(tmp_path / "other_version.safetensors")


def test_comfyui_samples_the_demo_model_as_its_training_twin_does(ca, demo):
    """The model sees the codec's latents as they were in training: no Flux VAE scale or shift on
    the way in or out (Flux's latent format sets them in __init__, over class attributes). With
    them, KSampler's images differed from the twin's by 0.07 a pixel, and Segment Image fed the
    model latents at 0.36 of their size."""
    import nodes

    loader, shapes = demo
    model, clip, vae = loader.load_demo_model()
    latents = vae.encode(torch.from_numpy(shapes.make_scene(shapes.held_out_seeds(1)[0]).image)[None])
    torch.testing.assert_close(model.model.process_latent_in(latents), latents)
    torch.testing.assert_close(model.model.process_latent_out(latents), latents)

    twin, text, codec = probe.load(loader.WEIGHTS)
    words = probe.WordTokenizer(shapes.VOCABULARY)
    prompt, seed, steps, cfg = "a red circle on a gray background", 3, 4, 3.0

    def encode(caption):
        cond, pooled = clip.encode_from_tokens(clip.tokenize(caption), return_pooled=True)
        return [[cond, {"pooled_output": pooled}]]

    with torch.inference_mode():
        (sampled,) = nodes.common_ksampler(model, seed, steps, cfg, "euler", "simple", encode(prompt), encode(""),
                                           {"samples": torch.zeros(1, 16, 24, 24)})
        x = torch.randn(1, 16, 24, 24, generator=torch.Generator().manual_seed(seed))
        (cond, pooled), (uncond, unpooled) = (text(torch.tensor([words.ids(c)])) for c in (prompt, ""))
        times = torch.linspace(1, 0, steps + 1)
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            v, v_uncond = twin(x, t.expand(1), cond, pooled), twin(x, t.expand(1), uncond, unpooled)
            x = x + (t_next - t) * (v_uncond + cfg * (v - v_uncond))
    torch.testing.assert_close(sampled["samples"].float(), x, atol=2e-3, rtol=0)


def test_concepts_the_demo_model_does_not_know_are_refused_with_the_words_it_knows(ca, demo):
    """Segment Image's and the Sampler's default concepts mean nothing to the demo model: each would read as
    the same <unk> token and give the same map, so they are an error that lists the words it knows."""
    loader, _ = demo
    model, clip, vae = loader.load_demo_model()
    image = torch.from_numpy(shapes.make_scene(shapes.held_out_seeds(1)[0]).image)[None]
    with pytest.raises(ValueError) as refused:
        ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
            model=model, clip=clip, vae=vae, image=image, concepts="dog, grass, sky", layers="auto", space="output",
            softmax=True, token_pooling="first", noise_level=0.5, noise_samples=1, seed=0, caption="")
    message = str(refused.value)
    assert "the concepts 'dog', 'grass', 'sky' are not words" in message
    known = message.split("Use words it knows: ")[1].split(", ")
    assert {"circle", "square", "star", "background", "red", "gray"} <= set(known)
    assert set(known) == set(shapes.VOCABULARY) - {"<pad>", "<unk>"}

    with pytest.raises(ValueError, match=r"the concept 'red dog' \(dog\) is not a word .* circle"):
        ca.nodes.stream.encoding.encode_concepts(clip, ["circle", "red dog"], "first", ca.nodes.families.flux.FluxFamily())

    result = run_prompt(demo_graph(shapes.IMAGE_SIZE, concepts="dog, grass, sky"))  # the Sampler's default
    assert result["valid"] and not result["success"]
    (error,) = result["errors"]
    assert error["node_type"] == "ConceptAttentionSampler"
    assert "the concepts 'dog', 'grass', 'sky' are not words" in error["exception_message"]


def test_an_unknown_prompt_word_is_logged_and_known_ones_are_not(demo, caplog):
    loader, _ = demo
    _, clip, _ = loader.load_demo_model()
    with caplog.at_level(logging.WARNING):
        clip.tokenize("a red circle and a blue square on a gray background")
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        tokens = clip.tokenize("a red dog on a green lawn")
    (record,) = caplog.records
    assert "does not know the words dog, lawn of 'a red dog on a green lawn'" in record.getMessage()
    assert "it knows: a, an, and, on, background" in record.getMessage()
    unknown = shapes.WORD_TO_ID["<unk>"]
    assert [token for token, *_ in tokens["demo"][0][:7]] == [shapes.WORD_TO_ID[w] if w in shapes.WORD_TO_ID else unknown
                                                              for w in "a red dog on a green lawn".split()]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        clip.tokenize(" ".join(["a red circle"] * 6))  # 18 words
    assert "reads the first 16 words" in caplog.text


DEMO_PROMPT = Path(__file__).resolve().parents[2] / "workflows" / "api" / "demo_shapes.json"


def saved_image(image: dict) -> np.ndarray:
    """[H, W, 3] float in 0..1 of an image a node wrote (output or temp)."""
    import folder_paths
    from PIL import Image

    folder = folder_paths.get_temp_directory() if image["type"] == "temp" else folder_paths.get_output_directory()
    return np.asarray(Image.open(Path(folder) / image["subfolder"] / image["filename"]).convert("RGB")) / 255.0


def test_the_demo_draws_what_its_prompt_asks_and_each_concept_mask_finds_it():
    """The demo's defaults (the headless demo's prompt, which the template shares: test_browser.py) give a picture
    whose shapes and colours match the prompt, and each shape's argmax mask covers the prompt's colour for it."""
    import cv2

    from research.classify import classify_shape

    prompt = json.loads(DEMO_PROMPT.read_text())
    words = prompt["2"]["inputs"]["text"].split()
    asked = [(words[i - 1], word) for i, word in enumerate(words) if word in shapes.SHAPES]
    assert len(asked) == 2, asked
    graph = {key: node for key, node in prompt.items() if key in ("1", "2", "3", "4", "5", "6")}
    graph["image"] = {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}}
    for _, shape in asked:
        graph[shape] = {"class_type": "ConceptAttentionMask", "inputs": {
            "concept_maps": ["5", 1], "concepts": shape, "method": "argmax", "threshold": 0.5, "grow": 0, "blur": 0.0,
            "fill_holes": False, "invert": False, "space": "as_made"}}
    result = run_prompt(graph)
    assert result["valid"] and result["success"], result
    image = saved_image(result["outputs"]["image"]["images"][0])
    palette = {**shapes.COLOURS, **shapes.BACKGROUNDS}
    distances = np.stack([np.linalg.norm(image - np.asarray(rgb), axis=-1) for rgb in palette.values()])
    nearest = np.asarray(list(palette))[distances.argmin(axis=0)]
    for colour, shape in asked:
        # the drawing: this colour's pixels make one object, of the asked shape
        count, labels, stats, _ = cv2.connectedComponentsWithStats((nearest == colour).astype(np.uint8))
        objects = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] > 150]
        assert len(objects) == 1, f"{colour}: {len(objects)} objects"
        assert classify_shape((labels == objects[0]).astype(np.uint8)) == shape, f"the {colour} object is no {shape}"
        # the map: the shape's mask lies on that object
        mask = saved_image(result["outputs"][shape]["images"][0])[..., 0] > 0.5
        assert mask.sum() > 1000, shape
        assert (nearest[mask] == colour).mean() > 0.8, f"the {shape} mask is not on the {colour} {shape}"
