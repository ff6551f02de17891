"""The test-only ComfyUI nodes, loaded into ComfyUI as a custom node pack of their own (comfy_host.py links
this file into custom_nodes as ca_test_nodes.py): a tiny Flux loader, an output node that keeps what it is
given (helpers.graph.KEPT), a model that presses interrupt mid-sampling, and a step-skipping block cache.

Its imports are the tests' own modules (tests/host is on sys.path before ComfyUI loads it), so KEPT is the
dict the tests read."""

import comfy.model_management
import comfy.patcher_extension
from comfy_api.latest import ComfyExtension, io

from helpers.block_cache import block_cache
from helpers.graph import KEPT
from helpers.models import random_vae, tiny_clip, tiny_flux


class TinyFluxLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestTinyFlux",
            category="testing",
            inputs=[io.Int.Input("seed", default=0), io.Boolean.Input("guidance_embed", default=True)],
            outputs=[io.Model.Output(), io.Clip.Output(), io.Vae.Output()],
        )

    @classmethod
    def execute(cls, seed, guidance_embed) -> io.NodeOutput:
        return io.NodeOutput(tiny_flux(seed, guidance_embed), tiny_clip(seed + 1), random_vae(seed + 2))


class Keep(io.ComfyNode):
    """An output node that keeps what it is given (maps, latents, models, recorders) for the test to read."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestKeep",
            category="testing",
            inputs=[io.String.Input("key"),
                    io.Custom("CONCEPT_MAPS").Input("concept_maps", optional=True),
                    io.Latent.Input("latent", optional=True),
                    io.Model.Input("model", optional=True),
                    io.Custom("CONCEPT_RECORDER").Input("recorder", optional=True)],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, key, **kept) -> io.NodeOutput:
        KEPT[key] = kept
        return io.NodeOutput()


class InterruptAtCall(io.ComfyNode):
    """MODEL -> MODEL clone that presses ComfyUI's interrupt on its n-th model call (counted per prompt)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestInterruptAtCall",
            category="testing",
            inputs=[io.Model.Input("model"), io.Int.Input("call", default=2)],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, call) -> io.NodeOutput:
        calls = []

        def interrupting(executor, *args, **kwargs):
            calls.append(1)
            if len(calls) == call:
                comfy.model_management.interrupt_current_processing(True)
                comfy.model_management.throw_exception_if_processing_interrupted()
            return executor(*args, **kwargs)

        patched = model.clone()
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "ca_test_interrupt",
                                     interrupting)
        return io.NodeOutput(patched)


class BlockCacheNode(io.ComfyNode):
    """MODEL -> MODEL that skips the blocks on chosen steps (a stand-in for step-skipping cache packs)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestBlockCache",
            category="testing",
            inputs=[io.Model.Input("model"), io.String.Input("skip_steps", default="1"),
                    io.Combo.Input("mode", options=["after_first_block", "whole_model"])],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, skip_steps, mode) -> io.NodeOutput:
        steps = {int(step) for step in skip_steps.split(",") if step.strip()}
        return io.NodeOutput(block_cache(model, steps, mode))


class TestNodes(ComfyExtension):
    async def get_node_list(self):
        return [TinyFluxLoader, Keep, InterruptAtCall, BlockCacheNode]


async def comfy_entrypoint():
    return TestNodes()
