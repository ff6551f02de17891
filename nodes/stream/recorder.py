"""The hand-over from a patched MODEL to the Concept Maps collectors, under ComfyUI's execution cache.

Every sampling run that uses the patched model (any sampler node, any guider) is filed here under the
sampler node that ran it, with a copy of the latent it returned. A collector receives that LATENT and
takes the run whose latent it is, so it gets the maps of exactly the run that made its input:
- a new seed re-runs the sampler and, through the LATENT, the collector: new maps;
- nothing changed: ComfyUI reuses every cached output, maps included;
- two samplers sharing the model (a hires-fix second pass) file two runs; each LATENT finds its own;
- a LATENT no run returned (another model's sampler, or one changed after sampling) is refused.
A sampler node's next run replaces its filed run, so the store holds at most one run per sampler node
(and never more than MAX_RUNS), however many prompts are queued. An interrupted run is never filed.
"""

from dataclasses import dataclass

import torch
from comfy_execution.utils import get_executing_context
from torch import Tensor

MAX_RUNS = 16


@dataclass
class FiledRun:
    latent: Tensor  # a CPU copy of what the run returned
    recording: object  # patch.Recording


def sampler_node() -> tuple:
    """The node running now and its list index (ComfyUI's execution context); () outside a prompt."""
    context = get_executing_context()
    return () if context is None else (context.node_id, context.list_index)


class ConceptRecorder:
    """The finished sampling runs of one patched model, one per sampler node, until it runs again."""

    def __init__(self):
        self.runs: dict[tuple, FiledRun] = {}

    def file(self, recording, output) -> None:
        if not isinstance(output, Tensor) or getattr(output, "is_nested", False):
            return  # several latents packed together (audio-video models): no image maps to file
        node = sampler_node()
        self.runs.pop(node, None)  # re-inserted last: the dict keeps the runs oldest first
        self.runs[node] = FiledRun(output.detach().to("cpu", copy=True), recording)
        while len(self.runs) > MAX_RUNS:
            self.runs.pop(next(iter(self.runs)))

    def find(self, latent: Tensor):
        """The recording of the newest run that returned exactly `latent`."""
        if not isinstance(latent, Tensor):
            raise ValueError(f"latent must be a LATENT from a sampler; got {type(latent).__name__}")
        if not self.runs:
            raise ValueError(
                "no sampling run has used this Concept Attention Model yet: wire its MODEL output into the "
                "model input of the sampler whose LATENT you connect here"
            )
        candidate = latent.detach().cpu()
        for run in reversed(self.runs.values()):
            if run.latent.shape == candidate.shape and torch.equal(run.latent.to(candidate.dtype), candidate):
                return run.recording
        raise ValueError(
            "this LATENT was not returned by a sampler running this Concept Attention Model's MODEL: connect "
            "the LATENT output of the sampler whose model input comes from the Concept Attention Model "
            "(SamplerCustomAdvanced: its `output`, not `denoised_output`), before any upscale or other change"
        )

    def held_bytes(self) -> int:
        """Bytes of tensors the store holds (latent copies and running sums)."""
        total = 0
        for run in self.runs.values():
            total += run.latent.numel() * run.latent.element_size()
            for aggregator in run.recording.aggregators.values():
                total += sum(t.numel() * t.element_size() for t in aggregator.sums.values())
        return total
