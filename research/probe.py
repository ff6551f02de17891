"""Which caption words the demo model uses, and whether its attention binds them to their objects.

    python -m research.probe --weights demo_model/weights/demo_model.safetensors [--scenes 64] [--image-side]

Words used: the denoising loss with the true caption against the same caption with the shape
words, or the colour words, swapped for absent ones, or no caption. A model that uses its shape
words loses clearly more when they are swapped.

`--image-side` prints only the image half of ConceptAttention's dot product, per double block: where
an object's image tokens attend, and whether their attention outputs tell the objects apart.

Binding, per double block, on held-out two-object scenes: on each object's image tokens, how often
the object's own word draws more attention than the other object's word (image -> word); and how
much of a word's attention to the two objects falls on its own object (word -> image). 0.5 is no
binding. ConceptAttention reads the word -> image direction, so shape maps cannot work before the
shape words bind there. Held-out scenes, fixed noise, so two checkpoints compare.
"""

import argparse
import contextlib
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from demo_model import WEIGHTS
from demo_model.codec import PatchPCACodec
from demo_model.config import DemoConfig
from demo_model.text import MAX_TOKENS, TextConfig, TextEncoder, WordTokenizer

from . import flux_twin
from .evaluation import PIXELS_PER_TOKEN
from .export import weights_metadata
from .flux_twin import FluxTwin
from .shapes import COLOURS, IMAGE_SIZE, SHAPES, VOCABULARY, Scene, held_out_seeds, make_batch

NOISE_LEVELS = (0.3, 0.5, 0.7, 0.9)
BINDING_NOISE_LEVELS = (0.3, 0.7)


def encoded_with_fixed_noise(codec: PatchPCACodec, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The images' latents and one fixed draw of noise (seed 0), so two checkpoints see the same inputs."""
    x0 = codec.encode(images)
    return x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))


def swap_words(caption: str, pool: tuple[str, ...], rng: random.Random) -> str:
    """Each word of `pool` in the caption replaced by one the caption does not contain."""
    present = set(caption.split()) & set(pool)
    absent = [word for word in pool if word not in present]
    return " ".join(rng.choice(absent) if word in pool else word for word in caption.split())


def load(weights: Path) -> tuple[FluxTwin, TextEncoder, PatchPCACodec]:
    tensors = load_file(weights)
    metadata = weights_metadata(weights)
    config = DemoConfig(**json.loads(metadata["config"]))
    model = FluxTwin(config)
    text = TextEncoder(len(VOCABULARY), dim=config.context_in_dim, config=TextConfig.from_metadata(metadata, str(weights)))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    text.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("text.")})
    codec = PatchPCACodec.from_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("codec.")})
    return model.eval(), text.eval(), codec


@torch.no_grad()
def probe(model: FluxTwin, text: TextEncoder, codec: PatchPCACodec, scenes: int = 64) -> dict[float, dict[str, float]]:
    """{noise level: {caption variant: mean squared error of the predicted velocity}}."""
    tokenizer = WordTokenizer(VOCABULARY)
    images, captions, _ = make_batch(held_out_seeds(scenes))
    x0, noise = encoded_with_fixed_noise(codec, images)
    rng = random.Random(0)
    variants = {
        "true caption": captions,
        "shapes swapped": [swap_words(c, SHAPES, rng) for c in captions],
        "colours swapped": [swap_words(c, tuple(COLOURS), rng) for c in captions],
        "no caption": [""] * len(captions),
    }
    losses = {}
    for t in NOISE_LEVELS:
        xt = (1 - t) * x0 + t * noise
        times = torch.full((x0.shape[0],), t)
        losses[t] = {}
        for name, texts in variants.items():
            context, pooled = text(torch.tensor([tokenizer.ids(c) for c in texts]))
            losses[t][name] = F.mse_loss(model(xt, times, context, pooled), noise - x0).item()
    return losses


@contextlib.contextmanager
def recorded_attention(outputs: list[torch.Tensor] | None = None):
    """Yields a list that collects each attention call's probabilities [B, heads, L, L], in order;
    `outputs`, when given, collects each call's attention outputs [B, L, heads * D] (before the
    output projection, the space ConceptAttention compares in)."""
    stock = flux_twin.attention
    recorded: list[torch.Tensor] = []

    def recording(q, k, v, pe):
        q_roped, k_roped = flux_twin.apply_rope(q, pe), flux_twin.apply_rope(k, pe)
        recorded.append(torch.softmax(q_roped @ k_roped.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1))
        output = stock(q, k, v, pe)
        if outputs is not None:
            outputs.append(output)
        return output

    flux_twin.attention = recording  # the twin's blocks look the function up at call time
    try:
        yield recorded
    finally:
        flux_twin.attention = stock


def token_masks(scene: Scene) -> list[torch.Tensor]:
    """Per object, [tokens] bool: the image tokens the object covers at least half of."""
    grid = IMAGE_SIZE // PIXELS_PER_TOKEN
    return [torch.from_numpy(obj.mask.reshape(grid, PIXELS_PER_TOKEN, grid, PIXELS_PER_TOKEN).mean((1, 3)) >= 0.5)
            .flatten() for obj in scene.objects]


def object_word_binding(image_to_text: torch.Tensor, text_to_image: torch.Tensor, scenes: list[Scene],
                        masks: list[list[torch.Tensor]], captions: list[list[str]], kind: str) -> dict[str, float]:
    """Each two-object scene's words of one kind ("colour" or "shape") against each other.

    image_to_text: [B, image tokens, text tokens] and text_to_image: [B, text tokens, image tokens]
    attention probabilities (heads averaged); masks: each scene's token_masks; captions: each
    scene's caption words.
    image-><kind>: on an object's tokens, how often its own word draws more attention than the other
    object's word; <kind>->image: of a word's attention to the two objects, the share on its own.
    """
    wins, shares = [], []
    for row, (scene, objects, words) in enumerate(zip(scenes, masks, captions, strict=True)):
        positions = [words.index(getattr(obj, kind)) for obj in scene.objects]
        for own, other in ((0, 1), (1, 0)):
            on_object = image_to_text[row][objects[own]]
            if len(on_object):
                wins.append((on_object[:, positions[own]] > on_object[:, positions[other]]).float().mean().item())
            to_image = text_to_image[row, positions[own]]
            own_mass, other_mass = to_image[objects[own]].sum(), to_image[objects[other]].sum()
            shares.append((own_mass / (own_mass + other_mass).clamp_min(1e-12)).item())
    return {f"image->{kind}": sum(wins) / len(wins), f"{kind}->image": sum(shares) / len(shares)}


def background_word_binding(image_to_text: torch.Tensor, text_to_image: torch.Tensor, scenes: list[Scene],
                            masks: list[list[torch.Tensor]], captions: list[list[str]]) -> dict[str, float]:
    """The word "background" against the shape words, which it competes with in the segmentation.

    image->background: on background tokens, how often "background" draws more attention than a
    shape word; background->image: its mean attention per background token against per object
    token, as a share (0.5 = no preference).
    """
    wins, shares = [], []
    for row, (scene, objects, words) in enumerate(zip(scenes, masks, captions, strict=True)):
        on_objects = torch.stack(objects).any(0)
        background = words.index("background")
        on_background = image_to_text[row][~on_objects]
        for obj in scene.objects:
            wins.append((on_background[:, background] > on_background[:, words.index(obj.shape)]).float().mean().item())
        to_image = text_to_image[row, background]
        per_background, per_object = to_image[~on_objects].mean(), to_image[on_objects].mean()
        shares.append((per_background / (per_background + per_object).clamp_min(1e-12)).item())
    return {"image->background": sum(wins) / len(wins), "background->image": sum(shares) / len(shares)}


IMAGE_SIDE_COLUMNS = ("own object", "other object", "background", "words", "objects cosine",
                      "object-background cosine", "within object cosine")


def image_side(image_to_image: torch.Tensor, image_to_text: torch.Tensor, outputs: torch.Tensor,
               objects: list[torch.Tensor]) -> dict[str, list[float]]:
    """The image half of ConceptAttention's dot product in one scene: do the image tokens' attention
    outputs already tell the objects apart?

    image_to_image: [N, N] and image_to_text: [N, T] the image tokens' attention probabilities (heads
    averaged; T the caption's real words); outputs: [N, C] their attention outputs; objects: each
    object's [N] bool token mask. Per object, the mean share of its tokens' attention on their own
    object, the other object, the background and the words; the cosine between the objects' mean
    outputs, between an object's and the background's, and the mean cosine of outputs within an object.
    """
    background = ~torch.stack(objects).any(0)
    unit = F.normalize(outputs.float(), dim=-1)
    stats: dict[str, list[float]] = {column: [] for column in IMAGE_SIDE_COLUMNS}
    means = [F.normalize(outputs[mask].float().mean(0), dim=0) for mask in objects]
    background_mean = F.normalize(outputs[background].float().mean(0), dim=0)
    for index, mask in enumerate(objects):
        rows = image_to_image[mask]
        stats["own object"].append(rows[:, mask].sum(1).mean().item())
        stats["background"].append(rows[:, background].sum(1).mean().item())
        stats["words"].append(image_to_text[mask].sum(1).mean().item())
        stats["object-background cosine"].append((means[index] @ background_mean).item())
        stats["within object cosine"].append((unit[mask] @ unit[mask].T).mean().item())
        if len(objects) == 2:
            stats["other object"].append(rows[:, objects[1 - index]].sum(1).mean().item())
    if len(objects) == 2:
        stats["objects cosine"].append((means[0] @ means[1]).item())
    return stats


@torch.no_grad()
def image_side_table(model: FluxTwin, text: TextEncoder, codec: PatchPCACodec, scenes: int = 40, t: float = 0.5
                     ) -> list[dict[str, float]]:
    """Per double block, image_side's columns averaged over held-out scenes (full captions, noise t)."""
    tokenizer = WordTokenizer(VOCABULARY)
    images, captions, batch = make_batch(held_out_seeds(scenes))
    x0, noise = encoded_with_fixed_noise(codec, images)
    ids = torch.tensor([tokenizer.ids(caption) for caption in captions])
    outputs: list[torch.Tensor] = []
    with recorded_attention(outputs) as recorded:
        model((1 - t) * x0 + t * noise, torch.full((len(batch),), t), *text(ids))
    table = []
    for probabilities, output in zip(recorded[: model.config.depth], outputs, strict=False):  # double blocks first
        heads_mean = probabilities.mean(1)
        sums: dict[str, list[float]] = {column: [] for column in IMAGE_SIDE_COLUMNS}
        for row, scene in enumerate(batch):
            image_rows = heads_mean[row, MAX_TOKENS:]
            stats = image_side(image_rows[:, MAX_TOKENS:], image_rows[:, :MAX_TOKENS][:, ids[row] != 0],
                               output[row, MAX_TOKENS:], token_masks(scene))
            for column, values in stats.items():
                sums[column] += values
        table.append({column: sum(values) / len(values) if values else float("nan") for column, values in sums.items()})
    return table


@torch.no_grad()
def lone_encoding_similarity(text: TextEncoder, tokenizer: WordTokenizer) -> dict[str, float]:
    """Mean cosine between the lone encodings (the word as the whole caption, as ConceptAttention
    encodes a concept) of different shape words, of different colour words, and of "background"
    against the shape words. Near 1, the concept streams of different words start as copies."""
    def lone(words):
        return torch.stack([text(torch.tensor([tokenizer.ids(word)]))[0][0, 0] for word in words])

    def mean_cosine_between_words(words):  # each word against the others, not itself
        cosine = F.cosine_similarity(words[:, None], words[None], dim=-1)
        return ((cosine.sum() - cosine.diagonal().sum()) / (len(words) * (len(words) - 1))).item()

    shapes, colours, background = lone(SHAPES), lone(tuple(COLOURS)), lone(("background",))
    return {"shape words": mean_cosine_between_words(shapes), "colour words": mean_cosine_between_words(colours),
            "background vs shape words": F.cosine_similarity(background, shapes, dim=-1).mean().item()}


BINDING_COLUMNS = ("image->colour", "image->shape", "image->background", "colour->image", "shape->image",
                   "background->image")


@torch.no_grad()
def binding(model: FluxTwin, text: TextEncoder, codec: PatchPCACodec, scenes: int = 64
            ) -> dict[float, list[dict[str, float]]]:
    """{noise level: per double block {column: value} for BINDING_COLUMNS}, on two-object scenes."""
    tokenizer = WordTokenizer(VOCABULARY)
    images, captions, batch = make_batch(held_out_seeds(scenes))
    pairs = [i for i, scene in enumerate(batch) if len(scene.objects) == 2]
    pair_scenes, pair_words = [batch[i] for i in pairs], [tokenizer.words(captions[i]) for i in pairs]
    pair_masks = [token_masks(scene) for scene in pair_scenes]
    x0, noise = encoded_with_fixed_noise(codec, images[pairs])
    context, pooled = text(torch.tensor([tokenizer.ids(captions[i]) for i in pairs]))
    table = {}
    for t in BINDING_NOISE_LEVELS:
        with recorded_attention() as recorded:
            model((1 - t) * x0 + t * noise, torch.full((len(pairs),), t), context, pooled)
        table[t] = []
        for probabilities in recorded[: model.config.depth]:  # the double blocks come first
            heads_mean = probabilities.mean(1)
            image_to_text = heads_mean[:, MAX_TOKENS:, :MAX_TOKENS]
            text_to_image = heads_mean[:, :MAX_TOKENS, MAX_TOKENS:]
            row = {}
            for kind in ("colour", "shape"):
                row.update(object_word_binding(image_to_text, text_to_image, pair_scenes, pair_masks, pair_words,
                                               kind))
            row.update(background_word_binding(image_to_text, text_to_image, pair_scenes, pair_masks, pair_words))
            table[t].append(row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--scenes", type=int, default=64)
    parser.add_argument("--image-side", action="store_true",
                        help="only the image side: where image tokens attend and how their attention outputs "
                             "separate the objects, per double block (noise 0.5)")
    args = parser.parse_args()
    model, text, codec = load(args.weights)
    if args.image_side:
        print(f"image side, {args.scenes} held-out scenes, noise 0.5: an object's tokens' attention on their "
              "own object, the other, the background and the words; cosines of the attention outputs")
        print(f"{'block':>6} " + " ".join(f"{c:>24}" for c in IMAGE_SIDE_COLUMNS))
        for block, row in enumerate(image_side_table(model, text, codec, args.scenes)):
            print(f"{block:>6} " + " ".join(f"{row[c]:>24.2f}" for c in IMAGE_SIDE_COLUMNS))
        return
    losses = probe(model, text, codec, args.scenes)
    print(f"{'noise':>6} {'true':>7}  loss increase: {'shapes swapped':>15} {'colours swapped':>16} {'no caption':>11}")
    for t, row in losses.items():
        base = row["true caption"]
        rises = [f"{row[name] / base - 1:+.1%}" for name in ("shapes swapped", "colours swapped", "no caption")]
        print(f"{t:>6.1f} {base:>7.4f}  {'':>14}{rises[0]:>15} {rises[1]:>16} {rises[2]:>11}")
    similarity = lone_encoding_similarity(text, WordTokenizer(VOCABULARY))
    print("\nlone encodings, mean cosine: " + ", ".join(f"{k} {v:.2f}" for k, v in similarity.items()))
    print("\nbinding (0.5 = none): image->word = own word wins on the object's tokens; "
          "word->image = own object's share")
    print(f"{'noise':>6} {'block':>6} " + " ".join(f"{c:>17}" for c in BINDING_COLUMNS))
    for t, rows in binding(model, text, codec, args.scenes).items():
        for block, row in enumerate(rows):
            print(f"{t:>6.1f} {block:>6} " + " ".join(f"{row[c]:>17.2f}" for c in BINDING_COLUMNS))


if __name__ == "__main__":
    main()
