"""What each node tells the frontend, as this host's /object_info serves it.

Input order, advanced inputs, input and output tooltips, search aliases, and the help pages' marks of
advanced inputs. Saved workflows hold widget values by position, so the input order is fixed.
"""

import dataclasses
import inspect
import re
from pathlib import Path

import comfyui_version
import nodes
import pytest
from comfy_api.latest import io

DOCS = Path(__file__).resolve().parents[2] / "web" / "docs"
COMFYUI_VERSION = tuple(int(part) for part in comfyui_version.__version__.split("."))

CONCEPT_INPUTS = ["concepts", "layers", "space", "softmax", "token_pooling"]
# As saved workflows and API prompts hold them: append only, never reorder or rename.
INPUT_ORDER = {
    "ConceptAttentionSampler": ["model", "clip", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                                "negative", "latent_image", "denoise", *CONCEPT_INPUTS, "start_step", "end_step",
                                "prompt"],
    "ConceptAttentionModel": ["model", "clip", *CONCEPT_INPUTS, "start_step", "end_step", "prompt"],
    "ConceptAttentionMaps": ["recorder", "latent"],
    "ConceptAttentionSegmentImage": ["model", "clip", "vae", "image", *CONCEPT_INPUTS, "noise_level",
                                     "noise_samples", "seed", "caption", "batch_size"],
    "ConceptAttentionSaliencyMap": ["concept_maps", "image", "normalisation", "overlay_opacity", "space", "label"],
    "ConceptAttentionMask": ["concept_maps", "concepts", "method", "threshold", "grow", "blur", "fill_holes",
                             "invert", "space", "min_region", "temporal_smoothing", "refine", "image"],
    "ConceptAttentionPrompts": ["concept_maps", "concepts", "points_per_object", "batch_index", "min_region", "space",
                                "refine", "image"],
    "ConceptAttentionLoadDemoModel": [],
}
SAMPLING_ADVANCED = {"layers", "space", "softmax", "token_pooling", "start_step", "end_step", "prompt"}
ADVANCED = {
    "ConceptAttentionSampler": SAMPLING_ADVANCED,
    "ConceptAttentionModel": SAMPLING_ADVANCED,
    "ConceptAttentionMaps": set(),
    "ConceptAttentionSegmentImage": {"layers", "space", "softmax", "token_pooling", "batch_size"},
    "ConceptAttentionSaliencyMap": {"space"},
    "ConceptAttentionMask": {"space", "temporal_smoothing"},
    "ConceptAttentionPrompts": {"space"},
    "ConceptAttentionLoadDemoModel": set(),
}
# One word a user would search for, per node, beyond its name.
SEARCHED_AS = {
    "ConceptAttentionSampler": "attention map",
    "ConceptAttentionModel": "attention map",
    "ConceptAttentionMaps": "attention map",
    "ConceptAttentionSegmentImage": "segment",
    "ConceptAttentionSaliencyMap": "show heatmaps",
    "ConceptAttentionMask": "mask from text",
    "ConceptAttentionPrompts": "sam3 prompts",
    "ConceptAttentionLoadDemoModel": "demo",
}
HOST_TAKES_ADVANCED = "advanced" in inspect.signature(io.Input.__init__).parameters
HOST_TAKES_SEARCH_ALIASES = "search_aliases" in {field.name for field in dataclasses.fields(io.Schema)}


def node_info(node_id: str) -> dict:
    """The node as /object_info serves it to the frontend."""
    return nodes.NODE_CLASS_MAPPINGS[node_id].GET_NODE_INFO_V1()


def wire_inputs(node_id: str) -> dict[str, dict]:
    """Each input's options as the frontend receives them, by name."""
    spec = node_info(node_id)["input"]
    return {name: entry[1] for part in ("required", "optional") for name, entry in spec.get(part, {}).items()}


def test_the_pinned_hosts_exercise_both_folding_and_its_fallback():
    """ComfyUI 0.33 takes advanced inputs and search aliases; 0.3.64 and 0.8 take neither."""
    assert HOST_TAKES_ADVANCED is HOST_TAKES_SEARCH_ALIASES is (COMFYUI_VERSION >= (0, 33, 0))


@pytest.mark.parametrize("node_id", INPUT_ORDER)
def test_inputs_keep_the_order_saved_workflows_hold(node_id):
    schema = nodes.NODE_CLASS_MAPPINGS[node_id].GET_SCHEMA()
    assert [node_input.id for node_input in schema.inputs] == INPUT_ORDER[node_id]
    assert set(wire_inputs(node_id)) == set(INPUT_ORDER[node_id])


@pytest.mark.parametrize("node_id", INPUT_ORDER)
def test_advanced_inputs_fold_where_the_host_can_and_say_so_where_it_cannot(node_id):
    for name, options in wire_inputs(node_id).items():
        tooltip = options.get("tooltip", "")
        assert tooltip, f"{node_id}.{name} has no tooltip"
        expected = name in ADVANCED[node_id]
        if HOST_TAKES_ADVANCED:
            assert options.get("advanced", False) is expected, f"{node_id}.{name}"
            assert not tooltip.startswith("Advanced."), f"{node_id}.{name}: the frontend folds it already"
        else:
            assert "advanced" not in options
            assert tooltip.startswith("Advanced. ") is expected, f"{node_id}.{name}: {tooltip!r}"


@pytest.mark.parametrize("node_id", INPUT_ORDER)
def test_every_output_has_a_tooltip(node_id):
    info = node_info(node_id)
    assert len(info["output_tooltips"]) == len(info["output"]) > 0
    assert all(info["output_tooltips"]), f"{node_id}: {info['output_tooltips']}"


@pytest.mark.parametrize("node_id", INPUT_ORDER)
def test_search_aliases_where_the_host_takes_them(node_id):
    aliases = node_info(node_id).get("search_aliases")
    if HOST_TAKES_SEARCH_ALIASES:
        assert SEARCHED_AS[node_id] in aliases, aliases
        assert len(set(aliases)) == len(aliases)
    else:
        assert not aliases


@pytest.mark.parametrize("node_id", INPUT_ORDER)
def test_help_page_marks_exactly_the_advanced_inputs(node_id):
    page = (DOCS / f"{node_id}.md").read_text()
    inputs_section = page.split("\n## Inputs\n", 1)[1].split("\n## ", 1)[0]
    marked = {match[1]: "*Advanced.*" in match[0] for match in re.finditer(r"^- \*\*(\w+)\*\* — .*$", inputs_section, re.M)}
    assert set(marked) == set(INPUT_ORDER[node_id])
    assert {name for name, is_marked in marked.items() if is_marked} == ADVANCED[node_id]
