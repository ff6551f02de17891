"""ComfyUI adapters: the nodes, the patch that installs the concept stream, one adapter per model family."""

from comfy_api.latest import ComfyExtension, io

from .demo_loader import LoadDemoModel
from .map_nodes import ConceptMask, SaliencyMap
from .model_node import ConceptAttentionModel, ConceptMapsCollector
from .prompt_node import ConceptPrompts
from .sampler_node import ConceptAttentionSampler
from .segment_node import ConceptAttentionSegmentImage


class ConceptAttentionExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [ConceptAttentionSampler, ConceptAttentionModel, ConceptMapsCollector, ConceptAttentionSegmentImage,
                SaliencyMap, ConceptMask, ConceptPrompts, LoadDemoModel]


async def comfy_entrypoint() -> ConceptAttentionExtension:
    return ConceptAttentionExtension()
