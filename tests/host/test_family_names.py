"""One source for the model families in user text: every tooltip, translation, help page and error that names
the supported families, or says what `layers = auto` takes on each, is built from the family classes by
nodes/families/user_text.py. The node schemas and the error build theirs at run time from the families this host
has; scripts/build_user_text.py writes the static files (locales/, web/docs/) from every family the extension
supports on the newest host, and they must read as it would write them now, on every host.
"""

import build_user_text
import pytest
from helpers.models import tiny_wan

NODES = ("ConceptAttentionSampler", "ConceptAttentionModel", "ConceptAttentionSegmentImage")


@pytest.fixture(scope="module")
def text(ca):
    return ca.nodes.families.user_text


def schema_inputs(ca, node_id: str) -> dict:
    node = getattr(ca.nodes, {"ConceptAttentionSampler": "sampler_node", "ConceptAttentionModel": "model_node",
                              "ConceptAttentionSegmentImage": "segment_node"}[node_id])
    return {node_input.id: node_input for node_input in getattr(node, node_id).define_schema().inputs}


def english_tooltip(ca, node_input) -> str:
    return node_input.tooltip.removeprefix(ca.nodes.schema_options.ADVANCED_PREFIX)


def test_the_translations_and_help_pages_are_built_from_the_family_list(ca):
    """Fails when a family, its names or its defaults changed and the static files were not rebuilt."""
    stale = [str(path.relative_to(build_user_text.REPO)) for path in build_user_text.out_of_date(ca)]
    assert not stale, f"out of date with nodes/families: {stale}; run scripts/build_user_text.py"


def test_the_static_files_name_every_family_the_extension_supports(ca, text):
    """Whatever the host: a family this host lacks (CogVideoX before ComfyUI 0.33) is still listed there."""
    families = ca.nodes.families.ALL_FAMILIES
    for path, built in build_user_text.built_files(ca).items():
        if path.suffix == ".md" and not build_user_text.SPAN.search(built):
            continue  # an English copy of a page that names no families
        for family in families:
            assert family.short_name in built, f"{path.name} leaves out {family.short_name}"
    for language in text.LANGUAGES:
        for node_id in NODES:
            for input_id in ("model", "layers"):
                tooltip = build_user_text.tooltip(ca, node_id, input_id, language)
                assert all(family.short_name in tooltip for family in families), (language, node_id, input_id)


@pytest.mark.parametrize("node_id", NODES)
def test_the_node_tooltips_name_every_family_this_host_has(ca, text, node_id):
    families = ca.nodes.families.FAMILIES
    inputs = schema_inputs(ca, node_id)
    model, layers = english_tooltip(ca, inputs["model"]), english_tooltip(ca, inputs["layers"])
    assert model == text.model_tooltip(families, copy=node_id != "ConceptAttentionSegmentImage")
    assert layers == text.layers_tooltip(families)
    for family in families:
        assert text.display_name(family) in model and family.short_name in layers
    absent = [family for family in ca.nodes.families.ALL_FAMILIES if not family.available]
    assert not [family.short_name for family in absent if family.short_name in model + layers]
    if node_id == "ConceptAttentionSampler":
        cfg = english_tooltip(ca, inputs["cfg"])
        assert cfg == text.cfg_tooltip(families)
        assert all(family.short_name in cfg for family in families if family.typical_cfg is not None)


def test_auto_is_said_from_each_familys_default_layers(ca, text):
    """Each family is named in the group that says what its default_layers takes."""
    said = text.layers_defaults(ca.nodes.families.ALL_FAMILIES)
    groups = dict(reversed(group.split(" on ", 1)) for group in said.split("; "))
    for family in ca.nodes.families.ALL_FAMILIES:
        group = next(what for names, what in groups.items() if family.short_name in names)
        assert group == text.auto_layers(family.default_layers), family.short_name
    assert text.auto_layers(ca.ca_core.layers.ALL_BLOCKS) == "every joint block"
    assert text.auto_layers(4) == "the last four" and text.auto_layers(12) == "the last 12"
    assert text.auto_layers(3, "zh") == "最后三个" and text.auto_layers(3, "ja") == "最後の 3 つ"
    assert text.auto_layers(3, "ko") == "마지막 3개"


def test_the_unsupported_model_error_names_every_family_this_host_has(ca, text):
    families = ca.nodes.families.FAMILIES
    with pytest.raises(ca.nodes.families.UnsupportedModelError) as raised:
        ca.nodes.families.family_for(tiny_wan())
    message = str(raised.value)
    assert f"Supported: {text.supported(families)}." in message
    assert all(text.display_name(family) in message for family in families)


@pytest.mark.parametrize("word, consonant", [
    ("Flux.1", True), ("SD3 / SD3.5", False), ("Flux.2", False), ("Chroma", False), ("Qwen-Image", False),
    ("HunyuanVideo", False), ("CogVideoX", False), ("Wan", True), ("HiDream", True), ("SDXL", True),
    ("모델", True), ("비디오", False),
])
def test_korean_particles_follow_the_sound_a_name_ends_in(text, word, consonant):
    assert text.ends_in_consonant(word) is consonant
    assert text.korean_particles(f"{word}(과/와) X(은/는)") == f"{word}{'과' if consonant else '와'} X는"
