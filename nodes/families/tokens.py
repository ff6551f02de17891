"""Where a concept's own tokens sit in its text encoder's output, per tokenizer: T5 and CLIP-L/G word pieces,
the Qwen2.5, Qwen3 and Mistral chat templates (LongCat-Image's padded one and JoyImage's cut one too), LLaMA 3's,
and GPT-OSS's Harmony template (Lens).

Each concept is encoded alone; its map comes from its own tokens, never from start, end, padding or
chat-template tokens. Every function here takes (clip, name, tokens, length): the CLIP, the concept, its
`clip.tokenize(name, return_word_ids=True)` and how many positions its encoding has; it returns the positions
of the concept's own tokens, or refuses a text encoder it cannot align. A family names one of them as its
`token_alignment` (families/base.py).
"""

from ...ca_core.concepts import shown

QWEN_IM_START, QWEN_IM_END, QWEN_USER, QWEN_NEWLINE = 151644, 151645, 872, 198  # Qwen2.5's chat-template ids
QWEN_PAD = 151643  # Qwen2.5's "<|endoftext|>", its tokenizer's padding
JOYIMAGE_DROPPED = 34  # the template tokens JoyImage's encoder drops (JOYIMAGE_DROP_IDX): up to "<|im_start|>"
LLAMA_HEADER_START, LLAMA_USER, LLAMA_HEADER_END, LLAMA_BLANK_LINE, LLAMA_EOT = 128006, 882, 128007, 271, 128009
HARMONY_END, HARMONY_MESSAGE = 200007, 200008  # GPT-OSS's Harmony "<|end|>" and "<|message|>" ids

# The text encoder whose hidden states are the prompt context, by preference, where several are loaded
CONTEXT_KEYS = ("t5xxl",)


class TokenAlignmentError(ValueError):
    pass


def word_ids(tokens: dict) -> dict[str, list[int]]:
    """Each tokenizer's word id per position (0 for start, end and padding tokens)."""
    return {key: [t[2] for batch in value for t in batch] for key, value in tokens.items()}


def token_ids(batches) -> list[int]:
    return [t[0] for batch in batches for t in batch]


def unaligned(name: str, found: str, length: int, fix: str) -> TokenAlignmentError:
    return TokenAlignmentError(f"cannot align the tokens of concept {shown(name)}: {found}, {length} encoded positions; "
                               f"{fix}")


def word_pieces(clip, name: str, tokens: dict, length: int) -> list[int]:
    """T5's (or any single tokenizer's) word pieces, by the word ids of the tokenizer whose sequence is the
    context (Flux.1, Chroma, CogVideoX)."""
    words = word_ids(tokens)
    keys = [k for k in CONTEXT_KEYS if k in words] + [k for k in words if k not in CONTEXT_KEYS]
    for key in keys:
        if len(words[key]) == length:
            return [i for i, word in enumerate(words[key]) if word > 0]
    raise unaligned(name, f"tokenizers {sorted(words)}", length, "this text encoder is not supported for concepts")


def clip_then_t5_word_pieces(clip, name: str, tokens: dict, length: int) -> list[int]:
    """SD3's context: CLIP-L/G's 77 positions, then T5's. The concept's own CLIP-L/G tokens (the paper's SD3
    code), or its T5 tokens where no CLIP model is loaded (the context is then T5's alone)."""
    words = word_ids(tokens)
    encoder = getattr(clip, "cond_stage_model", None)
    has_clip = any(getattr(encoder, key, None) is not None for key in ("clip_l", "clip_g"))
    has_t5 = getattr(encoder, "t5xxl", None) is not None
    clip_words = words.get("l") or words.get("g") or []
    t5_words = words.get("t5xxl", [])
    if has_clip and length == len(clip_words) + (len(t5_words) if has_t5 else 0):
        return [i for i, word in enumerate(clip_words) if word > 0]
    if not has_clip and has_t5 and length == len(t5_words):
        return [i for i, word in enumerate(t5_words) if word > 0]
    raise unaligned(name, f"tokenizers {sorted(words)}", length,
                    "load SD3's own text encoders (CLIP-L, CLIP-G and/or T5-XXL) with TripleCLIPLoader")


def chat_template_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """Flux.2's Mistral and Qwen3 chat templates, tokenized whole as one chunk (word ids cannot tell the prompt
    from the template): after the tokens the concept shares with an empty prompt's template, up to the first
    token of the template's tail."""
    (key, batches), = tokens.items()
    ids = token_ids(batches)
    empty = token_ids(clip.tokenize("")[key])
    start = 0
    while start < min(len(ids), len(empty)) and ids[start] == empty[start]:
        start += 1
    tail = empty[start:]
    end = ids.index(tail[0], start) if tail and tail[0] in ids[start:] else len(ids)
    if len(ids) != length:
        raise unaligned(name, f"{len(ids)} tokens", length, "this text encoder is not supported for concepts")
    return list(range(start, end))


def qwen_template_head(ids: list[int]) -> int:
    """How many leading tokens ComfyUI's Qwen2.5-VL encoders drop: up to the second "<|im_start|>", and past its
    "user\\n"."""
    starts = [i for i, token in enumerate(ids) if token == QWEN_IM_START][:2]
    if not starts:
        return 0
    end = starts[-1]
    if len(ids) > end + 3 and ids[end + 1] == QWEN_USER and ids[end + 2] == QWEN_NEWLINE:
        end += 3
    return end


def qwen_chat_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """Qwen-Image's Qwen2.5-VL: the tokens between the template's head (which the encoder drops) and its
    "<|im_end|>", counted from the head."""
    (_, batches), = tokens.items()
    ids = token_ids(batches)
    head = qwen_template_head(ids)
    if len(ids) - head != length:
        raise unaligned(name, f"{len(ids) - head} tokens after the chat template's head", length,
                        "load Qwen-Image's own text encoder (qwen_2.5_vl_7b) with CLIPLoader type qwen_image")
    end = ids.index(QWEN_IM_END, head) if QWEN_IM_END in ids[head:] else len(ids)
    return list(range(0, end - head))


def padded_qwen_chat_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """LongCat-Image's Qwen2.5-VL: the prompt padded to 512 tokens inside the chat template, whose head and tail
    ("<|im_end|>\n<|im_start|>assistant\n") the encoder drops; the concept's own tokens come before the padding,
    counted from the head."""
    (_, batches), = tokens.items()
    ids = token_ids(batches)
    head = qwen_template_head(ids)
    tail = len(ids) - ids[::-1].index(QWEN_IM_END) - 1 if QWEN_IM_END in ids[head:] else len(ids)
    if tail - head != length:
        raise unaligned(name, f"{tail - head} tokens inside the chat template", length,
                        "load LongCat-Image's own text encoder (qwen_2.5_vl_7b) with CLIPLoader type longcat_image")
    return [i for i in range(length) if ids[head + i] != QWEN_PAD]


def joyimage_chat_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """JoyImage's Qwen3-VL: its encoder drops the template's first JOYIMAGE_DROPPED tokens, the system prompt, and
    keeps "user\\n" before the prompt; the concept's own tokens run from there to the template's "<|im_end|>",
    counted from the drop."""
    (_, batches), = tokens.items()
    ids = token_ids(batches)
    if len(ids) - JOYIMAGE_DROPPED != length:
        raise unaligned(name, f"{len(ids) - JOYIMAGE_DROPPED} tokens after the chat template's system prompt", length,
                        "load JoyImage's own text encoder (Qwen3-VL 8B) with CLIPLoader type joyimage")
    head = qwen_template_head(ids)
    end = ids.index(QWEN_IM_END, head) if QWEN_IM_END in ids[head:] else len(ids)
    return list(range(head - JOYIMAGE_DROPPED, end - JOYIMAGE_DROPPED))


def whole_qwen_chat_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """Boogu's Qwen3-VL: the chat template kept whole by the encoder, system prompt included (an empty prompt takes
    another system prompt, so chat_template_prompt cannot tell); the concept's own tokens run from after the user
    turn's "<|im_start|>user\\n" to its "<|im_end|>"."""
    (_, batches), = tokens.items()
    ids = token_ids(batches)
    if len(ids) != length:
        raise unaligned(name, f"{len(ids)} tokens", length,
                        "load Boogu's own text encoder (Qwen3-VL 8B) with CLIPLoader type boogu")
    head = qwen_template_head(ids)
    end = ids.index(QWEN_IM_END, head) if QWEN_IM_END in ids[head:] else len(ids)
    return list(range(head, end))


def llama_prompt_span(ids: list[int]) -> tuple[int, int]:
    """Where ComfyUI's HunyuanVideo encoder cuts the prompt out of its LLaMA 3 chat template: from after
    "<|start_header_id|>user<|end_header_id|>\\n\\n" up to and including the "<|eot_id|>" that ends it."""
    start, end = 0, len(ids)
    for i in range(len(ids) - 2):
        if ids[i:i + 3] == [LLAMA_HEADER_START, LLAMA_USER, LLAMA_HEADER_END]:
            start = i + 2
            if start + 1 < len(ids) and ids[start + 1] == LLAMA_BLANK_LINE:
                start += 2
            end = next((j + 1 for j in range(start, len(ids)) if ids[j] == LLAMA_EOT), len(ids))
            break
    return start, end


def qwen_prompt_span(ids: list[int]) -> tuple[int, int]:
    """The part of a Qwen2.5 chat template ComfyUI's encoder keeps: after its head, to the end."""
    return qwen_template_head(ids), len(ids)


# tokenizer key -> (the span its encoder keeps, the token that ends the prompt inside it)
CHAT_SPANS = {"llama": (llama_prompt_span, LLAMA_EOT), "qwen25_7b": (qwen_prompt_span, QWEN_IM_END)}


def llama_or_qwen_chat_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """HunyuanVideo's LLaMA 3 template, 1.5's and HunyuanImage 2.1's Qwen2.5 template: the concept's tokens inside
    the span the encoder keeps; T5-style word pieces for any other encoder."""
    for key, (find_span, end_of_prompt) in CHAT_SPANS.items():
        if key in tokens:
            ids = token_ids(tokens[key])
            start, end = find_span(ids)
            if end - start != length:
                raise unaligned(name, f"{end - start} tokens in its chat template's prompt", length,
                                "load HunyuanVideo's own text encoders with DualCLIPLoader type hunyuan_video "
                                "(1.5 and Image 2.1: their Qwen2.5-VL with CLIPLoader)")
            return [i for i in range(end - start) if ids[start + i] != end_of_prompt]
    return word_pieces(clip, name, tokens, length)


def harmony_chat_prompt(clip, name: str, tokens: dict, length: int) -> list[int]:
    """Lens's GPT-OSS Harmony template: the user's message opens after the template's third "<|message|>" (the
    system's, the developer's, the user's) and ends at its "<|end|>"; the encoder drops a fixed head (its
    txt_offset, 97 tokens: the head up to the user's "<|message|>"), so the concept's own tokens are counted from
    there."""
    (_, batches), = tokens.items()
    ids = token_ids(batches)
    dropped = len(ids) - length
    messages = [i for i, token in enumerate(ids) if token == HARMONY_MESSAGE]
    start = messages[2] + 1 if len(messages) > 2 else len(ids)
    end = ids.index(HARMONY_END, start) if HARMONY_END in ids[start:] else len(ids)
    if dropped < 0 or start < dropped or start >= end:
        raise unaligned(name, f"its message at tokens {start} to {end} of {len(ids)}, {dropped} dropped", length,
                        "load Lens's own text encoder (gpt-oss-20b) with CLIPLoader type lens")
    return list(range(start - dropped, end - dropped))
