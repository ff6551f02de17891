"""The demo model's Segment Image, booted in this process, for the research scripts that measure masks."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path += [str(REPO), str(REPO / "bench")]  # research as a package, and bench's host boot
from bench_host import boot  # noqa: E402


def demo_segmenter():
    """(host, the extension's ca_core.masks, segment): ComfyUI booted on the CPU with the extension loaded, and
    segment(image, concepts, caption, softmax=True) -> CONCEPT_MAPS from the demo model at noise 0.5, layers auto."""
    host = boot("cpu")
    pack = host.pack
    model, clip, vae = sys.modules[f"{pack.__name__}.nodes.demo_loader"].load_demo_model()
    segment_node = host.segment_module.ConceptAttentionSegmentImage

    def segment(image, concepts: list[str], caption: str, softmax: bool = True):
        return segment_node.execute(model=model, clip=clip, vae=vae, image=image, concepts=", ".join(concepts),
                                    layers="auto", space="output", softmax=softmax, token_pooling="first",
                                    noise_level=0.5, noise_samples=1, seed=0, caption=caption).args[0]

    return host, sys.modules[f"{pack.__name__}.ca_core.masks"], segment
