"""The demo model's text encoder: word-level tokens, optionally through a small contextualising transformer."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

MAX_TOKENS = 16
PAD, UNK = "<pad>", "<unk>"


class WordTokenizer:
    """One token per word; lower-case, punctuation ignored; padded to MAX_TOKENS."""

    def __init__(self, vocabulary: tuple[str, ...]):
        if vocabulary[0] != PAD or UNK not in vocabulary:
            raise ValueError(f"the vocabulary must start with {PAD} and contain {UNK}")
        self.vocabulary = vocabulary
        self.index = {word: i for i, word in enumerate(vocabulary)}

    @staticmethod
    def all_words(text: str) -> list[str]:
        cleaned = "".join(ch if ch.isalnum() else " " for ch in text.lower())
        return cleaned.split()

    def words(self, text: str) -> list[str]:
        """The words the model reads: the first MAX_TOKENS."""
        return self.all_words(text)[:MAX_TOKENS]

    def ids(self, text: str) -> list[int]:
        """Token ids, padded; unknown words map to <unk>."""
        ids = [self.index.get(word, self.index[UNK]) for word in self.words(text)]
        return ids + [self.index[PAD]] * (MAX_TOKENS - len(ids))

    @property
    def known_words(self) -> tuple[str, ...]:
        return tuple(word for word in self.vocabulary if word not in (PAD, UNK))

    def unknown_words(self, text: str) -> list[str]:
        """The words of text outside the vocabulary (each would read as <unk>), each once, in order."""
        return list(dict.fromkeys(word for word in self.all_words(text) if word not in self.index))


@dataclass(frozen=True)
class TextConfig:
    """layers: transformer layers that mix the words (0: each state is its own word and position).
    pooled_summary: the pooled vector is the mean of the states (else zero).

    The defaults are the current design. Both channels let the model route around the attention
    that ConceptAttention reads: with a mean-pooled summary (fed to every block's modulation), all
    of the shape information reached the image through it (on held-out scenes, swapping the shape
    words in the pooled vector alone raised the loss as much as swapping them everywhere, in the
    token states alone by 0.1 %), and no shape word drew attention from or to its object. With
    contextualising layers, a word alone (how ConceptAttention encodes a concept) encoded nearly
    alike for every word (cosine 0.86), unlike the same word in a caption.
    """

    layers: int = 0
    pooled_summary: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, source: str) -> "TextConfig":
        """The config written by to_json; `source` names where it came from in the error."""
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: the text design is not JSON ({error})") from None
        expected = {"layers": int, "pooled_summary": bool}
        if not isinstance(fields, dict) or set(fields) != set(expected) or any(
                type(fields[name]) is not kind for name, kind in expected.items()):
            raise ValueError(f"{source}: the text design must be {{'layers': int, 'pooled_summary': bool}}, got "
                             f"{text!r}; it was written by a different version of demo_model, so re-export it")
        return cls(**fields)

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str = "weights file") -> "TextConfig":
        """The config stored with exported weights; files from before it was stored used the first design."""
        return cls.from_json(metadata["text"], source) if "text" in metadata else FIRST_DESIGN


FIRST_DESIGN = TextConfig(layers=2, pooled_summary=True)
RUN_FILE = "text.json"


def run_text_config(run: Path) -> TextConfig:
    """A training run's text design (runs begun before it was recorded used the first design)."""
    path = run / RUN_FILE
    return TextConfig.from_json(path.read_text(), str(path)) if path.exists() else FIRST_DESIGN


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64, config: TextConfig = FIRST_DESIGN, heads: int = 4):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.zeros(MAX_TOKENS, dim))
        self.encoder = None
        if config.layers:
            layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T] ids -> ([B, T, dim] states, [B, dim] pooled: mean over the real words, or zero)."""
        real = ids != 0
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        if self.encoder is not None:
            # an empty caption has no real key; let its pads attend to each other instead of to nothing
            key_padding = ~real & real.any(dim=1, keepdim=True)
            x = self.encoder(x, src_key_padding_mask=key_padding)
        states = self.final_norm(x)
        if not self.config.pooled_summary:
            return states, states.new_zeros(states.shape[0], states.shape[-1])
        weights = real.float() / real.float().sum(dim=1, keepdim=True).clamp_min(1)
        return states, torch.einsum("btc,bt->bc", states, weights)
