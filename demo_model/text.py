"""The demo model's text encoder: word-level tokens through a small contextualising transformer."""

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

    def words(self, text: str) -> list[str]:
        cleaned = "".join(ch if ch.isalnum() else " " for ch in text.lower())
        return cleaned.split()[:MAX_TOKENS]

    def ids(self, text: str) -> list[int]:
        """Token ids, padded; unknown words map to <unk>."""
        ids = [self.index.get(word, self.index[UNK]) for word in self.words(text)]
        return ids + [self.index[PAD]] * (MAX_TOKENS - len(ids))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.zeros(MAX_TOKENS, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T] ids -> ([B, T, dim] states, [B, dim] pooled mean over the real words)."""
        real = ids != 0
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        # an empty caption has no real key; let its pads attend to each other instead of to nothing
        key_padding = ~real & real.any(dim=1, keepdim=True)
        states = self.final_norm(self.encoder(x, src_key_padding_mask=key_padding))
        weights = real.float() / real.float().sum(dim=1, keepdim=True).clamp_min(1)
        return states, torch.einsum("btc,bt->bc", states, weights)
