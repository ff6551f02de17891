"""Load Concept Attention Demo Model: the small Flux we train and ship, as MODEL, CLIP and VAE.

The model is ComfyUI's own Flux class (schnell-style) at a small width; the text encoder is a
word-level transformer behind ComfyUI's CLIP, and the latent codec a fixed 8x8-patch PCA behind
ComfyUI's VAE, so CLIPTextEncode, EmptySD3LatentImage, VAEEncode/VAEDecode and the concept nodes
take exactly the paths they take with Flux.
"""

import json
import logging
from pathlib import Path

import comfy.latent_formats
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import comfy.supported_models_base
import torch
from comfy_api.latest import io
from safetensors import safe_open
from safetensors.torch import load_file

from ..demo_model import WEIGHTS
from ..demo_model.codec import PatchPCACodec
from ..demo_model.config import DemoConfig
from ..demo_model.text import FIRST_DESIGN, MAX_TOKENS, TextConfig, TextEncoder, WordTokenizer
from .families.flux import flux_unet_config
from .schema_options import search_aliases

log = logging.getLogger(__name__)

TOKENIZER_KEY = "demo"


class DemoLatentFormat(comfy.latent_formats.Flux):
    """The codec's latents already have unit variance; no Flux VAE colours for previews."""

    def __init__(self):
        # Flux's __init__ sets its VAE's scale and shift on the instance, over any class attribute
        super().__init__()
        self.scale_factor = 1.0
        self.shift_factor = 0.0
        self.latent_rgb_factors = None
        self.latent_rgb_factors_bias = None
        self.taesd_decoder_name = None


class DemoFluxConfig(comfy.supported_models.FluxSchnell):
    latent_format = DemoLatentFormat


class DemoTokenizer:
    """ComfyUI tokenizer interface over the word-level tokenizer (word ids: 1..n, 0 for pads). It has a
    closed vocabulary (nodes.encoding.ClosedVocabulary): concepts outside it are refused, and a prompt's
    unknown words are logged, as the model reads each of them as the same <unk>."""

    vocabulary: tuple[str, ...] = ()

    def __init__(self, embedding_directory=None, tokenizer_data={}):
        self.words = WordTokenizer(self.vocabulary)
        self.known_words = self.words.known_words

    def unknown_words(self, text: str) -> list[str]:
        return self.words.unknown_words(text)

    def tokenize_with_weights(self, text: str, return_word_ids: bool = False, **kwargs) -> dict:
        unknown = self.unknown_words(text)
        if unknown:
            log.warning("the Concept Attention demo model does not know the words %s of %r and reads each as "
                        "<unk>; it knows: %s", ", ".join(unknown), text, ", ".join(self.known_words))
        if len(self.words.all_words(text)) > MAX_TOKENS:
            log.warning("the Concept Attention demo model reads the first %d words of %r and drops the rest",
                        MAX_TOKENS, text)
        ids = self.words.ids(text)
        if return_word_ids:
            pairs = [(token, 1.0, i + 1 if token != 0 else 0) for i, token in enumerate(ids)]
        else:
            pairs = [(token, 1.0) for token in ids]
        return {TOKENIZER_KEY: [pairs]}

    def untokenize(self, token_weight_pair):
        return [(pair, self.words.vocabulary[pair[0]]) for pair in token_weight_pair]

    def state_dict(self) -> dict:
        return {}


class DemoTextModel(torch.nn.Module):
    """ComfyUI text-model interface over the demo TextEncoder: context states and a pooled vector."""

    vocab_size = 0
    dim = 0
    text_config = FIRST_DESIGN

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__()
        self.encoder = TextEncoder(self.vocab_size, dim=self.dim, config=self.text_config).to(device)
        self.dtypes = {torch.float32}
        self.execution_device = None

    def set_clip_options(self, options: dict) -> None:
        self.execution_device = options.get("execution_device", self.execution_device)

    def reset_clip_options(self) -> None:
        self.execution_device = None

    def encode_token_weights(self, token_weight_pairs: dict):
        batches = token_weight_pairs[TOKENIZER_KEY]
        device = self.execution_device or self.encoder.position_embedding.device
        ids = torch.tensor([[pair[0] for pair in batch] for batch in batches], device=device)
        with torch.no_grad():
            states, pooled = self.encoder(ids)
        # ComfyUI concatenates chunks of one prompt along the sequence axis
        return states.reshape(1, -1, states.shape[-1]), pooled[:1]

    def load_sd(self, sd: dict):
        return self.encoder.load_state_dict(sd, strict=True)


def load_demo_model(weights: Path = WEIGHTS):
    """(MODEL, CLIP, VAE) of the shipped demo model, on ComfyUI's devices."""
    if not weights.exists():
        raise FileNotFoundError(
            f"the demo model weights are missing ({weights}); reinstall the extension, or, in a clone of its "
            "repository, train them with: python -m research.train, then python -m research.export"
        )
    with safe_open(str(weights), framework="pt") as f:
        metadata = f.metadata()
    config = DemoConfig(**json.loads(metadata["config"]))
    vocabulary = tuple(json.loads(metadata["vocabulary"]))
    tensors = load_file(str(weights))
    part = {prefix: {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
            for prefix in ("model", "text", "codec")}

    model_config = DemoFluxConfig(flux_unet_config(**config.comfy_unet_config()))
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    model.diffusion_model.load_state_dict(host_parameter_names(part["model"], model.diffusion_model), strict=True)
    device = comfy.model_management.get_torch_device()
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=device,
                                               offload_device=comfy.model_management.unet_offload_device())

    tokenizer = type("DemoWordTokenizer", (DemoTokenizer,), {"vocabulary": vocabulary})
    text_model = type("DemoWordEncoder", (DemoTextModel,), {"vocab_size": len(vocabulary),
                                                           "dim": config.context_in_dim,
                                                           "text_config": TextConfig.from_metadata(metadata, str(weights))})
    clip = comfy.sd.CLIP(target=comfy.supported_models_base.ClipTarget(tokenizer, text_model),
                         model_options={"dtype": torch.float32})
    clip.cond_stage_model.load_sd(part["text"])
    return patcher, clip, CodecVAE(PatchPCACodec.from_state_dict(part["codec"]))


# Parameters ComfyUI renamed between releases: (older name, newer name). Flux's q/k RMSNorm scale
# became an RMSNorm weight in 0.33.
RENAMED_PARAMETERS = ((".query_norm.scale", ".query_norm.weight"), (".key_norm.scale", ".key_norm.weight"))


def host_parameter_names(tensors: dict, module: torch.nn.Module) -> dict:
    """The weights under the names this host's module expects, so one weights file loads on every
    supported ComfyUI. Names the module knows, and names no rename explains, pass unchanged (a
    strict load then reports them)."""
    expected = set(module.state_dict())
    renamed = {}
    for name, tensor in tensors.items():
        if name not in expected:
            for old, new in RENAMED_PARAMETERS:
                for src, dst in ((old, new), (new, old)):
                    if name.endswith(src) and name[: -len(src)] + dst in expected:
                        name = name[: -len(src)] + dst
        renamed[name] = tensor
    return renamed


class CodecModule(torch.nn.Module):
    """ComfyUI's VAE calls encode on [-1, 1] pixels and decode back to [-1, 1]."""

    def __init__(self, codec: PatchPCACodec):
        super().__init__()
        self.codec = codec

    def encode(self, pixels: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.codec.encode((pixels + 1) / 2)

    def decode(self, latents: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.codec.decode(latents) * 2 - 1


class CodecVAE(comfy.sd.VAE):
    """ComfyUI's VAE around the PCA codec: 16 channels at 1/8 resolution, like Flux's."""

    def __init__(self, codec: PatchPCACodec):
        # ComfyUI's pixel-space VAE sets up every generic attribute; then the codec takes its place.
        super().__init__(sd={"pixel_space_vae": torch.tensor(1.0)}, dtype=torch.float32)
        self.first_stage_model = CodecModule(codec).eval()
        self.downscale_ratio = self.upscale_ratio = 8
        self.latent_channels = 16
        self.memory_used_encode = lambda shape, dtype: 64 * shape[2] * shape[3] * 4
        self.memory_used_decode = lambda shape, dtype: 64 * 64 * shape[2] * shape[3] * 4
        self.patcher = comfy.model_patcher.ModelPatcher(self.first_stage_model, load_device=self.device,
                                                        offload_device=comfy.model_management.vae_offload_device())


class LoadDemoModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionLoadDemoModel",
            display_name="Load Concept Attention Demo Model",
            category="conceptattention",
            description="A small Flux trained on coloured shapes, shipped with the extension: runs on any "
                        "CPU in seconds. Prompts like 'a red circle and a blue square on a gray background'.",
            **search_aliases("demo", "shapes model", "tiny flux", "cpu model"),
            inputs=[],
            outputs=[
                io.Model.Output(display_name="MODEL", tooltip="The demo diffusion model, a small Flux."),
                io.Clip.Output(display_name="CLIP", tooltip="The demo text encoder; it knows only shape and colour "
                                                            "words, such as 'red circle' or 'background'."),
                io.Vae.Output(display_name="VAE", tooltip="The demo image codec, 16 channels at 1/8 resolution, "
                                                          "like Flux's VAE."),
            ],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(*load_demo_model())
