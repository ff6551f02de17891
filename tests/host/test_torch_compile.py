"""torch.compile: a model compiled before the concept node gives the uncompiled maps and stays compiled for
other samplers; compiling after the concept node is refused, clearly, before any sampling."""

import nodes
import torch
from comfy_api.torch_helpers import set_torch_compile_wrapper
from comfy_extras.nodes_torch_compile import TorchCompileModel
from comfy_host import make_executor, run_prompt
from helpers.graph import base, model_node, sampler
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import sampler_inputs


def concept_run(ca, model, clip, inputs):
    latent, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args
    return latent["samples"], maps


def plain_run(model, inputs):
    (out,) = nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"], "euler", "simple",
                                   inputs["positive"], inputs["negative"], inputs["latent_image"])
    return out["samples"]


def test_a_model_compiled_by_torchcompilemodel_gives_the_uncompiled_maps(ca):
    model, clip = tiny_flux(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5)
    compiled = TorchCompileModel.execute(model, "inductor").args[0]
    assert ca.nodes.stream.install.is_compiled(compiled)
    latent, maps = concept_run(ca, compiled, clip, inputs)
    reference_latent, reference = concept_run(ca, model, clip, inputs)
    assert torch.equal(maps.maps, reference.maps) and torch.equal(latent, reference_latent)
    assert ca.nodes.stream.install.is_compiled(compiled)  # the user's model is left compiled


def test_the_compiled_model_still_samples_after_a_concept_run(ca):
    """The compiled module is shared by the model's clones: a concept run must not leave a traced graph
    (with the stream's replacements) that a later plain run of the compiled model reuses."""
    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 3.5), "steps": 2}
    compiled = model.clone()
    set_torch_compile_wrapper(compiled, backend="eager")  # dynamo's tracing and guards, no code generation
    concept_run(ca, compiled, clip, inputs)
    assert torch.allclose(plain_run(compiled, inputs), plain_run(model, inputs), atol=1e-6, rtol=0)
    # and the other way round: a plain compiled run first, then the concept run
    latent, maps = concept_run(ca, compiled, clip, inputs)
    reference_latent, reference = concept_run(ca, model, clip, inputs)
    assert torch.equal(maps.maps, reference.maps) and torch.equal(latent, reference_latent)


def test_compiling_after_the_concept_node_is_refused_before_sampling(ca):
    graph = base()
    graph.update(model_node())
    graph["c"] = {"class_type": "TorchCompileModel", "inputs": {"model": ["5", 0], "backend": "inductor"}}
    nodes_, latent = sampler("KSampler", "k", ("c", 0))
    graph.update(nodes_)
    graph["m"] = {"class_type": "ConceptAttentionMaps", "inputs": {"recorder": ["5", 1], "latent": latent}}
    graph["keep"] = {"class_type": "CATestKeep", "inputs": {"key": "maps", "concept_maps": ["m", 0]}}
    result = run_prompt(graph, make_executor())
    assert result["valid"] and not result["success"], result
    (error,) = result["errors"]
    assert error["node_id"] == "k"
    assert "was compiled (TorchCompileModel or another compile node) after the Concept Attention" in \
        error["exception_message"]
    assert "Move the compile node before the Concept Attention node" in error["exception_message"]
