"""Prompts (API-format graphs) for ComfyUI's executor around the tiny Flux of the test node pack
(helpers/node_pack.py): the loader, the Concept Attention nodes, any sampler, and CATestKeep, which keeps what
it is given in KEPT for the test to read."""

# What CATestKeep received in the prompts run so far, by key; run() clears it
KEPT: dict[str, dict] = {}

CONCEPTS = "dog, grass, sky"
SEED, STEPS = 3, 2


def base(width=96, height=64, negative="blurry"):
    return {
        "1": {"class_type": "CATestTinyFlux", "inputs": {"seed": 0, "guidance_embed": True}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dog on grass", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["1", 1]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
    }


def model_node(node="5", model=("1", 0), prompt="positive", concepts=CONCEPTS):
    return {node: {"class_type": "ConceptAttentionModel",
                   "inputs": {"model": list(model), "clip": ["1", 1], "concepts": concepts, "layers": "all",
                              "space": "output", "softmax": True, "token_pooling": "first", "start_step": 0,
                              "end_step": 10000, "prompt": prompt}}}


def sampler(kind, prefix, model, latent=("4", 0), seed=SEED, cfg=1.0, denoise=1.0):
    """Nodes of one sampling branch named prefix*, and the (node, output) of its LATENT."""
    model, latent = list(model), list(latent)
    common = {"cfg": cfg, "sampler_name": "euler", "scheduler": "simple", "positive": ["2", 0],
              "negative": ["3", 0], "latent_image": latent, "steps": STEPS}
    if kind == "KSampler":
        return {prefix: {"class_type": "KSampler",
                         "inputs": {**common, "model": model, "seed": seed, "denoise": denoise}}}, [prefix, 0]
    if kind == "KSamplerAdvanced":
        assert denoise == 1.0
        return {prefix: {"class_type": "KSamplerAdvanced",
                         "inputs": {**common, "model": model, "add_noise": "enable", "noise_seed": seed,
                                    "start_at_step": 0, "end_at_step": 10000,
                                    "return_with_leftover_noise": "disable"}}}, [prefix, 0]
    guider = ({"class_type": "BasicGuider", "inputs": {"model": model, "conditioning": ["2", 0]}}
              if kind == "BasicGuider" else
              {"class_type": "CFGGuider", "inputs": {"model": model, "positive": ["2", 0], "negative": ["3", 0],
                                                     "cfg": cfg}})
    return {
        f"{prefix}n": {"class_type": "RandomNoise", "inputs": {"noise_seed": seed}},
        f"{prefix}g": guider,
        f"{prefix}s": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        f"{prefix}t": {"class_type": "BasicScheduler",
                       "inputs": {"model": model, "scheduler": "simple", "steps": STEPS, "denoise": denoise}},
        prefix: {"class_type": "SamplerCustomAdvanced",
                 "inputs": {"noise": [f"{prefix}n", 0], "guider": [f"{prefix}g", 0], "sampler": [f"{prefix}s", 0],
                            "sigmas": [f"{prefix}t", 0], "latent_image": latent}},
    }, [prefix, 0]


def collector(node, latent, recorder=("5", 1), key=None):
    return {node: {"class_type": "ConceptAttentionMaps", "inputs": {"recorder": list(recorder), "latent": latent}},
            f"{node}k": keep(key or node, concept_maps=[node, 0])}


def keep(key, **inputs):
    return {"class_type": "CATestKeep", "inputs": {"key": key, **inputs}}


def concept_sampler_node(node, seed=SEED, cfg=1.0, prompt="positive", latent=("4", 0), denoise=1.0):
    inputs = {"model": ["1", 0], "clip": ["1", 1], "seed": seed, "steps": STEPS, "cfg": cfg, "sampler_name": "euler",
              "scheduler": "simple", "positive": ["2", 0], "negative": ["3", 0], "latent_image": list(latent),
              "denoise": denoise, "concepts": CONCEPTS, "layers": "all", "space": "output", "softmax": True,
              "token_pooling": "first", "start_step": 0, "end_step": 10000, "prompt": prompt}
    return {node: {"class_type": "ConceptAttentionSampler", "inputs": inputs},
            f"{node}k": keep(node, concept_maps=[node, 1], latent=[node, 0])}


def run(prompt, executor=None):
    """Run through ComfyUI's executor; returns (result, the ids of the nodes that executed)."""
    from comfy_host import make_executor, run_prompt

    executor = executor or make_executor()
    KEPT.clear()
    executor.server.events.clear()
    result = run_prompt(prompt, executor)
    assert result["valid"], result
    executed = {data["node"] for event, data in executor.server.events
                if event == "executing" and isinstance(data, dict) and data.get("node")}
    return result, executed
