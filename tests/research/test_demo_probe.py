"""The probe's binding measures: attention recording on the twin, and what each measure reads."""

import pytest
import torch

from demo_model.config import DemoConfig
from demo_model.text import MAX_TOKENS, TextEncoder, WordTokenizer
from research import flux_twin
from research.evaluation import PIXELS_PER_TOKEN
from research.flux_twin import FluxTwin
from research.probe import (
    IMAGE_SIDE_COLUMNS,
    background_word_binding,
    image_side,
    image_side_table,
    lone_encoding_similarity,
    object_word_binding,
    recorded_attention,
    token_masks,
)
from research.shapes import IMAGE_SIZE, VOCABULARY, held_out_seeds, make_scene

TOKENS = (IMAGE_SIZE // PIXELS_PER_TOKEN) ** 2  # a scene's image tokens


def two_object_scene():
    return next(scene for scene in map(make_scene, held_out_seeds(50)) if len(scene.objects) == 2)


def attention_towards(scene, words, word_for_token, token_for_word):
    """[1, image tokens, text tokens] and [1, text tokens, image tokens] with all mass on one target."""
    image_to_text = torch.zeros(1, TOKENS, MAX_TOKENS)
    text_to_image = torch.zeros(1, MAX_TOKENS, TOKENS)
    for token in range(TOKENS):
        image_to_text[0, token, word_for_token(token)] = 1.0
    for position in range(len(words)):
        text_to_image[0, position] = token_for_word(position)
    return image_to_text, text_to_image


def test_recorded_probabilities_reproduce_the_attention_output_one_record_per_block():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 10, 8).unbind(0)
    ids = torch.stack([torch.zeros(10), torch.arange(10.0), torch.zeros(10)], dim=-1)[None].expand(2, -1, -1)
    pe = flux_twin.positional_encoding(ids, [2, 2, 4], 10000)
    with torch.no_grad(), recorded_attention() as recorded:
        output = flux_twin.attention(q, k, v, pe)
        (probabilities,) = recorded
        mixed = (probabilities @ v).transpose(1, 2).reshape(output.shape)
        assert torch.allclose(probabilities.sum(-1), torch.ones(()), atol=1e-5)
        assert torch.allclose(mixed, output, atol=1e-5)
        recorded.clear()
        model = FluxTwin(DemoConfig(depth=2, depth_single_blocks=1)).eval()
        model(torch.randn(1, 16, 8, 8), torch.tensor([0.5]), torch.randn(1, MAX_TOKENS, 64), torch.randn(1, 64))
        assert [r.shape for r in recorded] == [(1, 4, MAX_TOKENS + 16, MAX_TOKENS + 16)] * 3


def test_the_stock_attention_returns_after_an_error_inside_the_recording():
    stock = flux_twin.attention
    with pytest.raises(RuntimeError), recorded_attention():
        assert flux_twin.attention is not stock
        raise RuntimeError("inside")
    assert flux_twin.attention is stock


def test_token_masks_hold_the_tokens_an_object_mostly_covers():
    scene = two_object_scene()
    for obj, mask in zip(scene.objects, token_masks(scene), strict=True):
        assert mask.shape == (TOKENS,) and mask.any()
        rows, cols = obj.mask.nonzero()
        centre = (rows.mean() // PIXELS_PER_TOKEN) * (IMAGE_SIZE // PIXELS_PER_TOKEN) + cols.mean() // PIXELS_PER_TOKEN
        assert mask[int(centre)]
    assert not (token_masks(scene)[0] & token_masks(scene)[1]).any()


@pytest.mark.parametrize("kind", ["colour", "shape"])
def test_object_word_binding_reads_one_for_own_words_zero_for_swapped_and_half_for_shared(kind):
    scene = two_object_scene()
    words = WordTokenizer(VOCABULARY).words(scene.caption)
    masks = token_masks(scene)
    position = [words.index(getattr(obj, kind)) for obj in scene.objects]

    def object_of(token):
        return 0 if masks[0][token] else 1

    def spread_over(mask):
        return mask.float() / mask.sum()

    own = attention_towards(scene, words, lambda token: position[object_of(token)],
                            lambda p: spread_over(masks[position.index(p)] if p in position else masks[0]))
    assert object_word_binding(*own, [scene], [masks], [words], kind) == {f"image->{kind}": 1.0, f"{kind}->image": 1.0}
    swapped = attention_towards(scene, words, lambda token: position[1 - object_of(token)],
                                lambda p: spread_over(masks[1 - position.index(p)] if p in position else masks[0]))
    assert object_word_binding(*swapped, [scene], [masks], [words], kind) == {f"image->{kind}": 0.0, f"{kind}->image": 0.0}
    _, shared = attention_towards(scene, words, lambda token: 0, lambda p: spread_over(masks[0] | masks[1]))
    assert object_word_binding(own[0], shared, [scene], [masks], [words], kind)[f"{kind}->image"] == pytest.approx(0.5)


def test_background_word_binding_prefers_background_tokens_or_objects():
    scene = two_object_scene()
    words = WordTokenizer(VOCABULARY).words(scene.caption)
    objects = token_masks(scene)[0] | token_masks(scene)[1]
    background, shape = words.index("background"), words.index(scene.objects[0].shape)
    to_background = attention_towards(scene, words, lambda token: shape if objects[token] else background,
                                      lambda p: (~objects).float() / (~objects).sum())
    assert background_word_binding(*to_background, [scene], [token_masks(scene)], [words]) == {"image->background": 1.0,
                                                                         "background->image": 1.0}
    to_objects = attention_towards(scene, words, lambda token: shape,
                                   lambda p: objects.float() / objects.sum())
    assert background_word_binding(*to_objects, [scene], [token_masks(scene)], [words]) == {"image->background": 0.0,
                                                                      "background->image": 0.0}


def test_lone_encoding_similarity_is_one_for_an_encoder_that_ignores_the_word_and_lower_otherwise():
    tokenizer = WordTokenizer(VOCABULARY)
    torch.manual_seed(0)
    encoder = TextEncoder(len(VOCABULARY)).eval()
    distinct = lone_encoding_similarity(encoder, tokenizer)
    assert set(distinct) == {"shape words", "colour words", "background vs shape words"}
    assert all(value < 0.9 for value in distinct.values())
    with torch.no_grad():
        encoder.token_embedding.weight.copy_(encoder.token_embedding.weight[2].clone())  # every word the same
    assert all(value == pytest.approx(1.0) for value in lone_encoding_similarity(encoder, tokenizer).values())


def test_image_side_reads_attention_within_objects_and_outputs_that_tell_them_apart():
    objects = [torch.zeros(TOKENS, dtype=torch.bool), torch.zeros(TOKENS, dtype=torch.bool)]
    objects[0][:10], objects[1][10:30] = True, True
    background = ~(objects[0] | objects[1])
    # each object's tokens: 60 % on their own object, 10 % on the other, 20 % on background, 10 % on words
    image_to_image = torch.zeros(TOKENS, TOKENS)
    for own, other in ((0, 1), (1, 0)):
        rows = objects[own].nonzero()[:, 0]
        image_to_image[rows[:, None], objects[own]] = 0.6 / objects[own].sum()
        image_to_image[rows[:, None], objects[other]] = 0.1 / objects[other].sum()
        image_to_image[rows[:, None], background] = 0.2 / background.sum()
    image_to_text = torch.full((TOKENS, 4), 0.1 / 4)
    outputs = torch.zeros(TOKENS, 3)
    outputs[objects[0], 0], outputs[objects[1], 1], outputs[background, 2] = 1.0, 2.0, 0.5
    stats = image_side(image_to_image, image_to_text, outputs, objects)
    assert set(stats) == set(IMAGE_SIDE_COLUMNS)
    for column, value in (("own object", 0.6), ("other object", 0.1), ("background", 0.2), ("words", 0.1),
                          ("objects cosine", 0.0), ("object-background cosine", 0.0), ("within object cosine", 1.0)):
        assert stats[column] == pytest.approx([value] * len(stats[column]), abs=1e-6), column
    assert len(stats["own object"]) == 2 and len(stats["objects cosine"]) == 1
    # the same output everywhere: nothing to tell the objects apart by
    alike = image_side(image_to_image, image_to_text, torch.ones(TOKENS, 3), objects)
    assert alike["objects cosine"] == pytest.approx([1.0]) and alike["object-background cosine"] == pytest.approx([1.0, 1.0])


def test_image_side_table_has_one_row_per_double_block_of_shares_that_sum_below_one():
    torch.manual_seed(0)
    config = DemoConfig(depth=2, depth_single_blocks=1)
    model, text = FluxTwin(config).eval(), TextEncoder(len(VOCABULARY), dim=config.context_in_dim).eval()

    class PooledCodec:  # 16 channels at 1/8 of the image, the shape of the demo codec's latents
        @staticmethod
        def encode(images):
            return torch.nn.functional.avg_pool2d(images, 8).repeat(1, 6, 1, 1)[:, :16]

    table = image_side_table(model, text, PooledCodec(), scenes=6)
    assert len(table) == config.depth
    for row in table:
        shares = row["own object"] + row["other object"] + row["background"] + row["words"]
        assert 0.0 < row["own object"] and shares <= 1.0 + 1e-5  # the rest goes to the caption's padding
        assert -1.0 <= row["objects cosine"] <= 1.0 and 0.0 < row["within object cosine"] <= 1.0 + 1e-5
