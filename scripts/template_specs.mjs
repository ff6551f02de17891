// The shipped workflow templates' source, as the builder (build_templates.mjs) lays them out in
// ComfyUI's own frontend. Edit here, then regenerate workflows/*.json and their thumbnails:
//   CA_COMFYUI_DIR=<ComfyUI 0.8.0> <its python> scripts/build_templates.py [template ...]
// (0.8.0: the oldest host with Flux.2's nodes, which flux2_concept_maps uses; the other templates
// load on 0.3.64 as well.)
// A template that needs a newer ComfyUI than the oldest supported one declares it as `minHost` (the
// oldest ComfyUI version that has every node and option it uses); the browser tier leaves it out on
// older hosts, checks that they do lack something it uses, and says so in its output. One newer than
// 0.8.0 is built on its host, by name (cogvideox_concept_mask: CA_COMFYUI_DIR=<ComfyUI 0.33.0>).
// Model file names, folders and download addresses are those of ComfyUI's official Flux, Flux.2, Chroma,
// SD3.5 and Qwen-Image templates (comfyui_workflow_templates: flux_schnell, flux_dev_full_text_to_image,
// flux_dev_example, flux_fill_inpaint_example, image_flux2, image_flux2_klein_text_to_image,
// image_chroma_text_to_image, sd3.5_simple_example, image_qwen_image, image_qwen_image_edit_2509), and for
// the video templates those of its HunyuanVideo template (hunyuan_video_text_to_video) and of ComfyUI
// 0.33's own CogVideoX workflow (its "Video Inpaint (VOID)" blueprint: pass 1's diffusion model, text
// encoder, VAE, conditioning and sampler); Z-Image's those of 0.33's "Text to Image (Z-Image-Turbo)" blueprint,
// Lumina 2's those of ComfyUI's Lumina 2 example (its all-in-one checkpoint), Krea 2's those of Comfy-Org's Krea-2
// repository.

const HF = "https://huggingface.co";
const MODEL = {
  schnellCheckpoint: { name: "flux1-schnell-fp8.safetensors", directory: "checkpoints",
    url: `${HF}/Comfy-Org/flux1-schnell/resolve/main/flux1-schnell-fp8.safetensors?download=true` },
  dev: { name: "flux1-dev.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors` },
  fill: { name: "flux1-fill-dev.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/flux1-dev/resolve/main/split_files/diffusion_models/flux1-fill-dev.safetensors` },
  chroma: { name: "Chroma1-HD.safetensors", directory: "diffusion_models",
    url: `${HF}/lodestones/Chroma1-HD/resolve/main/Chroma1-HD.safetensors` },
  clipL: { name: "clip_l.safetensors", directory: "text_encoders",
    url: `${HF}/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors` },
  t5: { name: "t5xxl_fp16.safetensors", directory: "text_encoders",
    url: `${HF}/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors` },
  ae: { name: "ae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/ae.safetensors` },
  flux2Dev: { name: "flux2_dev_fp8mixed.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/flux2-dev/resolve/main/split_files/diffusion_models/flux2_dev_fp8mixed.safetensors` },
  mistral: { name: "mistral_3_small_flux2_bf16.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/flux2-dev/resolve/main/split_files/text_encoders/mistral_3_small_flux2_bf16.safetensors` },
  flux2Vae: { name: "flux2-vae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors` },
  sd35Large: { name: "sd3.5_large_fp8_scaled.safetensors", directory: "checkpoints",
    url: `${HF}/Comfy-Org/stable-diffusion-3.5-fp8/resolve/main/sd3.5_large_fp8_scaled.safetensors` },
  qwenImage: { name: "qwen_image_fp8_e4m3fn.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/diffusion_models/qwen_image_fp8_e4m3fn.safetensors` },
  qwenImageEdit: { name: "qwen_image_edit_2509_fp8_e4m3fn.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/Qwen-Image-Edit_ComfyUI/resolve/main/split_files/diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors` },
  qwenTextEncoder: { name: "qwen_2.5_vl_7b_fp8_scaled.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors` },
  qwenVae: { name: "qwen_image_vae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/qwen_image_vae.safetensors` },
  hunyuanVideo: { name: "hunyuan_video_t2v_720p_bf16.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/HunyuanVideo_repackaged/resolve/main/split_files/diffusion_models/hunyuan_video_t2v_720p_bf16.safetensors?download=true` },
  llavaLlama3: { name: "llava_llama3_fp8_scaled.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/HunyuanVideo_repackaged/resolve/main/split_files/text_encoders/llava_llama3_fp8_scaled.safetensors?download=true` },
  hunyuanVideoVae: { name: "hunyuan_video_vae_bf16.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/HunyuanVideo_repackaged/resolve/main/split_files/vae/hunyuan_video_vae_bf16.safetensors?download=true` },
  zImageTurbo: { name: "z_image_turbo_bf16.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/z_image_turbo/resolve/main/split_files/diffusion_models/z_image_turbo_bf16.safetensors` },
  qwen3: { name: "qwen_3_4b.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/z_image_turbo/resolve/main/split_files/text_encoders/qwen_3_4b.safetensors` },
  zImageVae: { name: "ae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/z_image_turbo/resolve/main/split_files/vae/ae.safetensors` },
  lumina2: { name: "lumina_2.safetensors", directory: "checkpoints",
    url: `${HF}/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/all_in_one/lumina_2.safetensors` },
  krea2Turbo: { name: "krea2_turbo_fp8_scaled.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/Krea-2/resolve/main/diffusion_models/krea2_turbo_fp8_scaled.safetensors` },
  qwen3vl4b: { name: "qwen3vl_4b_fp8_scaled.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/Krea-2/resolve/main/text_encoders/qwen3vl_4b_fp8_scaled.safetensors` },
  krea2Vae: { name: "qwen_image_vae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/Krea-2/resolve/main/vae/qwen_image_vae.safetensors` },
  // ComfyUI reads a CogVideoX transformer only in its own single-file layout, not diffusers' folder; the
  // public files in that layout are Comfy-Org's VOID pair (void-model), CogVideoX-Fun V1.5 5B inpainting
  // fine-tunes. Pass 1 generates what its mask marks: marking every pixel of a blank clip makes it text to
  // video, as CogVideoX-Fun makes text to video with its inpainting models.
  cogvideox: { name: "void_pass1.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/void-model/resolve/main/diffusion_models/void_pass1.safetensors` },
  cogvideoxVae: { name: "cogvideox_vae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/void-model/resolve/main/vae/cogvideox_vae.safetensors` },
};

const NEGATIVE = { color: "#322", bgcolor: "#533" };
const OURS = { color: "#233", bgcolor: "#355" };

const schnellCheckpoint = (pos) => ({
  type: "CheckpointLoaderSimple", pos, size: [320, 0], models: [MODEL.schnellCheckpoint],
  widgets: { ckpt_name: MODEL.schnellCheckpoint.name },
});
const unet = (model, pos, title) => ({
  type: "UNETLoader", pos, size: [320, 0], title, models: [model], widgets: { unet_name: model.name, weight_dtype: "default" },
});
const dualClip = (pos) => ({
  type: "DualCLIPLoader", pos, size: [320, 0], models: [MODEL.clipL, MODEL.t5],
  widgets: { clip_name1: MODEL.clipL.name, clip_name2: MODEL.t5.name, type: "flux" },
});
// Chroma's one text encoder: T5-XXL alone, with CLIPLoader's "chroma" type.
const chromaClip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.t5], widgets: { clip_name: MODEL.t5.name, type: "chroma" },
});
// Flux.2 dev's one text encoder: Mistral Small 3, with CLIPLoader's "flux2" type (klein's Qwen3 uses it too).
const flux2Clip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.mistral], widgets: { clip_name: MODEL.mistral.name, type: "flux2" },
});
// Qwen-Image's one text encoder: Qwen2.5-VL 7B, with CLIPLoader's "qwen_image" type.
const qwenClip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.qwenTextEncoder],
  widgets: { clip_name: MODEL.qwenTextEncoder.name, type: "qwen_image" },
});
const flowShift = (pos, shift) => ({ type: "ModelSamplingAuraFlow", pos, size: [320, 0], title: "Flow Shift",
  widgets: { shift } });
const vae = (pos, model = MODEL.ae) => ({
  type: "VAELoader", pos, size: [320, 0], models: [model], widgets: { vae_name: model.name },
});
const prompt = (text, pos, title = "Prompt", extra = {}) => ({
  type: "CLIPTextEncode", pos, size: [420, 150], title, widgets: { text }, ...extra,
});
const negative = (text, pos, title) => prompt(text, pos, title, NEGATIVE);
const sampler = (pos, widgets) => ({
  type: "ConceptAttentionSampler", pos, ...OURS,
  widgets: { sampler_name: "euler", scheduler: "simple", ...widgets },
});
const saliency = (pos) => ({ type: "ConceptAttentionSaliencyMap", pos, size: [420, 130], ...OURS });
const conceptMask = (pos, widgets) => ({ type: "ConceptAttentionMask", pos, size: [320, 300], ...OURS, widgets });
const conceptModel = (pos, widgets, title) => ({ type: "ConceptAttentionModel", pos, size: [320, 0], title, ...OURS, widgets });
const conceptMaps = (pos, title) => ({ type: "ConceptAttentionMaps", pos, size: [240, 0], title, ...OURS });
// HunyuanVideo's two text encoders: CLIP-L and LLaVA-Llama-3, with DualCLIPLoader's "hunyuan_video" type.
const hunyuanVideoClip = (pos) => ({
  type: "DualCLIPLoader", pos, size: [320, 0], models: [MODEL.clipL, MODEL.llavaLlama3],
  widgets: { clip_name1: MODEL.clipL.name, clip_name2: MODEL.llavaLlama3.name, type: "hunyuan_video" },
});
// CogVideoX's one text encoder: T5-XXL, with CLIPLoader's "cogvideox" type (its 226-token padding).
const zImageClip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.qwen3], widgets: { clip_name: MODEL.qwen3.name, type: "lumina2" },
});
const cogvideoxClip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.t5], widgets: { clip_name: MODEL.t5.name, type: "cogvideox" },
});
const saveClip = (pos, title, prefix, fps) => ({
  type: "SaveAnimatedWEBP", pos, size: [320, 300], title,
  widgets: { filename_prefix: prefix, fps, lossless: false, quality: 90, method: "default" },
});
const note = (pos, size, text) => ({ type: "MarkdownNote", pos, size, title: "About this workflow", widgets: { text } });

// The links every generating template shares: loaders -> prompts -> Concept Attention Sampler ->
// decode, and its maps -> Saliency Map (with the decoded image) and Concept Mask. Each source is
// [node, output]; the prompt nodes are named by `positive` and `negative`, and `conditioning` names
// the node whose CONDITIONING the sampler gets as its positive (the positive prompt itself unless a
// node such as FluxGuidance sits in between; the caller links that one).
const generationLinks = ({ model, clip, vae }, positive = "positive", negative = "negative",
  conditioning = positive) => [
  [...model, "sampler", "model"],
  [...clip, "sampler", "clip"],
  [...clip, positive, "clip"],
  [...clip, negative, "clip"],
  [...vae, "decode", "vae"],
  [conditioning, "CONDITIONING", "sampler", "positive"],
  [negative, "CONDITIONING", "sampler", "negative"],
  ["latent", "LATENT", "sampler", "latent_image"],
  ["sampler", "LATENT", "decode", "samples"],
  ["sampler", "CONCEPT_MAPS", "saliency", "concept_maps"],
  ["decode", "IMAGE", "saliency", "image"],
  ["sampler", "CONCEPT_MAPS", "mask", "concept_maps"],
];
const DEMO_LOADER = { model: ["loader", "MODEL"], clip: ["loader", "CLIP"], vae: ["loader", "VAE"] };
const CHECKPOINT = { model: ["checkpoint", "MODEL"], clip: ["checkpoint", "CLIP"], vae: ["checkpoint", "VAE"] };
const SEPARATE_LOADERS = { model: ["dev", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const CHROMA_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const FLUX2_LOADERS = { model: ["flux2", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const SD35_LOADERS = { model: ["shift", "MODEL"], clip: ["checkpoint", "CLIP"], vae: ["checkpoint", "VAE"] };
const QWEN_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const Z_IMAGE_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const Z_IMAGE_FILES = `**Model files** (as ComfyUI's official Z-Image-Turbo template lists them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  z_image_turbo_bf16.safetensors
├── text_encoders/     qwen_3_4b.safetensors
└── vae/               ae.safetensors
\`\`\``;
// Lumina 2 reads its prompt after this system prompt, as ComfyUI's official Lumina 2 template writes it
const LUMINA2_SYSTEM_PROMPT = "You are an assistant designed to generate superior images with the superior degree of "
  + "image-text alignment based on textual prompts or user prompts. <Prompt Start> ";
const HUNYUAN_VIDEO_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const QWEN_FILES = (model) => `**Model files** (as ComfyUI's official Qwen-Image templates list them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  ${model}
├── text_encoders/     qwen_2.5_vl_7b_fp8_scaled.safetensors
└── vae/               qwen_image_vae.safetensors
\`\`\``;

const FLUX_FILES = `**Model files** (ComfyUI's official Flux templates use the same names):

\`\`\`
ComfyUI/models/
├── diffusion_models/  flux1-dev.safetensors%EXTRA%
├── text_encoders/     clip_l.safetensors, t5xxl_fp16.safetensors
└── vae/               ae.safetensors
\`\`\``;

// The video templates' links after the maps: the decoded clip saved, the heatmap clips saved, and one
// concept's per-frame mask recolouring it in every frame: a tinted copy of the clip (ImageBlend multiply
// with a plain colour) composited over the clip inside the mask. `clip` names the node whose IMAGE is the
// decoded clip.
const recolourLinks = (clip) => [
  [clip, "IMAGE", "generated", "images"],
  ["saliency", "heatmaps", "heatmapClips", "images"],
  [clip, "IMAGE", "tint", "image1"],
  ["colour", "IMAGE", "tint", "image2"],
  [clip, "IMAGE", "composite", "destination"],
  ["tint", "IMAGE", "composite", "source"],
  ["mask", "MASK", "composite", "mask"],
  ["composite", "IMAGE", "save", "images"],
];

export const WORKFLOWS = {
  // The same pipeline and settings as workflows/api/demo_shapes.json, which scripts/demo.sh runs
  // headless (test_browser.py checks that they agree).
  demo_shapes: {
    nodes: {
      loader: { type: "ConceptAttentionLoadDemoModel", pos: [20, 40], size: [290, 0], ...OURS },
      positive: prompt("a red circle and a blue square on a gray background", [330, 40]),
      negative: negative("", [330, 240], "Negative prompt (empty)"),
      latent: { type: "EmptySD3LatentImage", pos: [330, 440], widgets: { width: 256, height: 256, batch_size: 1 } },
      sampler: sampler([800, 40], { seed: 7, steps: 12, cfg: 3.0, concepts: "circle, square, background" }),
      decode: { type: "VAEDecode", pos: [1160, 40] },
      generated: { type: "PreviewImage", pos: [1160, 140], size: [240, 290], title: "Generated image" },
      saliency: saliency([1530, 40]),
      mask: conceptMask([1160, 470], { concepts: "circle", grow: 2, blur: 1.0, fill_holes: true, min_region: 1024 }),
      orange: { type: "EmptyImage", pos: [800, 660], title: "Orange",
        widgets: { width: 256, height: 256, batch_size: 1, color: 0xff9900 } },
      composite: { type: "ImageCompositeMasked", pos: [1530, 600], title: "Circle recoloured" },
      save: { type: "SaveImage", pos: [1850, 600], size: [260, 300],
        widgets: { filename_prefix: "concept_attention_demo/recoloured" } },
      about: note([20, 200], [290, 400], `### ConceptAttention demo (runs on any CPU)

The **demo model** is a tiny Flux trained on coloured shapes, shipped with the extension.

- **Concept Attention Sampler** generates the image exactly like KSampler and maps the concepts
  \`circle, square, background\`.
- **Saliency Map** shows one heatmap per concept; click one to enlarge it.
- **Concept Mask** turns the \`circle\` map into a MASK, used here to paint the circle orange.

Try other prompts: colours red, green, blue, yellow, purple, orange; shapes circle, square,
triangle, cross, star; backgrounds gray, white, black.`),
    },
    links: [
      ...generationLinks(DEMO_LOADER),
      ["decode", "IMAGE", "generated", "images"],
      ["decode", "IMAGE", "composite", "destination"],
      ["orange", "IMAGE", "composite", "source"],
      ["mask", "MASK", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  flux_schnell_concept_maps: {
    nodes: {
      checkpoint: schnellCheckpoint([20, 40]),
      positive: prompt("a corgi wearing a red scarf sitting on green grass in a park, a yellow ball next to it, "
        + "blue sky with white clouds", [390, 40]),
      negative: negative("", [390, 240], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 42, steps: 4, cfg: 1.0, concepts: "dog, scarf, grass, ball, sky" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/flux_schnell" } },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 570], { concepts: "dog" }),
      about: note([20, 220], [340, 380], `### Flux.1 schnell with concept maps

Generates with Flux.1 schnell (4 steps, cfg 1) and maps the concepts
\`dog, scarf, grass, ball, sky\` while sampling. The image is exactly what KSampler gives.

- **Saliency Map**: one labelled heatmap per concept; click to enlarge.
- **Concept Mask**: the \`dog\` mask, ready for inpainting or compositing.

**Model file**: \`ComfyUI/models/checkpoints/flux1-schnell-fp8.safetensors\` (the checkpoint of
ComfyUI's official Flux schnell template).`),
    },
    links: [
      ...generationLinks(CHECKPOINT),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  photo_to_mask_inpaint: {
    nodes: {
      image: { type: "LoadImage", pos: [20, 40], size: [320, 380], widgets: { image: "example.png" } },
      dev: unet(MODEL.dev, [20, 480], "Load Flux.1 dev (for the maps)"),
      clip: dualClip([20, 610]),
      vae: vae([20, 820]),
      segment: { type: "ConceptAttentionSegmentImage", pos: [390, 40], size: [300, 0], ...OURS,
        widgets: { concepts: "girl, dress, grass, sky" } },
      saliency: saliency([1090, 40]),
      mask: conceptMask([740, 40], { concepts: "dress", grow: 16, blur: 4, fill_holes: true }),
      fill: unet(MODEL.fill, [390, 620], "Load Flux.1 Fill dev (for inpainting)"),
      diffdiff: { type: "DifferentialDiffusion", pos: [390, 760], size: [320, 0] },
      positive: prompt("a girl in a yellow raincoat standing on green grass under a blue sky", [390, 890],
        "Prompt for the inpainted image"),
      guidance: { type: "FluxGuidance", pos: [860, 890], widgets: { guidance: 30 } },
      zero: { type: "ConditioningZeroOut", pos: [860, 1010], ...NEGATIVE },
      inpaint: { type: "InpaintModelConditioning", pos: [1100, 620], widgets: { noise_mask: true } },
      ksampler: { type: "KSampler", pos: [1400, 620],
        widgets: { seed: 0, steps: 20, cfg: 1.0, sampler_name: "euler",
          scheduler: "normal", denoise: 1.0 } },
      decode: { type: "VAEDecode", pos: [1720, 620] },
      save: { type: "SaveImage", pos: [1720, 720], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/inpaint" } },
      about: note([1560, 40], [460, 500], `### Photo → concept mask → Flux Fill inpainting

1. **Concept Attention Segment Image** maps \`girl, dress, grass, sky\` on the loaded photo
   (one partial pass of Flux.1 dev at noise level 0.5; no sampling).
2. **Concept Mask** picks \`dress\`, grows it by 16 px and feathers it.
3. **Flux.1 Fill dev** repaints the masked region from the prompt (the official Flux Fill
   inpainting settings: FluxGuidance 30, Differential Diffusion, 20 steps).

Load your own photo and change the concepts and the mask's concept to match it.

${FLUX_FILES.replace("%EXTRA%", ", flux1-fill-dev.safetensors")}`),
    },
    links: [
      ["image", "IMAGE", "segment", "image"],
      ["dev", "MODEL", "segment", "model"],
      ["clip", "CLIP", "segment", "clip"],
      ["vae", "VAE", "segment", "vae"],
      ["segment", "CONCEPT_MAPS", "saliency", "concept_maps"],
      ["image", "IMAGE", "saliency", "image"],
      ["segment", "CONCEPT_MAPS", "mask", "concept_maps"],
      ["fill", "MODEL", "diffdiff", "model"],
      ["clip", "CLIP", "positive", "clip"],
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ["positive", "CONDITIONING", "zero", "conditioning"],
      ["guidance", "CONDITIONING", "inpaint", "positive"],
      ["zero", "CONDITIONING", "inpaint", "negative"],
      ["vae", "VAE", "inpaint", "vae"],
      ["image", "IMAGE", "inpaint", "pixels"],
      ["mask", "MASK", "inpaint", "mask"],
      ["diffdiff", "MODEL", "ksampler", "model"],
      ["inpaint", "positive", "ksampler", "positive"],
      ["inpaint", "negative", "ksampler", "negative"],
      ["inpaint", "latent", "ksampler", "latent_image"],
      ["ksampler", "LATENT", "decode", "samples"],
      ["vae", "VAE", "decode", "vae"],
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  composite_background: {
    nodes: {
      checkpoint: schnellCheckpoint([20, 40]),
      subject: prompt("a photo of a ginger cat sitting on a wooden chair in a living room", [390, 40],
        "Subject prompt"),
      negative: negative("", [390, 240], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 7, steps: 4, cfg: 1.0, concepts: "cat, chair, room" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      generated: { type: "PreviewImage", pos: [1130, 140], size: [260, 300], title: "Generated subject" },
      saliency: saliency([1430, 40]),
      mask: conceptMask([1130, 500], { concepts: "cat, chair", grow: 8, blur: 3, fill_holes: true }),
      background: prompt("a sunny tropical beach with palm trees and turquoise sea, photo", [390, 620],
        "New background prompt"),
      bgsampler: { type: "KSampler", pos: [860, 620], title: "KSampler (background)",
        widgets: { seed: 11, steps: 4, cfg: 1.0, sampler_name: "euler",
          scheduler: "simple", denoise: 1.0 } },
      bgdecode: { type: "VAEDecode", pos: [1500, 710] },
      composite: { type: "ImageCompositeMasked", pos: [1500, 500], title: "Subject over the new background" },
      save: { type: "SaveImage", pos: [1840, 500], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/new_background" } },
      about: note([20, 220], [340, 380], `### Replace the background

The sampler maps \`cat, chair, room\` while it generates the subject. **Concept Mask** takes the
union of \`cat, chair\`, fills holes, grows it by 8 px and feathers it (blur 3) so the edge
blends. **ImageCompositeMasked** puts the subject (source) over a second generation (destination).

Tune **grow** and **blur** on the mask and re-run: only the mask and the composite run again.

**Model file**: \`ComfyUI/models/checkpoints/flux1-schnell-fp8.safetensors\`.`),
    },
    links: [
      ...generationLinks(CHECKPOINT, "subject"),
      ["checkpoint", "CLIP", "background", "clip"],
      ["checkpoint", "VAE", "bgdecode", "vae"],
      ["checkpoint", "MODEL", "bgsampler", "model"],
      ["decode", "IMAGE", "generated", "images"],
      ["background", "CONDITIONING", "bgsampler", "positive"],
      ["negative", "CONDITIONING", "bgsampler", "negative"],
      ["latent", "LATENT", "bgsampler", "latent_image"],
      ["bgsampler", "LATENT", "bgdecode", "samples"],
      ["bgdecode", "IMAGE", "composite", "destination"],
      ["decode", "IMAGE", "composite", "source"],
      ["mask", "MASK", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  flux_dev_cfg_batch: {
    nodes: {
      dev: unet(MODEL.dev, [20, 40], "Load Flux.1 dev"),
      clip: dualClip([20, 170]),
      vae: vae([20, 380]),
      positive: prompt("a red fox sitting in a snowy pine forest at sunrise, detailed fur", [390, 40]),
      negative: negative("blurry, low quality, cartoon, text, watermark", [390, 240], "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], title: "Two images",
        widgets: { width: 1024, height: 1024, batch_size: 2 } },
      sampler: sampler([860, 40], { seed: 3, steps: 20, cfg: 2.0, concepts: "fox, snow, trees, sky" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [420, 300],
        widgets: { filename_prefix: "ConceptAttention/flux_dev_cfg" } },
      saliency: saliency([1590, 40]),
      mask: conceptMask([1130, 500], { concepts: "fox" }),
      about: note([20, 500], [340, 330], `### Flux.1 dev with CFG and a batch of two

Real classifier-free guidance (cfg 2.0, with a negative prompt; Flux's distilled guidance stays
at its default 3.5) and two images in one batch. Each image gets its own maps: the **Saliency Map**
gallery lists \`fox, snow, trees, sky\` for image 1, then for image 2, and **Concept Mask** gives a
mask for each image. The maps come from the positive prompt; set the sampler's \`prompt\` to
\`negative\` or \`both\` for the negative prompt's maps.

${FLUX_FILES.replace("%EXTRA%", "")}`),
    },
    links: [
      ...generationLinks(SEPARATE_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // ComfyUI's official Flux.1 dev template (flux_dev_example: SamplerCustomAdvanced, BasicGuider,
  // FluxGuidance 3.5, ModelSamplingFlux, euler / simple, 20 steps) with the Concept Attention Model
  // between ModelSamplingFlux and the guider, and Concept Maps after the sampler.
  flux_dev_sampler_custom_advanced: {
    nodes: {
      dev: unet(MODEL.dev, [20, 40], "Load Flux.1 dev"),
      clip: dualClip([20, 170]),
      vae: vae([20, 380]),
      shift: { type: "ModelSamplingFlux", pos: [20, 490], size: [320, 0],
        widgets: { max_shift: 1.15, base_shift: 0.5, width: 1024, height: 1024 } },
      camodel: conceptModel([390, 40], { concepts: "cat, hat, table, window" }),
      positive: prompt("a black cat wearing a tiny straw hat sitting on a wooden table next to a window, "
        + "soft afternoon light, photograph", [390, 400]),
      guidance: { type: "FluxGuidance", pos: [390, 600], size: [420, 0], widgets: { guidance: 3.5 } },
      guider: { type: "BasicGuider", pos: [860, 40], size: [240, 0] },
      noise: { type: "RandomNoise", pos: [860, 140], size: [240, 0], widgets: { noise_seed: 21 } },
      select: { type: "KSamplerSelect", pos: [860, 270], size: [240, 0], widgets: { sampler_name: "euler" } },
      scheduler: { type: "BasicScheduler", pos: [860, 370], size: [240, 0],
        widgets: { scheduler: "simple", steps: 20, denoise: 1.0 } },
      latent: { type: "EmptySD3LatentImage", pos: [860, 540], size: [240, 0],
        widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sca: { type: "SamplerCustomAdvanced", pos: [1140, 40], size: [260, 0] },
      maps: conceptMaps([1140, 330]),
      decode: { type: "VAEDecode", pos: [1440, 40] },
      save: { type: "SaveImage", pos: [1440, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/flux_dev_custom" } },
      saliency: { ...saliency([1800, 40]), widgets: { label: true } },
      mask: conceptMask([1440, 570], { concepts: "cat" }),
      about: note([20, 650], [340, 420], `### Concept maps from any sampler

ComfyUI's own Flux.1 dev template (SamplerCustomAdvanced, BasicGuider, FluxGuidance 3.5) with two
nodes added:

- **Concept Attention Model** between the model and the guider / scheduler: the image stays
  exactly as without it.
- **Concept Maps** takes its \`recorder\` and the sampler's \`output\` LATENT and gives the maps of
  that very run (\`cat, hat, table, window\`).

The same two nodes work with KSampler, KSamplerAdvanced, CFGGuider and other packs' samplers.

${FLUX_FILES.replace("%EXTRA%", "")}`),
    },
    links: [
      ["dev", "MODEL", "shift", "model"],
      ["shift", "MODEL", "camodel", "model"],
      ["clip", "CLIP", "camodel", "clip"],
      ["clip", "CLIP", "positive", "clip"],
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ["camodel", "MODEL", "guider", "model"],
      ["guidance", "CONDITIONING", "guider", "conditioning"],
      ["camodel", "MODEL", "scheduler", "model"],
      ["noise", "NOISE", "sca", "noise"],
      ["guider", "GUIDER", "sca", "guider"],
      ["select", "SAMPLER", "sca", "sampler"],
      ["scheduler", "SIGMAS", "sca", "sigmas"],
      ["latent", "LATENT", "sca", "latent_image"],
      ["camodel", "recorder", "maps", "recorder"],
      ["sca", "output", "maps", "latent"],
      ["sca", "output", "decode", "samples"],
      ["vae", "VAE", "decode", "vae"],
      ["decode", "IMAGE", "save", "images"],
      ["maps", "CONCEPT_MAPS", "saliency", "concept_maps"],
      ["decode", "IMAGE", "saliency", "image"],
      ["maps", "CONCEPT_MAPS", "mask", "concept_maps"],
    ],
  },

  // A hires fix that re-samples only one concept's region: the first pass's maps give the mask, the
  // upscaled latent is re-sampled under it by the same patched model, which maps the second pass too.
  hires_fix_concept_region: {
    nodes: {
      checkpoint: schnellCheckpoint([20, 40]),
      camodel: conceptModel([20, 200], { concepts: "dog, sofa, room" }),
      positive: prompt("a fluffy white dog lying on a red sofa in a cosy living room, photograph", [390, 40]),
      negative: negative("", [390, 240], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 768, height: 768, batch_size: 1 } },
      first: { type: "KSampler", pos: [860, 40], title: "KSampler (first pass)",
        widgets: { seed: 8, steps: 4, cfg: 1.0, sampler_name: "euler", scheduler: "simple", denoise: 1.0 } },
      firstMaps: conceptMaps([860, 380], "Concept Maps (first pass)"),
      mask: conceptMask([860, 490], { concepts: "dog", grow: 24, blur: 8, fill_holes: true }),
      upscale: { type: "LatentUpscaleBy", pos: [1200, 40], widgets: { upscale_method: "bislerp", scale_by: 1.5 } },
      region: { type: "SetLatentNoiseMask", pos: [1200, 170], title: "Re-sample only the dog" },
      second: { type: "KSampler", pos: [1200, 280], title: "KSampler (second pass)",
        widgets: { seed: 9, steps: 4, cfg: 1.0, sampler_name: "euler", scheduler: "simple", denoise: 0.55 } },
      secondMaps: conceptMaps([1200, 630], "Concept Maps (second pass)"),
      saliency: { ...saliency([1540, 630]), widgets: { label: true } },
      decode: { type: "VAEDecode", pos: [1540, 40] },
      save: { type: "SaveImage", pos: [1540, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/hires_dog" } },
      about: note([20, 560], [340, 400], `### Hires fix of one concept's region

1. The **first pass** generates at 768² with the **Concept Attention Model**'s MODEL.
2. **Concept Maps (first pass)** and **Concept Mask** give a grown, feathered \`dog\` mask.
3. The latent is upscaled 1.5x and **SetLatentNoiseMask** limits the **second pass**
   (denoise 0.55) to the dog: the rest of the image keeps the first pass's content.
4. Both passes share one patched model; each **Concept Maps** gets its own pass's maps.

**Model file**: \`ComfyUI/models/checkpoints/flux1-schnell-fp8.safetensors\`.`),
    },
    links: [
      ["checkpoint", "MODEL", "camodel", "model"],
      ["checkpoint", "CLIP", "camodel", "clip"],
      ["checkpoint", "CLIP", "positive", "clip"],
      ["checkpoint", "CLIP", "negative", "clip"],
      ["camodel", "MODEL", "first", "model"],
      ["positive", "CONDITIONING", "first", "positive"],
      ["negative", "CONDITIONING", "first", "negative"],
      ["latent", "LATENT", "first", "latent_image"],
      ["camodel", "recorder", "firstMaps", "recorder"],
      ["first", "LATENT", "firstMaps", "latent"],
      ["firstMaps", "CONCEPT_MAPS", "mask", "concept_maps"],
      ["first", "LATENT", "upscale", "samples"],
      ["upscale", "LATENT", "region", "samples"],
      ["mask", "MASK", "region", "mask"],
      ["camodel", "MODEL", "second", "model"],
      ["positive", "CONDITIONING", "second", "positive"],
      ["negative", "CONDITIONING", "second", "negative"],
      ["region", "LATENT", "second", "latent_image"],
      ["camodel", "recorder", "secondMaps", "recorder"],
      ["second", "LATENT", "secondMaps", "latent"],
      ["secondMaps", "CONCEPT_MAPS", "saliency", "concept_maps"],
      ["second", "LATENT", "decode", "samples"],
      ["checkpoint", "VAE", "decode", "vae"],
      ["decode", "IMAGE", "save", "images"],
      ["decode", "IMAGE", "saliency", "image"],
    ],
  },

  // Chroma as ComfyUI's official Chroma template runs it: T5-XXL alone, Flow Shift 1.0, real CFG
  // 3.5 with a negative prompt, 26 steps, euler / beta.
  chroma_concept_maps: {
    nodes: {
      chroma: unet(MODEL.chroma, [20, 40], "Load Chroma"),
      shift: { type: "ModelSamplingAuraFlow", pos: [20, 170], size: [320, 0], title: "Flow Shift",
        widgets: { shift: 1.0 } },
      clip: chromaClip([20, 270]),
      vae: vae([20, 400]),
      positive: prompt("A photograph of a golden retriever running across green grass in a park, a red frisbee "
        + "in its mouth, blue sky with white clouds. Amateur photography. Natural light.", [390, 40]),
      negative: negative("This low quality greyscale unfinished sketch is inaccurate and flawed. The image is very "
        + "blurred and lacks detail with excessive chromatic aberrations and artifacts.", [390, 240], "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 5, steps: 26, cfg: 3.5, scheduler: "beta",
        concepts: "dog, frisbee, grass, sky" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/chroma" } },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 570], { concepts: "dog" }),
      about: note([20, 520], [340, 420], `### Chroma with concept maps

Generates with Chroma as ComfyUI's official Chroma template does (26 steps, euler / beta, Flow
Shift 1.0, real CFG 3.5 with a negative prompt) and maps \`dog, frisbee, grass, sky\` while
sampling. The maps come from the positive prompt (the sampler's \`prompt\` input offers the
negative prompt's too).

- **Saliency Map**: one labelled heatmap per concept; click to enlarge.
- **Concept Mask**: the \`dog\` mask, ready for inpainting or compositing.

**Chroma Radiance** works the same way with its own loaders: load
\`chroma-radiance-x0.safetensors\` in Load Chroma, pick \`pixel_space\` in Load VAE and use an
**EmptyChromaRadianceLatentImage**.

**Model files** (as ComfyUI's official Chroma template lists them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  Chroma1-HD.safetensors
├── text_encoders/     t5xxl_fp16.safetensors
└── vae/               ae.safetensors
\`\`\``),
    },
    links: [
      ["chroma", "MODEL", "shift", "model"],
      ...generationLinks(CHROMA_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // Flux.2 dev with the models, guidance (FluxGuidance 4) and latent of ComfyUI's official image_flux2
  // template; the Concept Attention Sampler stands in for its SamplerCustomAdvanced, BasicGuider,
  // KSamplerSelect and Flux2Scheduler (euler / simple, cfg 1, 28 steps).
  flux2_concept_maps: {
    minHost: "0.8.0",  // EmptyFlux2LatentImage and CLIPLoader's "flux2" type are new in ComfyUI 0.8
    nodes: {
      flux2: unet(MODEL.flux2Dev, [20, 40], "Load Flux.2 dev"),
      clip: flux2Clip([20, 170]),
      vae: vae([20, 340], MODEL.flux2Vae),
      positive: prompt("A ginger cat curled up asleep on a green velvet sofa in a sunlit living room, a tall "
        + "window with white curtains behind the sofa, soft morning light, photograph", [390, 40]),
      guidance: { type: "FluxGuidance", pos: [390, 240], size: [420, 0], widgets: { guidance: 4.0 } },
      negative: negative("", [390, 350], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptyFlux2LatentImage", pos: [390, 550], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 42, steps: 28, cfg: 1.0, concepts: "cat, sofa, window" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/flux2" } },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 570], { concepts: "cat" }),
      about: note([20, 460], [340, 520], `### Flux.2 dev with concept maps

Generates with Flux.2 dev (FluxGuidance 4, cfg 1, euler / simple, 28 steps) and maps
\`cat, sofa, window\` while sampling. Needs ComfyUI 0.8 or newer.

- **Saliency Map**: one labelled heatmap per concept; click to enlarge.
- **Concept Mask**: the \`cat\` mask, ready for inpainting or compositing.
- **layers** \`auto\` averages the last three double blocks (5-7 of dev's 8), as the paper's
  Flux.2 code does.

**Flux.2 klein** works the same way with its own text encoder: load
\`flux-2-klein-4b.safetensors\` and \`qwen_3_4b.safetensors\` (Load CLIP, type \`flux2\`),
same VAE. Distilled klein: 4 steps at cfg 1; klein base: 20 steps at cfg 5.

**Model files** (as ComfyUI's official Flux.2 template lists them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  flux2_dev_fp8mixed.safetensors
├── text_encoders/     mistral_3_small_flux2_bf16.safetensors
└── vae/               flux2-vae.safetensors
\`\`\``),
    },
    links: [
      ...generationLinks(FLUX2_LOADERS, "positive", "negative", "guidance"),
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // SD3.5 large from the fp8 checkpoint of ComfyUI's sd3.5_simple_example (CLIP-L, CLIP-G and T5-XXL
  // inside), at its model card's 28 steps: ModelSamplingSD3 shift 3, cfg 4.5, euler / sgm_uniform, 1024².
  sd35_concept_maps: {
    nodes: {
      checkpoint: { type: "CheckpointLoaderSimple", pos: [20, 40], size: [320, 0], title: "Load SD3.5 large",
        models: [MODEL.sd35Large], widgets: { ckpt_name: MODEL.sd35Large.name } },
      shift: { type: "ModelSamplingSD3", pos: [20, 190], size: [320, 0], widgets: { shift: 3.0 } },
      positive: prompt("a red fox sitting in a snowy pine forest at dawn, soft golden light through the trees, "
        + "photograph", [390, 40]),
      negative: negative("blurry, low quality", [390, 240], "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 3, steps: 28, cfg: 4.5, scheduler: "sgm_uniform",
        concepts: "fox, snow, trees, sky" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/sd35" } },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 570], { concepts: "fox" }),
      about: note([20, 300], [340, 560], `### SD3.5 with concept maps

Generates with SD3.5 large (shift 3, cfg 4.5, 28 steps, euler / sgm_uniform) and maps
\`fox, snow, trees, sky\` while sampling, from the positive prompt.

- **Saliency Map**: one labelled heatmap per concept; click to enlarge.
- **Concept Mask**: the \`fox\` mask, ready for inpainting or compositing.
- **layers** \`auto\` averages every joint block, as the paper's SD3 code does; each concept is its
  CLIP-L/G token.

**SD3.5 medium** and **large turbo** work the same way (turbo: 4 steps at cfg 1); so does SD3 medium.

**Model file** (as ComfyUI's SD3.5 example lists it; the text encoders are inside):

\`\`\`
ComfyUI/models/
└── checkpoints/  sd3.5_large_fp8_scaled.safetensors
\`\`\``),
    },
    links: [
      ["checkpoint", "MODEL", "shift", "model"],
      ...generationLinks(SD35_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // Qwen-Image as ComfyUI's official Qwen-Image template runs it (fp8 model, Flow Shift 3.1, cfg 2.5,
  // 20 steps, euler / simple, 1328²), with the concept mask recolouring one object.
  qwen_image_concept_mask: {
    nodes: {
      qwen: unet(MODEL.qwenImage, [20, 40], "Load Qwen-Image"),
      shift: flowShift([20, 170], 3.1),
      clip: qwenClip([20, 270]),
      vae: vae([20, 400], MODEL.qwenVae),
      positive: prompt("A cozy reading corner: a yellow armchair beside a tall bookshelf full of books, a "
        + "potted monstera plant by the window, warm afternoon light", [390, 40]),
      negative: negative("", [390, 240], "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1328, height: 1328, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 8, steps: 20, cfg: 2.5, concepts: "armchair, bookshelf, plant, window" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      generated: { type: "PreviewImage", pos: [1130, 140], size: [260, 300], title: "Generated image" },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 500], { concepts: "armchair", grow: 4, blur: 2, fill_holes: true }),
      colour: { type: "EmptyImage", pos: [860, 660], title: "Teal",
        widgets: { width: 1328, height: 1328, batch_size: 1, color: 0x1f8a8a } },
      tint: { type: "ImageBlend", pos: [1130, 880], title: "Armchair tinted teal",
        widgets: { blend_factor: 0.6, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: [1490, 500], title: "Armchair recoloured" },
      save: { type: "SaveImage", pos: [1840, 500], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/qwen_image" } },
      about: note([20, 530], [340, 470], `### Qwen-Image with a concept mask

Generates with Qwen-Image as ComfyUI's official template does (Flow Shift 3.1, cfg 2.5, 20 steps)
and maps \`armchair, bookshelf, plant, window\` while sampling.

- **Saliency Map**: one labelled heatmap per concept.
- **Concept Mask** cuts out the \`armchair\`; **ImageCompositeMasked** puts a teal-tinted copy
  over the image inside the mask only.

${QWEN_FILES("qwen_image_fp8_e4m3fn.safetensors")}`),
    },
    links: [
      ["qwen", "MODEL", "shift", "model"],
      ...generationLinks(QWEN_LOADERS),
      ["decode", "IMAGE", "generated", "images"],
      ["decode", "IMAGE", "tint", "image1"],
      ["colour", "IMAGE", "tint", "image2"],
      ["decode", "IMAGE", "composite", "destination"],
      ["tint", "IMAGE", "composite", "source"],
      ["mask", "MASK", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  // Qwen-Image-Edit 2509 as ComfyUI's official template runs it (FluxKontextImageScale, Flow Shift 3,
  // CFGNorm, 20 steps at cfg 2.5 for the fp8 model), restricted to one concept of the source image:
  // Segment Image maps the source, Concept Mask cuts the concept, the edit samples only inside it
  // (SetLatentNoiseMask), and the result is composited back over the source through the same mask.
  qwen_image_edit_concept_mask: {
    nodes: {
      qwen: unet(MODEL.qwenImageEdit, [20, 40], "Load Qwen-Image-Edit"),
      shift: flowShift([20, 170], 3.0),
      clip: qwenClip([20, 270]),
      vae: vae([20, 400], MODEL.qwenVae),
      load: { type: "LoadImage", pos: [20, 530], size: [320, 380], title: "Source image",
        widgets: { image: "example.png" } },
      source: { type: "FluxKontextImageScale", pos: [390, 530], size: [320, 0], title: "Source at about 1 MP" },
      cfgNorm: { type: "CFGNorm", pos: [860, 40], size: [230, 0], widgets: { strength: 1.0 } },
      positive: { type: "TextEncodeQwenImageEditPlus", pos: [390, 40], size: [420, 200], title: "Edit instruction",
        widgets: { prompt: "turn the cat into a marble statue" } },
      negative: { type: "TextEncodeQwenImageEditPlus", pos: [390, 300], size: [420, 160], ...NEGATIVE,
        title: "Negative (empty)", widgets: { prompt: "" } },
      segment: { type: "ConceptAttentionSegmentImage", pos: [390, 640], ...OURS,
        widgets: { concepts: "cat, background", caption: "a cat", noise_level: 0.5, noise_samples: 2 } },
      mask: conceptMask([780, 640], { concepts: "cat", grow: 12, blur: 4, fill_holes: true }),
      encode: { type: "VAEEncode", pos: [780, 500] },
      region: { type: "SetLatentNoiseMask", pos: [1130, 500], title: "Edit only inside the mask" },
      ksampler: { type: "KSampler", pos: [1130, 40], title: "KSampler (edit)",
        widgets: { seed: 21, steps: 20, cfg: 2.5, sampler_name: "euler", scheduler: "simple", denoise: 1.0 } },
      decode: { type: "VAEDecode", pos: [1490, 40] },
      composite: { type: "ImageCompositeMasked", pos: [1490, 160], title: "Edit over the source" },
      save: { type: "SaveImage", pos: [1840, 40], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/qwen_image_edit" } },
      about: note([1130, 640], [620, 400], `### Qwen-Image-Edit inside a concept mask

The source is scaled to about 1 MP, as ComfyUI's official template does. **Segment Image** maps
\`cat, background\` in it with the edit model itself, and **Concept Mask** cuts out the \`cat\`
(grown and feathered). The edit (Flow Shift 3, CFGNorm, 20 steps at cfg 2.5) then samples only
inside that mask (**SetLatentNoiseMask**), and **ImageCompositeMasked** pastes the edited cat back
over the source through the same mask: everything outside the cat stays pixel for pixel.

Change the concepts and the instruction together, e.g. \`sofa\` and "make the sofa green leather".

${QWEN_FILES("qwen_image_edit_2509_fp8_e4m3fn.safetensors")}`),
    },
    links: [
      ["load", "IMAGE", "source", "image"],
      ["qwen", "MODEL", "shift", "model"],
      ["shift", "MODEL", "cfgNorm", "model"],
      ["shift", "MODEL", "segment", "model"],
      ["clip", "CLIP", "segment", "clip"],
      ["vae", "VAE", "segment", "vae"],
      ["source", "IMAGE", "segment", "image"],
      ["segment", "CONCEPT_MAPS", "mask", "concept_maps"],
      ["clip", "CLIP", "positive", "clip"],
      ["vae", "VAE", "positive", "vae"],
      ["source", "IMAGE", "positive", "image1"],
      ["clip", "CLIP", "negative", "clip"],
      ["vae", "VAE", "negative", "vae"],
      ["source", "IMAGE", "negative", "image1"],
      ["source", "IMAGE", "encode", "pixels"],
      ["vae", "VAE", "encode", "vae"],
      ["encode", "LATENT", "region", "samples"],
      ["mask", "MASK", "region", "mask"],
      ["cfgNorm", "patched_model", "ksampler", "model"],
      ["positive", "CONDITIONING", "ksampler", "positive"],
      ["negative", "CONDITIONING", "ksampler", "negative"],
      ["region", "LATENT", "ksampler", "latent_image"],
      ["ksampler", "LATENT", "decode", "samples"],
      ["vae", "VAE", "decode", "vae"],
      ["source", "IMAGE", "composite", "destination"],
      ["decode", "IMAGE", "composite", "source"],
      ["mask", "MASK", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  // Z-Image-Turbo as ComfyUI 0.33's "Text to Image (Z-Image-Turbo)" blueprint runs it (Flow Shift 3,
  // res_multistep / simple, 8 steps at cfg 1), with the maps made while sampling and one object recoloured.
  // Every node and option it uses loads on ComfyUI 0.3.64, whose frontend validates it; the model itself needs
  // ComfyUI 0.8, as its note says.
  z_image_turbo_concept_mask: {
    nodes: {
      zimage: unet(MODEL.zImageTurbo, [20, 40], "Load Z-Image-Turbo"),
      shift: flowShift([20, 170], 3.0),
      clip: zImageClip([20, 270]),
      vae: vae([20, 400], MODEL.zImageVae),
      positive: prompt("A red vintage bicycle leaning against a white brick wall, a potted sunflower beside it on "
        + "the pavement, bright summer daylight, photograph", [390, 40]),
      negative: negative("", [390, 240], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 11, steps: 8, cfg: 1.0, sampler_name: "res_multistep",
        concepts: "bicycle, sunflower, wall, pavement" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      generated: { type: "PreviewImage", pos: [1130, 140], size: [260, 300], title: "Generated image" },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 500], { concepts: "bicycle", grow: 4, blur: 2, fill_holes: true }),
      colour: { type: "EmptyImage", pos: [860, 660], title: "Blue",
        widgets: { width: 1024, height: 1024, batch_size: 1, color: 0x2f5fd0 } },
      tint: { type: "ImageBlend", pos: [1130, 880], title: "Bicycle tinted blue",
        widgets: { blend_factor: 0.6, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: [1490, 500], title: "Bicycle recoloured" },
      save: { type: "SaveImage", pos: [1840, 500], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/z_image_turbo" } },
      about: note([20, 530], [340, 500], `### Z-Image-Turbo with a concept mask

Generates with Z-Image-Turbo as ComfyUI's own blueprint does (Flow Shift 3, res_multistep, 8 steps,
cfg 1) and maps \`bicycle, sunflower, wall, pavement\` while sampling. Needs ComfyUI 0.8 or newer.

- **Saliency Map**: one labelled heatmap per concept.
- **Concept Mask** cuts out the \`bicycle\`; **ImageCompositeMasked** puts a blue-tinted copy over the
  image inside the mask only.
- Z-Image is single-stream: text and image share every weight, and the concepts take those weights.
  **layers** \`auto\` averages the last four of its 30 blocks. Z-Image Base works the same way
  (\`z_image_bf16.safetensors\`, about 30 steps at cfg 4).

${Z_IMAGE_FILES}`),
    },
    links: [
      ["zimage", "MODEL", "shift", "model"],
      ...generationLinks(Z_IMAGE_LOADERS),
      ["decode", "IMAGE", "generated", "images"],
      ["decode", "IMAGE", "tint", "image1"],
      ["colour", "IMAGE", "tint", "image2"],
      ["decode", "IMAGE", "composite", "destination"],
      ["tint", "IMAGE", "composite", "source"],
      ["mask", "MASK", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  // A loaded photo mapped by Z-Image-Turbo (one partial pass, no sampling), its mask previewed.
  z_image_photo_to_mask: {
    nodes: {
      image: { type: "LoadImage", pos: [20, 40], size: [320, 380], widgets: { image: "example.png" } },
      zimage: unet(MODEL.zImageTurbo, [20, 480], "Load Z-Image-Turbo"),
      clip: zImageClip([20, 610]),
      vae: vae([20, 740], MODEL.zImageVae),
      segment: { type: "ConceptAttentionSegmentImage", pos: [390, 40], size: [300, 0], ...OURS,
        widgets: { concepts: "girl, dress, grass, sky", caption: "a girl in a dress on grass under the sky" } },
      saliency: saliency([1090, 40]),
      mask: conceptMask([740, 40], { concepts: "dress", grow: 8, blur: 2, fill_holes: true }),
      preview: { type: "MaskPreview", pos: [740, 420], size: [300, 300], title: "dress mask" },
      about: note([390, 480], [320, 420], `### Photo → concept mask with Z-Image

**Concept Attention Segment Image** maps \`girl, dress, grass, sky\` on the loaded photo with
Z-Image-Turbo (one partial pass at noise level 0.5; no sampling), **Concept Mask** cuts out the
\`dress\`. Wire the mask into SetLatentNoiseMask or ImageCompositeMasked. Needs ComfyUI 0.8 or newer.

Load your own photo and change the concepts, the caption and the mask's concept to match it.

${Z_IMAGE_FILES}`),
    },
    links: [
      ["image", "IMAGE", "segment", "image"],
      ["zimage", "MODEL", "segment", "model"],
      ["clip", "CLIP", "segment", "clip"],
      ["vae", "VAE", "segment", "vae"],
      ["segment", "CONCEPT_MAPS", "saliency", "concept_maps"],
      ["image", "IMAGE", "saliency", "image"],
      ["segment", "CONCEPT_MAPS", "mask", "concept_maps"],
      ["mask", "MASK", "preview", "mask"],
    ],
  },

  // Lumina 2 as ComfyUI's official Lumina 2 template runs it (the all-in-one checkpoint, Flow Shift 6,
  // res_multistep / simple, 25 steps at cfg 4, the system prompt before the user's).
  lumina2_concept_maps: {
    nodes: {
      checkpoint: { type: "CheckpointLoaderSimple", pos: [20, 40], size: [320, 0], models: [MODEL.lumina2],
        widgets: { ckpt_name: MODEL.lumina2.name } },
      shift: flowShift([20, 170], 6.0),
      positive: prompt(`${LUMINA2_SYSTEM_PROMPT}a fox sitting in a snowy pine forest at dawn, soft pink light`,
        [390, 40]),
      negative: negative(`${LUMINA2_SYSTEM_PROMPT}blurry, low quality`, [390, 240], "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 5, steps: 25, cfg: 4.0, sampler_name: "res_multistep",
        concepts: "fox, snow, trees, sky" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/lumina2" } },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 570], { concepts: "fox" }),
      about: note([20, 280], [340, 480], `### Lumina 2 with concept maps

Generates with Lumina 2 as ComfyUI's official template does (Flow Shift 6, res_multistep, 25 steps,
cfg 4, the system prompt before yours) and maps \`fox, snow, trees, sky\` while sampling.

- Lumina 2 is single-stream: text and image share every weight, and the concepts take those weights.
  Each concept is encoded alone, without the system prompt.
- **Concept Mask**: the \`fox\` mask, ready for inpainting or compositing.

**Model file** (as ComfyUI's official Lumina 2 template lists it):

\`\`\`
ComfyUI/models/
└── checkpoints/  lumina_2.safetensors
\`\`\``),
    },
    links: [
      ["checkpoint", "MODEL", "shift", "model"],
      ...generationLinks({ model: ["shift", "MODEL"], clip: ["checkpoint", "CLIP"], vae: ["checkpoint", "VAE"] }),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // Krea 2 Turbo as Comfy-Org's Krea-2 repository packages it (8 steps, euler / simple, cfg 1; the model's own
  // flow shift), maps made while sampling.
  krea2_concept_maps: {
    minHost: "0.33.0",  // Krea 2 (SingleStreamDiT, CLIPLoader's "krea2" type) is new in ComfyUI 0.33
    nodes: {
      krea2: unet(MODEL.krea2Turbo, [20, 40], "Load Krea 2 Turbo"),
      clip: { type: "CLIPLoader", pos: [20, 170], size: [320, 0], models: [MODEL.qwen3vl4b],
        widgets: { clip_name: MODEL.qwen3vl4b.name, type: "krea2" } },
      vae: vae([20, 340], MODEL.krea2Vae),
      positive: prompt("A lighthouse on a rocky cliff above a stormy sea, seagulls in the grey sky, dramatic "
        + "evening light, photograph", [390, 40]),
      negative: negative("", [390, 240], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: [390, 440], widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 3, steps: 8, cfg: 1.0, concepts: "lighthouse, cliff, sea, sky" }),
      decode: { type: "VAEDecode", pos: [1130, 40] },
      save: { type: "SaveImage", pos: [1130, 140], size: [320, 360],
        widgets: { filename_prefix: "ConceptAttention/krea2" } },
      saliency: saliency([1490, 40]),
      mask: conceptMask([1130, 570], { concepts: "lighthouse" }),
      about: note([20, 460], [340, 500], `### Krea 2 with concept maps

Generates with Krea 2 Turbo (8 steps, euler / simple, cfg 1) and maps
\`lighthouse, cliff, sea, sky\` while sampling. Needs ComfyUI 0.33 or newer.

- Krea 2 is single-stream: text and image share every weight, and the concepts take those weights.
  **layers** \`auto\` averages the last four of its 28 blocks.
- **Concept Mask**: the \`lighthouse\` mask, ready for inpainting or compositing.

**Model files** (as Comfy-Org's Krea-2 repository packages them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  krea2_turbo_fp8_scaled.safetensors
├── text_encoders/     qwen3vl_4b_fp8_scaled.safetensors
└── vae/               qwen_image_vae.safetensors
\`\`\``),
    },
    links: [
      ...generationLinks({ model: ["krea2", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] }),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // HunyuanVideo text-to-video as ComfyUI's official template runs it (ModelSamplingSD3 shift 7,
  // FluxGuidance 6 at cfg 1, euler / simple, 20 steps, 848x480, VAEDecodeTiled 256/64/64/8), on a
  // shorter clip, with per-frame concept maps and a mask that recolours the cat in every frame.
  hunyuan_video_concept_mask: {
    nodes: {
      hunyuan: unet(MODEL.hunyuanVideo, [20, 40], "Load HunyuanVideo"),
      shift: { type: "ModelSamplingSD3", pos: [20, 170], size: [320, 0], widgets: { shift: 7.0 } },
      clip: hunyuanVideoClip([20, 270]),
      vae: vae([20, 440], MODEL.hunyuanVideoVae),
      positive: prompt("a fluffy ginger cat walking slowly through tall green grass in a sunny meadow, "
        + "clear blue sky, gentle breeze, realistic video", [390, 40]),
      guidance: { type: "FluxGuidance", pos: [390, 240], size: [420, 0], widgets: { guidance: 6.0 } },
      negative: negative("", [390, 350], "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptyHunyuanLatentVideo", pos: [390, 550], size: [420, 0],
        widgets: { width: 848, height: 480, length: 33, batch_size: 1 } },
      sampler: sampler([860, 40], { seed: 12, steps: 20, cfg: 1.0, concepts: "cat, grass, sky" }),
      decode: { type: "VAEDecodeTiled", pos: [1130, 40], size: [300, 0],
        widgets: { tile_size: 256, overlap: 64, temporal_size: 64, temporal_overlap: 8 } },
      generated: saveClip([1130, 240], "Generated clip", "ConceptAttention/hunyuan_video", 24),
      saliency: saliency([1490, 40]),
      heatmapClips: saveClip([1490, 240], "Heatmap clips (concept after concept)",
        "ConceptAttention/hunyuan_video_heatmaps", 24),
      mask: conceptMask([1130, 600], { concepts: "cat", grow: 4, blur: 2, fill_holes: true,
        temporal_smoothing: 1.0 }),
      colour: { type: "EmptyImage", pos: [860, 660], title: "Violet",
        widgets: { width: 848, height: 480, batch_size: 1, color: 0x8a3ffc } },
      tint: { type: "ImageBlend", pos: [860, 860], title: "Clip tinted violet",
        widgets: { blend_factor: 0.7, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: [1490, 600], title: "Cat recoloured in every frame" },
      save: saveClip([1840, 600], "Recoloured clip", "ConceptAttention/hunyuan_video_recoloured", 24),
      about: note([20, 580], [340, 560], `### HunyuanVideo with per-frame concept masks

Generates a 33-frame clip with HunyuanVideo as ComfyUI's official template does (shift 7,
FluxGuidance 6, cfg 1, 20 steps) and maps \`cat, grass, sky\` in every frame while sampling.

- **Saliency Map**: a heatmap clip per concept, saved one after the other.
- **Concept Mask**: the \`cat\` mask, one per frame, smoothed over neighbouring frames
  (**temporal_smoothing** 1) against flicker.
- **ImageCompositeMasked** puts a violet-tinted copy of the clip over it inside the mask only:
  the cat changes colour, everything else stays as generated.

Longer clips: **length** 4n+1 (73 in the official template). Lower **tile_size** in the
tiled decode if it runs out of memory.

**Model files** (as ComfyUI's official HunyuanVideo template lists them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  hunyuan_video_t2v_720p_bf16.safetensors
├── text_encoders/     clip_l.safetensors, llava_llama3_fp8_scaled.safetensors
└── vae/               hunyuan_video_vae_bf16.safetensors
\`\`\``),
    },
    links: [
      ["hunyuan", "MODEL", "shift", "model"],
      ...generationLinks(HUNYUAN_VIDEO_LOADERS, "positive", "negative", "guidance"),
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ...recolourLinks("decode"),
    ],
  },

  // CogVideoX text to video through VOID pass 1 (CogVideoX-Fun V1.5 5B inpainting), the way CogVideoX-Fun
  // makes text to video with its inpainting models: every pixel of a blank clip marked for generation
  // (VOIDInpaintConditioning's mask, 1 = generate), so the prompt makes the whole clip. Size, length, steps,
  // cfg and sampling are those of ComfyUI 0.33's "Video Inpaint (VOID)" blueprint (672x384, 45 frames, 30
  // steps, cfg 6, an empty negative prompt): SamplerCustomAdvanced with CFGGuider and its DDIM sampler
  // (VOIDSampler: KSampler's samplers scale the noise for sigma space, CogVideoX's v-prediction wants the
  // DDIM update on unscaled latents). The Concept Attention Model and Concept Maps map the run.
  cogvideox_concept_mask: {
    minHost: "0.33.0",  // CogVideoX (CLIPLoader's "cogvideox" type, the VOID nodes) is new in ComfyUI 0.33
    nodes: {
      cogvideox: unet(MODEL.cogvideox, [20, 40], "Load CogVideoX-Fun 1.5 5B (VOID pass 1)"),
      clip: cogvideoxClip([20, 170]),
      vae: vae([20, 300], MODEL.cogvideoxVae),
      camodel: conceptModel([390, 40], { concepts: "cat, grass, sky" }),
      positive: prompt("A fluffy ginger cat walks slowly through tall green grass in a sunny meadow. The "
        + "grass sways in a gentle breeze under a clear blue sky. Realistic, natural light.", [390, 400]),
      negative: negative("", [390, 600], "Negative prompt (empty)"),
      blank: { type: "EmptyImage", pos: [390, 800], size: [320, 0], title: "Blank clip",
        widgets: { width: 672, height: 384, batch_size: 45, color: 0x000000 } },
      white: { type: "EmptyImage", pos: [390, 960], size: [320, 0], title: "Inpaint every pixel",
        widgets: { width: 672, height: 384, batch_size: 45, color: 0xffffff } },
      ones: { type: "ImageToMask", pos: [390, 1120], size: [320, 0], title: "Mask of ones (generate everywhere)",
        widgets: { channel: "red" } },
      condition: { type: "VOIDInpaintConditioning", pos: [860, 40], size: [250, 0],
        widgets: { width: 672, height: 384, length: 45, batch_size: 1 } },
      guider: { type: "CFGGuider", pos: [860, 300], size: [250, 0], widgets: { cfg: 6.0 } },
      noise: { type: "RandomNoise", pos: [860, 420], size: [250, 0], widgets: { noise_seed: 12 } },
      select: { type: "VOIDSampler", pos: [860, 550], size: [250, 0], title: "CogVideoX DDIM sampler" },
      scheduler: { type: "BasicScheduler", pos: [860, 630], size: [250, 0],
        widgets: { scheduler: "simple", steps: 30, denoise: 1.0 } },
      sca: { type: "SamplerCustomAdvanced", pos: [1140, 40], size: [260, 0] },
      maps: conceptMaps([1140, 330]),
      decode: { type: "VAEDecode", pos: [1140, 440] },
      generated: saveClip([1440, 40], "Generated clip", "ConceptAttention/cogvideox", 8),
      saliency: saliency([1800, 40]),
      heatmapClips: saveClip([1800, 240], "Heatmap clips (concept after concept)",
        "ConceptAttention/cogvideox_heatmaps", 8),
      mask: conceptMask([1440, 600], { concepts: "cat", grow: 4, blur: 2, fill_holes: true,
        temporal_smoothing: 1.0 }),
      colour: { type: "EmptyImage", pos: [1140, 700], title: "Violet",
        widgets: { width: 672, height: 384, batch_size: 1, color: 0x8a3ffc } },
      tint: { type: "ImageBlend", pos: [1140, 900], title: "Clip tinted violet",
        widgets: { blend_factor: 0.7, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: [1800, 600], title: "Cat recoloured in every frame" },
      save: saveClip([2150, 600], "Recoloured clip", "ConceptAttention/cogvideox_recoloured", 8),
      about: note([20, 420], [340, 700], `### CogVideoX with per-frame concept masks

Generates a 45-frame clip at 672x384 with VOID pass 1, a CogVideoX-Fun 1.5 5B inpainting model
(30 steps, cfg 6), and maps \`cat, grass, sky\` in every frame. Needs ComfyUI 0.33 or newer.

- **Text to video with an inpainting model**, as CogVideoX-Fun does it: **VOIDInpaintConditioning**
  gets a blank clip and a mask of ones (1 = generate), so no pixel is kept and the prompt makes the
  whole clip. Change **length** there and the two clips' **batch_size** together (45, 53, 61, ...;
  other lengths are rounded down).
- **Concept Attention Model** before the guider, **Concept Maps** after the sampler: the clip
  stays exactly as without them.
- The **CogVideoX DDIM sampler** (ComfyUI's VOIDSampler) is the sampler CogVideoX needs in
  ComfyUI; KSampler's samplers do not suit its v-prediction.
- **Saliency Map**: a heatmap clip per concept. **Concept Mask**: the \`cat\` mask in every
  frame (**temporal_smoothing** 1), used to recolour the cat.

**Model files** (as ComfyUI's "Video Inpaint (VOID)" blueprint lists them):

\`\`\`
ComfyUI/models/
├── diffusion_models/  void_pass1.safetensors
├── text_encoders/     t5xxl_fp16.safetensors
└── vae/               cogvideox_vae.safetensors
\`\`\`

The transformer and VAE are Hugging Face's Comfy-Org/void-model, T5-XXL is
comfyanonymous/flux_text_encoders; each loader carries its link, so ComfyUI offers them.`),
    },
    links: [
      ["cogvideox", "MODEL", "camodel", "model"],
      ["clip", "CLIP", "camodel", "clip"],
      ["clip", "CLIP", "positive", "clip"],
      ["clip", "CLIP", "negative", "clip"],
      ["positive", "CONDITIONING", "condition", "positive"],
      ["negative", "CONDITIONING", "condition", "negative"],
      ["vae", "VAE", "condition", "vae"],
      ["blank", "IMAGE", "condition", "video"],
      ["white", "IMAGE", "ones", "image"],
      ["ones", "MASK", "condition", "quadmask"],
      ["camodel", "MODEL", "guider", "model"],
      ["condition", "positive", "guider", "positive"],
      ["condition", "negative", "guider", "negative"],
      ["camodel", "MODEL", "scheduler", "model"],
      ["noise", "NOISE", "sca", "noise"],
      ["guider", "GUIDER", "sca", "guider"],
      ["select", "SAMPLER", "sca", "sampler"],
      ["scheduler", "SIGMAS", "sca", "sigmas"],
      ["condition", "latent", "sca", "latent_image"],
      ["camodel", "recorder", "maps", "recorder"],
      ["sca", "output", "maps", "latent"],
      ["sca", "output", "decode", "samples"],
      ["vae", "VAE", "decode", "vae"],
      ["maps", "CONCEPT_MAPS", "saliency", "concept_maps"],
      ["decode", "IMAGE", "saliency", "image"],
      ["maps", "CONCEPT_MAPS", "mask", "concept_maps"],
      ...recolourLinks("decode"),
    ],
  },
};

/** The workflow that runs for real on a CPU (tests and the builder run it). */
export const RUNNABLE = "demo_shapes";
