// The shipped workflow templates' source, as the builder (build_templates.mjs) lays them out in
// ComfyUI's own frontend. Edit here, then regenerate workflows/*.json and their thumbnails:
//   CA_COMFYUI_DIR=<ComfyUI 0.8.0> <its python> scripts/build_templates.py [template ...]
// (0.8.0: the oldest host with Flux.2's nodes, which "Flux.2 dev - concept maps" uses; the other templates
// load on 0.3.64 as well.)
// A template that needs a newer ComfyUI than the oldest supported one declares it as `minHost` (the
// oldest ComfyUI version that has every node and option it uses); the browser tier leaves it out on
// older hosts, checks that they do lack something it uses, and says so in its output. One newer than
// 0.8.0 is built on its host, by name ("CogVideoX - per-frame concept mask": CA_COMFYUI_DIR=<ComfyUI 0.33.0>).
// A template's name is its file's name, which is all the template browser shows of it: "<model> - <what it
// does>" (no # ? or %, which the frontend puts in the file's address unescaped, and no name ending in .app,
// which ComfyUI 0.33 takes for an app). Each opens readable and with no node over another in a 1600x1000
// window on every supported ComfyUI (tests/browser/test_template_view.py): compact columns, and notes whose
// every line fits them.
// Model file names, folders and download addresses are those of ComfyUI's official Flux, Flux.2, Chroma,
// SD3.5 and Qwen-Image templates (comfyui_workflow_templates: flux_schnell, flux_dev_full_text_to_image,
// flux_dev_example, flux_fill_inpaint_example, image_flux2, image_flux2_klein_text_to_image,
// image_chroma_text_to_image, sd3.5_simple_example, image_qwen_image, image_qwen_image_edit_2509), and for
// the video templates those of its HunyuanVideo template (hunyuan_video_text_to_video) and of ComfyUI
// 0.33's own CogVideoX workflow (its "Video Inpaint (VOID)" blueprint: pass 1's diffusion model, text
// encoder, VAE, conditioning and sampler); Z-Image's those of 0.33's "Text to Image (Z-Image-Turbo)" blueprint,
// Lumina 2's those of ComfyUI's Lumina 2 example (its all-in-one checkpoint), Krea 2's those of Comfy-Org's Krea-2
// repository, LongCat-Image's those of Comfy-Org's LongCat-Image repository (its text encoder Qwen-Image's file).

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
  // the all-in-one checkpoint (its Pile-T5 text encoder and SDXL's VAE inside) of ComfyUI's AuraFlow example
  auraFlow: { name: "aura_flow_0.3.safetensors", directory: "checkpoints",
    url: `${HF}/fal/AuraFlow-v0.3/resolve/main/aura_flow_0.3.safetensors` },
  hidreamDev: { name: "hidream_i1_dev_fp8.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/diffusion_models/hidream_i1_dev_fp8.safetensors` },
  clipLHidream: { name: "clip_l_hidream.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/text_encoders/clip_l_hidream.safetensors` },
  clipGHidream: { name: "clip_g_hidream.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/text_encoders/clip_g_hidream.safetensors` },
  t5Fp8Hidream: { name: "t5xxl_fp8_e4m3fn_scaled.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/text_encoders/t5xxl_fp8_e4m3fn_scaled.safetensors` },
  llama31: { name: "llama_3.1_8b_instruct_fp8_scaled.safetensors", directory: "text_encoders",
    url: `${HF}/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/text_encoders/llama_3.1_8b_instruct_fp8_scaled.safetensors` },
  hidreamVae: { name: "ae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/HiDream-I1_ComfyUI/resolve/main/split_files/vae/ae.safetensors` },
  mochi: { name: "mochi_preview_bf16.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/mochi_preview_repackaged/resolve/main/split_files/diffusion_models/mochi_preview_bf16.safetensors` },
  mochiVae: { name: "mochi_vae.safetensors", directory: "vae",
    url: `${HF}/Comfy-Org/mochi_preview_repackaged/resolve/main/split_files/vae/mochi_vae.safetensors` },
  longcatImage: { name: "longcat_image_bf16.safetensors", directory: "diffusion_models",
    url: `${HF}/Comfy-Org/LongCat-Image/resolve/main/split_files/diffusion_models/longcat_image_bf16.safetensors` },
  // SAM3.1, as ComfyUI 0.33's own "Image Segmentation (SAM3)" and "Video Segmentation (SAM3)" blueprints load it
  sam3: { name: "sam3.1_multiplex_fp16.safetensors", directory: "checkpoints",
    url: `${HF}/Comfy-Org/sam3.1/resolve/main/checkpoints/sam3.1_multiplex_fp16.safetensors` },
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

// Where a node goes: [x, y], or under(key): below the node `key` (placed before it), at that node's x or at
// `x`, clear of that node's size as the builder makes it.
const under = (key, x) => ({ under: key, x });
// The columns of the templates that generate with the Concept Attention Sampler, 30 apart: loaders and the
// note, prompts and latent, the sampler, what it makes, the maps.
const COLUMN = { loaders: 20, prompts: 410, sampler: 780, outputs: 1030, maps: 1360 };

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
  type: "CLIPTextEncode", pos, size: [340, 130], title, widgets: { text }, ...extra,
});
const negative = (text, pos, title) => prompt(text, pos, title, NEGATIVE);
const sampler = (pos, widgets) => ({
  type: "ConceptAttentionSampler", pos, ...OURS,
  widgets: { sampler_name: "euler", scheduler: "simple", ...widgets },
});
const saliency = (pos) => ({ type: "ConceptAttentionSaliencyMap", pos, size: [400, 150], ...OURS });
const conceptMask = (pos, widgets) => ({ type: "ConceptAttentionMask", pos, size: [300, 300], ...OURS, widgets });
const conceptPrompts = (pos, widgets) => ({ type: "ConceptAttentionPrompts", pos, size: [300, 0], ...OURS, widgets });
const sam3Loader = (pos) => ({
  type: "CheckpointLoaderSimple", pos, size: [320, 0], title: "Load SAM3", models: [MODEL.sam3],
  widgets: { ckpt_name: MODEL.sam3.name },
});
const conceptModel = (pos, widgets, title) => ({ type: "ConceptAttentionModel", pos, size: [320, 0], title, ...OURS, widgets });
const conceptMaps = (pos, title) => ({ type: "ConceptAttentionMaps", pos, size: [240, 0], title, ...OURS });
// HunyuanVideo's two text encoders: CLIP-L and LLaVA-Llama-3, with DualCLIPLoader's "hunyuan_video" type.
const hunyuanVideoClip = (pos) => ({
  type: "DualCLIPLoader", pos, size: [320, 0], models: [MODEL.clipL, MODEL.llavaLlama3],
  widgets: { clip_name1: MODEL.clipL.name, clip_name2: MODEL.llavaLlama3.name, type: "hunyuan_video" },
});
const zImageClip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.qwen3], widgets: { clip_name: MODEL.qwen3.name, type: "lumina2" },
});
// CogVideoX's one text encoder: T5-XXL, with CLIPLoader's "cogvideox" type (its 226-token padding).
const cogvideoxClip = (pos) => ({
  type: "CLIPLoader", pos, size: [320, 0], models: [MODEL.t5], widgets: { clip_name: MODEL.t5.name, type: "cogvideox" },
});
const saveClip = (pos, title, prefix, fps) => ({
  type: "SaveAnimatedWEBP", pos, size: [300, 260], title,
  widgets: { filename_prefix: prefix, fps, lossless: false, quality: 90, method: "default" },
});
const note = (pos, size, text) => ({ type: "MarkdownNote", pos, size, title: "About this workflow", widgets: { text } });

/**
 * The note's list of model files: where each goes under ComfyUI/models/, one file a line, so that no line
 * wraps in a note 360 wide.
 */
function modelFiles(...models) {
  const folders = new Map();
  for (const { directory, name } of models) folders.set(directory, [...(folders.get(directory) ?? []), name]);
  const lines = ["ComfyUI/models/"];
  [...folders].forEach(([folder, names], i, all) => {
    const lastFolder = i === all.length - 1;
    lines.push(`${lastFolder ? "└──" : "├──"} ${folder}/`);
    const indent = lastFolder ? "    " : "│   ";
    names.forEach((name, j) => lines.push(`${indent}${j === names.length - 1 ? "└──" : "├──"} ${name}`));
  });
  return `\`\`\`\n${lines.join("\n")}\n\`\`\``;
}

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
const HIDREAM_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const MOCHI_LOADERS = { model: ["mochi", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const AURA_FLOW_LOADERS = { model: ["shift", "MODEL"], clip: ["checkpoint", "CLIP"], vae: ["checkpoint", "VAE"] };
const LONGCAT_IMAGE_LOADERS = { model: ["longcat", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const FLUX2_LOADERS = { model: ["flux2", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const SD35_LOADERS = { model: ["shift", "MODEL"], clip: ["checkpoint", "CLIP"], vae: ["checkpoint", "VAE"] };
const QWEN_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const Z_IMAGE_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const Z_IMAGE_FILES = `**Model files** (as ComfyUI's official Z-Image-Turbo template lists them):

${modelFiles(MODEL.zImageTurbo, MODEL.qwen3, MODEL.zImageVae)}`;
// Lumina 2 reads its prompt after this system prompt, as ComfyUI's official Lumina 2 template writes it
const LUMINA2_SYSTEM_PROMPT = "You are an assistant designed to generate superior images with the superior degree of "
  + "image-text alignment based on textual prompts or user prompts. <Prompt Start> ";
const HUNYUAN_VIDEO_LOADERS = { model: ["shift", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] };
const QWEN_FILES = (model) => `**Model files** (as ComfyUI's official Qwen-Image templates list them):

${modelFiles(model, MODEL.qwenTextEncoder, MODEL.qwenVae)}`;
const FLUX_FILES = (...diffusionModels) => `**Model files** (ComfyUI's official Flux templates use the same names):

${modelFiles(...diffusionModels, MODEL.clipL, MODEL.t5, MODEL.ae)}`;
const SCHNELL_FILE = `**Model file** (the checkpoint of ComfyUI's official Flux schnell template):

${modelFiles(MODEL.schnellCheckpoint)}`;

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
  "Demo on any CPU - concept maps and a mask": {
    nodes: {
      loader: { type: "ConceptAttentionLoadDemoModel", pos: [COLUMN.loaders, 40], size: [320, 0], ...OURS },
      positive: prompt("a blue circle and a red square on a gray background", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (empty)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 256, height: 256, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 53, steps: 12, cfg: 3.0, concepts: "circle, square, background" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      generated: { type: "PreviewImage", pos: under("decode"), size: [260, 260], title: "Generated image" },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("generated"), { concepts: "circle", grow: 2, blur: 1.0, fill_holes: true, min_region: 1024 }),
      orange: { type: "EmptyImage", pos: under("sampler"), title: "Orange",
        widgets: { width: 256, height: 256, batch_size: 1, color: 0xff9900 } },
      composite: { type: "ImageCompositeMasked", pos: under("generated", COLUMN.maps), title: "Circle recoloured" },
      save: { type: "SaveImage", pos: under("composite"), size: [260, 260],
        widgets: { filename_prefix: "concept_attention_demo/recoloured" } },
      about: note(under("loader"), [360, 250], `### ConceptAttention demo (runs on any CPU)

The **demo model** is a tiny Flux trained on coloured shapes, shipped with the extension.

- **Concept Attention Sampler** generates the image exactly like KSampler and maps the concepts
  \`circle, square, background\`.
- **Saliency Map** shows one heatmap per concept; click one to enlarge it.
- **Concept Mask** turns the \`circle\` map into a MASK, used here to paint the circle orange.

Try other prompts: the demo model draws one or two simple shapes (circle, square, triangle, cross, star) in
red, green, blue, yellow, purple or orange on a gray, white or black background, but it often gives a colour
to the wrong shape, and the maps follow the shapes.`),
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

  "Flux.1 schnell - concept maps": {
    nodes: {
      checkpoint: schnellCheckpoint([COLUMN.loaders, 40]),
      positive: prompt("a corgi wearing a red scarf sitting on green grass in a park, a yellow ball next to it, "
        + "blue sky with white clouds", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 42, steps: 4, cfg: 1.0, concepts: "dog, scarf, grass, ball, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/flux_schnell" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "dog" }),
      about: note(under("checkpoint"), [360, 250], `### Flux.1 schnell with concept maps

Generates with Flux.1 schnell (4 steps, cfg 1) and maps the concepts
\`dog, scarf, grass, ball, sky\` while sampling. The image is exactly what KSampler gives.

- **Saliency Map**: one labelled heatmap per concept; click to enlarge.
- **Concept Mask**: the \`dog\` mask, ready for inpainting or compositing.

${SCHNELL_FILE}`),
    },
    links: [
      ...generationLinks(CHECKPOINT),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // Segment a photo with Flux.1 dev (top), then inpaint the mask's region with Flux.1 Fill dev (below).
  "Flux.1 dev - photo to mask and Fill inpainting": {
    nodes: {
      image: { type: "LoadImage", pos: [20, 40], size: [320, 320], widgets: { image: "example.png" } },
      dev: unet(MODEL.dev, under("image"), "Load Flux.1 dev (for the maps)"),
      clip: dualClip(under("dev")),
      vae: vae(under("clip")),
      segment: { type: "ConceptAttentionSegmentImage", pos: [370, 40], size: [300, 0], ...OURS,
        widgets: { concepts: "girl, dress, grass, sky" } },
      saliency: { ...saliency([1070, 40]), size: [300, 150] },
      mask: conceptMask([740, 40], { concepts: "dress", grow: 16, blur: 4, fill_holes: true }),
      fill: unet(MODEL.fill, under("segment"), "Load Flux.1 Fill dev (for inpainting)"),
      diffdiff: { type: "DifferentialDiffusion", pos: under("fill"), size: [320, 0] },
      positive: prompt("a girl in a yellow raincoat standing on green grass under a blue sky", under("diffdiff"),
        "Prompt for the inpainted image"),
      guidance: { type: "FluxGuidance", pos: under("mask"), widgets: { guidance: 30 } },
      zero: { type: "ConditioningZeroOut", pos: under("guidance"), ...NEGATIVE },
      inpaint: { type: "InpaintModelConditioning", pos: under("zero"), widgets: { noise_mask: true } },
      ksampler: { type: "KSampler", pos: [1070, 440],
        widgets: { seed: 0, steps: 20, cfg: 1.0, sampler_name: "euler",
          scheduler: "normal", denoise: 1.0 } },
      decode: { type: "VAEDecode", pos: [1310, 440] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/inpaint" } },
      about: note([1400, 40], [380, 340], `### Photo → concept mask → Flux Fill inpainting

1. **Concept Attention Segment Image** maps \`girl, dress, grass, sky\` on the loaded photo
   (one partial pass of Flux.1 dev at noise level 0.5; no sampling).
2. **Concept Mask** picks \`dress\`, grows it by 16 px and feathers it.
3. **Flux.1 Fill dev** repaints the masked region from the prompt (the official Flux Fill
   inpainting settings: FluxGuidance 30, Differential Diffusion, 20 steps).

Load your own photo and change the concepts and the mask's concept to match it.

${FLUX_FILES(MODEL.dev, MODEL.fill)}`),
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

  "Flux.1 schnell - replace the background": {
    nodes: {
      checkpoint: schnellCheckpoint([COLUMN.loaders, 40]),
      subject: prompt("a photo of a ginger cat sitting on a wooden chair in a living room", [COLUMN.prompts, 40],
        "Subject prompt"),
      negative: negative("", under("subject"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 7, steps: 4, cfg: 1.0, concepts: "cat, chair, room" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      generated: { type: "PreviewImage", pos: under("decode"), size: [260, 260], title: "Generated subject" },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("generated"), { concepts: "cat, chair", grow: 4, blur: 2, fill_holes: true,
        refine: "image edges" }),
      background: prompt("a sunny tropical beach with palm trees and turquoise sea, photo", under("latent"),
        "New background prompt"),
      bgsampler: { type: "KSampler", pos: under("sampler"), title: "KSampler (background)",
        widgets: { seed: 11, steps: 4, cfg: 1.0, sampler_name: "euler",
          scheduler: "simple", denoise: 1.0 } },
      bgdecode: { type: "VAEDecode", pos: under("mask") },
      composite: { type: "ImageCompositeMasked", pos: under("generated", COLUMN.maps),
        title: "Subject over the new background" },
      save: { type: "SaveImage", pos: under("composite"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/new_background" } },
      about: note(under("checkpoint"), [360, 250], `### Replace the background

The sampler maps \`cat, chair, room\` while it generates the subject. **Concept Mask** takes the
union of \`cat, chair\`, makes the maps follow the generated image's edges (refine: image edges),
fills holes, grows it by 4 px and feathers it (blur 2) so the edge blends. **ImageCompositeMasked**
puts the subject (source) over a second generation (destination).

Tune **grow** and **blur** on the mask and re-run: only the mask and the composite run again.

${SCHNELL_FILE}`),
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
      ["decode", "IMAGE", "mask", "image"],
      ["mask", "MASK", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  // The model's own concept, made pixel-precise by SAM3: Concept Prompts turns the corgi's region into SAM3
  // Detect's boxes and points, next to SAM3's text prompt for the same word.
  "Flux.1 schnell - SAM3 mask of what the model drew": {
    minHost: "0.33.0",  // SAM3 Detect and the BOUNDING_BOX type are new in ComfyUI 0.33
    nodes: {
      checkpoint: schnellCheckpoint([COLUMN.loaders, 40]),
      positive: prompt("a photo of a corgi and a black labrador sitting side by side on a red sofa in a living room",
        [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 5, steps: 4, cfg: 1.0, concepts: "corgi, labrador, sofa, room" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      generated: { type: "PreviewImage", pos: under("decode"), size: [260, 260], title: "Generated image" },
      saliency: saliency([COLUMN.maps, 40]),
      prompts: conceptPrompts(under("generated"), { concepts: "corgi", points_per_object: 2 }),
      sam3: sam3Loader(under("latent")),
      sam3text: { ...prompt("corgi", under("sam3"), "SAM3 text prompt"), size: [340, 100] },
      detect: { type: "SAM3_Detect", pos: under("prompts"), size: [300, 0],
        widgets: { threshold: 0.5, refine_iterations: 2, individual_masks: false } },
      backdrop: { type: "EmptyImage", pos: under("sampler"), size: [240, 0], title: "Plain backdrop",
        widgets: { width: 1024, height: 1024, batch_size: 1, color: 0xf2efe6 } },
      composite: { type: "ImageCompositeMasked", pos: under("saliency"), title: "The corgi, cut out" },
      save: { type: "SaveImage", pos: under("composite"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/sam3_cutout" } },
      about: note(under("checkpoint"), [360, 330], `### A SAM3 mask of what the model drew

The sampler maps \`corgi, labrador, sofa, room\` while it generates. **Concept Prompts** turns the
corgi's region into SAM3's prompts: its box, two peak points inside it, and a point on each other
concept as a negative. **SAM3 Detect** segments it at full resolution, and the mask cuts the corgi out.

SAM3's text prompt finds every object it reads as the word. For a word that names something SAM3
cannot pick out by itself (the model's "shadow", one of two alike objects), remove the
conditioning link: the boxes and points alone then decide.

**Model files**:

${modelFiles(MODEL.schnellCheckpoint, MODEL.sam3)}`),
    },
    links: [
      ...generationLinks(CHECKPOINT).filter(([, , to]) => to !== "mask"),
      ["decode", "IMAGE", "generated", "images"],
      ["sampler", "CONCEPT_MAPS", "prompts", "concept_maps"],
      ["decode", "IMAGE", "prompts", "image"],
      ["sam3", "MODEL", "detect", "model"],
      ["sam3", "CLIP", "sam3text", "clip"],
      ["decode", "IMAGE", "detect", "image"],
      ["sam3text", "CONDITIONING", "detect", "conditioning"],
      ["prompts", "bboxes", "detect", "bboxes"],
      ["prompts", "positive_coords", "detect", "positive_coords"],
      ["prompts", "negative_coords", "detect", "negative_coords"],
      ["backdrop", "IMAGE", "composite", "destination"],
      ["decode", "IMAGE", "composite", "source"],
      ["detect", "masks", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  "Flux.1 dev - concept maps of two images with CFG": {
    nodes: {
      dev: unet(MODEL.dev, [COLUMN.loaders, 40], "Load Flux.1 dev"),
      clip: dualClip(under("dev")),
      vae: vae(under("clip")),
      positive: prompt("a red fox sitting in a snowy pine forest at sunrise, detailed fur", [COLUMN.prompts, 40]),
      negative: negative("blurry, low quality, cartoon, text, watermark", under("positive"), "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), title: "Two images",
        widgets: { width: 1024, height: 1024, batch_size: 2 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 3, steps: 20, cfg: 2.0, concepts: "fox, snow, trees, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/flux_dev_cfg" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "fox" }),
      about: note(under("vae"), [360, 290], `### Flux.1 dev with CFG and a batch of two

Real classifier-free guidance (cfg 2.0, with a negative prompt; Flux's distilled guidance stays
at its default 3.5) and two images in one batch. Each image gets its own maps: the **Saliency Map**
gallery lists \`fox, snow, trees, sky\` for image 1, then for image 2, and **Concept Mask** gives a
mask for each image. The maps come from the positive prompt; set the sampler's \`prompt\` to
\`negative\` or \`both\` for the negative prompt's maps.

${FLUX_FILES(MODEL.dev)}`),
    },
    links: [
      ...generationLinks(SEPARATE_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // ComfyUI's official Flux.1 dev template (flux_dev_example: SamplerCustomAdvanced, BasicGuider,
  // FluxGuidance 3.5, ModelSamplingFlux, euler / simple, 20 steps) with the Concept Attention Model
  // between ModelSamplingFlux and the guider, and Concept Maps after the sampler.
  "Flux.1 dev - concept maps from SamplerCustomAdvanced": {
    nodes: {
      dev: unet(MODEL.dev, [20, 40], "Load Flux.1 dev"),
      clip: dualClip(under("dev")),
      vae: vae(under("clip")),
      shift: { type: "ModelSamplingFlux", pos: under("vae"), size: [320, 0],
        widgets: { max_shift: 1.15, base_shift: 0.5, width: 1024, height: 1024 } },
      camodel: conceptModel([370, 40], { concepts: "cat, hat, table, window" }),
      positive: prompt("a black cat wearing a tiny straw hat sitting on a wooden table next to a window, "
        + "soft afternoon light, photograph", under("camodel")),
      guidance: { type: "FluxGuidance", pos: under("positive"), size: [340, 0], widgets: { guidance: 3.5 } },
      guider: { type: "BasicGuider", pos: [740, 40], size: [240, 0] },
      noise: { type: "RandomNoise", pos: under("guider"), size: [240, 0], widgets: { noise_seed: 21 } },
      select: { type: "KSamplerSelect", pos: under("noise"), size: [240, 0], widgets: { sampler_name: "euler" } },
      scheduler: { type: "BasicScheduler", pos: under("select"), size: [240, 0],
        widgets: { scheduler: "simple", steps: 20, denoise: 1.0 } },
      latent: { type: "EmptySD3LatentImage", pos: under("scheduler"), size: [240, 0],
        widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sca: { type: "SamplerCustomAdvanced", pos: [1010, 40], size: [260, 0] },
      maps: conceptMaps(under("sca")),
      decode: { type: "VAEDecode", pos: [1440, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/flux_dev_custom" } },
      saliency: { ...saliency(under("maps")), widgets: { label: true } },
      mask: conceptMask(under("save"), { concepts: "cat" }),
      about: note(under("shift"), [690, 290], `### Concept maps from any sampler

ComfyUI's own Flux.1 dev template (SamplerCustomAdvanced, BasicGuider, FluxGuidance 3.5) with two
nodes added:

- **Concept Attention Model** between the model and the guider / scheduler: the image stays
  exactly as without it.
- **Concept Maps** takes its \`recorder\` and the sampler's \`output\` LATENT and gives the maps of
  that very run (\`cat, hat, table, window\`).

The same two nodes work with KSampler, KSamplerAdvanced, CFGGuider and other packs' samplers.

${FLUX_FILES(MODEL.dev)}`),
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
  "Flux.1 schnell - hires fix of one concept": {
    nodes: {
      checkpoint: schnellCheckpoint([COLUMN.loaders, 40]),
      camodel: conceptModel(under("checkpoint"), { concepts: "dog, sofa, room" }),
      positive: prompt("a fluffy white dog lying on a red sofa in a cosy living room, photograph", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 768, height: 768, batch_size: 1 } },
      first: { type: "KSampler", pos: [COLUMN.sampler, 40], title: "KSampler (first pass)",
        widgets: { seed: 8, steps: 4, cfg: 1.0, sampler_name: "euler", scheduler: "simple", denoise: 1.0 } },
      firstMaps: conceptMaps(under("first"), "Concept Maps (first pass)"),
      mask: conceptMask(under("firstMaps"), { concepts: "dog", grow: 24, blur: 8, fill_holes: true }),
      upscale: { type: "LatentUpscaleBy", pos: [1110, 40], widgets: { upscale_method: "bislerp", scale_by: 1.5 } },
      region: { type: "SetLatentNoiseMask", pos: under("upscale"), title: "Re-sample only the dog" },
      second: { type: "KSampler", pos: under("region"), title: "KSampler (second pass)",
        widgets: { seed: 9, steps: 4, cfg: 1.0, sampler_name: "euler", scheduler: "simple", denoise: 0.55 } },
      secondMaps: conceptMaps(under("second"), "Concept Maps (second pass)"),
      decode: { type: "VAEDecode", pos: [1350, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/hires_dog" } },
      saliency: { ...saliency(under("save")), widgets: { label: true } },
      about: note(under("latent", 20), [690, 210], `### Hires fix of one concept's region

1. The **first pass** generates at 768² with the **Concept Attention Model**'s MODEL.
2. **Concept Maps (first pass)** and **Concept Mask** give a grown, feathered \`dog\` mask.
3. The latent is upscaled 1.5x and **SetLatentNoiseMask** limits the **second pass**
   (denoise 0.55) to the dog: the rest of the image keeps the first pass's content.
4. Both passes share one patched model; each **Concept Maps** gets its own pass's maps.

${SCHNELL_FILE}`),
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
  "Chroma - concept maps": {
    nodes: {
      chroma: unet(MODEL.chroma, [COLUMN.loaders, 40], "Load Chroma"),
      shift: flowShift(under("chroma"), 1.0),
      clip: chromaClip(under("shift")),
      vae: vae(under("clip")),
      positive: prompt("A photograph of a golden retriever running across green grass in a park, a red frisbee "
        + "in its mouth, blue sky with white clouds. Amateur photography. Natural light.", [COLUMN.prompts, 40]),
      negative: negative("This low quality greyscale unfinished sketch is inaccurate and flawed. The image is very "
        + "blurred and lacks detail with excessive chromatic aberrations and artifacts.", under("positive"),
      "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 5, steps: 26, cfg: 3.5, scheduler: "beta",
        concepts: "dog, frisbee, grass, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/chroma" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "dog" }),
      about: note(under("latent", COLUMN.loaders), [730, 300], `### Chroma with concept maps

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

${modelFiles(MODEL.chroma, MODEL.t5, MODEL.ae)}`),
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
  "Flux.2 dev - concept maps": {
    minHost: "0.8.0",  // EmptyFlux2LatentImage and CLIPLoader's "flux2" type are new in ComfyUI 0.8
    nodes: {
      flux2: unet(MODEL.flux2Dev, [COLUMN.loaders, 40], "Load Flux.2 dev"),
      clip: flux2Clip(under("flux2")),
      vae: vae(under("clip"), MODEL.flux2Vae),
      positive: prompt("A ginger cat curled up asleep on a green velvet sofa in a sunlit living room, a tall "
        + "window with white curtains behind the sofa, soft morning light, photograph", [COLUMN.prompts, 40]),
      guidance: { type: "FluxGuidance", pos: under("positive"), size: [340, 0], widgets: { guidance: 4.0 } },
      negative: negative("", under("guidance"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptyFlux2LatentImage", pos: under("negative"),
        widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 42, steps: 28, cfg: 1.0, concepts: "cat, sofa, window" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/flux2" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "cat" }),
      about: note(under("latent", COLUMN.loaders), [730, 300], `### Flux.2 dev with concept maps

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

${modelFiles(MODEL.flux2Dev, MODEL.mistral, MODEL.flux2Vae)}`),
    },
    links: [
      ...generationLinks(FLUX2_LOADERS, "positive", "negative", "guidance"),
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // HiDream-I1 Dev as ComfyUI's HiDream example runs it: four text encoders (QuadrupleCLIPLoader), ModelSamplingSD3
  // shift 6, cfg 1, 28 steps, lcm / normal
  "HiDream-I1 Dev - concept maps": {
    nodes: {
      hidream: unet(MODEL.hidreamDev, [COLUMN.loaders, 40], "Load HiDream-I1 Dev"),
      shift: { type: "ModelSamplingSD3", pos: under("hidream"), size: [320, 0], widgets: { shift: 6.0 } },
      clip: { type: "QuadrupleCLIPLoader", pos: under("shift"), size: [320, 0],
        models: [MODEL.clipLHidream, MODEL.clipGHidream, MODEL.t5Fp8Hidream, MODEL.llama31],
        widgets: { clip_name1: MODEL.clipLHidream.name, clip_name2: MODEL.clipGHidream.name,
          clip_name3: MODEL.t5Fp8Hidream.name, clip_name4: MODEL.llama31.name } },
      vae: vae(under("clip"), MODEL.hidreamVae),
      positive: prompt("a hummingbird hovering beside a red hibiscus flower in a tropical garden, morning light, "
        + "photograph", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 3, steps: 28, cfg: 1.0, sampler_name: "lcm", scheduler: "normal",
        concepts: "hummingbird, flower, leaves" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/hidream" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "hummingbird" }),
      about: note(under("latent", COLUMN.loaders), [730, 300], `### HiDream-I1 Dev with concept maps

Generates with HiDream-I1 Dev (shift 6, cfg 1, lcm, 28 steps) and
maps \`hummingbird, flower, leaves\` in its double-stream blocks.
Full: shift 3, cfg 5, 50 steps; Fast: 16 steps.

**Model files** (as ComfyUI's HiDream example lists them):

${modelFiles(MODEL.hidreamDev, MODEL.clipLHidream, MODEL.clipGHidream, MODEL.t5Fp8Hidream, MODEL.llama31,
    MODEL.hidreamVae)}`),
    },
    links: [
      ["hidream", "MODEL", "shift", "model"],
      ...generationLinks(HIDREAM_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // AuraFlow 0.3 from its all-in-one checkpoint as ComfyUI's AuraFlow example loads it: ModelSamplingAuraFlow shift
  // 1.73, cfg 3.5, 25 steps
  "AuraFlow - concept maps": {
    nodes: {
      checkpoint: { type: "CheckpointLoaderSimple", pos: [COLUMN.loaders, 40], size: [320, 0], models: [MODEL.auraFlow],
        widgets: { ckpt_name: MODEL.auraFlow.name } },
      shift: flowShift(under("checkpoint"), 1.73),
      positive: prompt("a lighthouse on a rocky cliff above a stormy sea, seagulls in a grey sky, oil painting",
        [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt"),
      latent: { type: "EmptyLatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 7, steps: 25, cfg: 3.5, concepts: "lighthouse, cliff, sea, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/auraflow" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "lighthouse" }),
      about: note(under("shift"), [360, 280], `### AuraFlow with concept maps

Generates with AuraFlow 0.3 (shift 1.73, cfg 3.5, 25 steps) and maps
\`lighthouse, cliff, sea, sky\` while sampling.

- **Saliency Map**: one labelled heatmap per concept.
- **Concept Mask**: the \`lighthouse\` mask.

The maps come from AuraFlow's joint blocks, whose text has
weights of its own.

**Model file** (text encoder and VAE inside):

${modelFiles(MODEL.auraFlow)}`),
    },
    links: [
      ["checkpoint", "MODEL", "shift", "model"],
      ...generationLinks(AURA_FLOW_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // LongCat-Image: its Qwen2.5-VL text encoder is Qwen-Image's file, its VAE Flux.1's; real CFG 4.5 as its model card
  "LongCat-Image - concept maps": {
    minHost: "0.33.0",  // LongCat-Image (CLIPLoader's "longcat_image" type) is new in ComfyUI 0.33
    nodes: {
      longcat: unet(MODEL.longcatImage, [COLUMN.loaders, 40], "Load LongCat-Image"),
      clip: { type: "CLIPLoader", pos: under("longcat"), size: [320, 0], models: [MODEL.qwenTextEncoder],
        widgets: { clip_name: MODEL.qwenTextEncoder.name, type: "longcat_image" } },
      vae: vae(under("clip")),
      positive: prompt("A red fox sitting in fresh snow beside a wooden signpost in a pine forest, soft winter "
        + "light, photograph", [COLUMN.prompts, 40]),
      negative: negative("blurry, low quality", under("positive"), "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 42, steps: 30, cfg: 4.5, concepts: "fox, snow, signpost, trees" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/longcat_image" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "fox" }),
      about: note(under("vae"), [360, 300], `### LongCat-Image with concept maps

Generates with LongCat-Image (cfg 4.5, 30 steps) and maps
\`fox, snow, signpost, trees\` while sampling. Needs ComfyUI 0.33.

- **Saliency Map**: one labelled heatmap per concept.
- **Concept Mask**: the \`fox\` mask.

LongCat-Image-Edit maps the same way, with its own
diffusion model and its edit conditioning.

**Model files**:

${modelFiles(MODEL.longcatImage, MODEL.qwenTextEncoder, MODEL.ae)}`),
    },
    links: [
      ...generationLinks(LONGCAT_IMAGE_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // SD3.5 large from the fp8 checkpoint of ComfyUI's sd3.5_simple_example (CLIP-L, CLIP-G and T5-XXL
  // inside), at its model card's 28 steps: ModelSamplingSD3 shift 3, cfg 4.5, euler / sgm_uniform, 1024².
  "SD3.5 large - concept maps": {
    nodes: {
      checkpoint: { type: "CheckpointLoaderSimple", pos: [COLUMN.loaders, 40], size: [320, 0], title: "Load SD3.5 large",
        models: [MODEL.sd35Large], widgets: { ckpt_name: MODEL.sd35Large.name } },
      shift: { type: "ModelSamplingSD3", pos: under("checkpoint"), size: [320, 0], widgets: { shift: 3.0 } },
      positive: prompt("a red fox sitting in a snowy pine forest at dawn, soft golden light through the trees, "
        + "photograph", [COLUMN.prompts, 40]),
      negative: negative("blurry, low quality", under("positive"), "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 3, steps: 28, cfg: 4.5, scheduler: "sgm_uniform",
        concepts: "fox, snow, trees, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/sd35" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "fox" }),
      about: note(under("latent", COLUMN.loaders), [730, 250], `### SD3.5 with concept maps

Generates with SD3.5 large (shift 3, cfg 4.5, 28 steps, euler / sgm_uniform) and maps
\`fox, snow, trees, sky\` while sampling, from the positive prompt.

- **Saliency Map**: one labelled heatmap per concept; click to enlarge.
- **Concept Mask**: the \`fox\` mask, ready for inpainting or compositing.
- **layers** \`auto\` averages every joint block, as the paper's SD3 code does; each concept is its
  CLIP-L/G token.

**SD3.5 medium** and **large turbo** work the same way (turbo: 4 steps at cfg 1); so does SD3 medium.

**Model file** (as ComfyUI's SD3.5 example lists it; the text encoders are inside):

${modelFiles(MODEL.sd35Large)}`),
    },
    links: [
      ["checkpoint", "MODEL", "shift", "model"],
      ...generationLinks(SD35_LOADERS),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // Qwen-Image as ComfyUI's official Qwen-Image template runs it (fp8 model, Flow Shift 3.1, cfg 2.5,
  // 20 steps, euler / simple, 1328²), with the concept mask recolouring one object.
  "Qwen-Image - concept mask": {
    nodes: {
      qwen: unet(MODEL.qwenImage, [COLUMN.loaders, 40], "Load Qwen-Image"),
      shift: flowShift(under("qwen"), 3.1),
      clip: qwenClip(under("shift")),
      vae: vae(under("clip"), MODEL.qwenVae),
      positive: prompt("A cozy reading corner: a yellow armchair beside a tall bookshelf full of books, a "
        + "potted monstera plant by the window, warm afternoon light", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1328, height: 1328, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 8, steps: 20, cfg: 2.5,
        concepts: "armchair, bookshelf, plant, window" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      generated: { type: "PreviewImage", pos: under("decode"), size: [260, 260], title: "Generated image" },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("generated"), { concepts: "armchair", grow: 4, blur: 2, fill_holes: true }),
      colour: { type: "EmptyImage", pos: under("sampler"), title: "Teal",
        widgets: { width: 1328, height: 1328, batch_size: 1, color: 0x1f8a8a } },
      tint: { type: "ImageBlend", pos: under("colour"), title: "Armchair tinted teal",
        widgets: { blend_factor: 0.6, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: under("generated", COLUMN.maps), title: "Armchair recoloured" },
      save: { type: "SaveImage", pos: under("composite"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/qwen_image" } },
      about: note(under("latent", COLUMN.loaders), [730, 250], `### Qwen-Image with a concept mask

Generates with Qwen-Image as ComfyUI's official template does (Flow Shift 3.1, cfg 2.5, 20 steps)
and maps \`armchair, bookshelf, plant, window\` while sampling.

- **Saliency Map**: one labelled heatmap per concept.
- **Concept Mask** cuts out the \`armchair\`; **ImageCompositeMasked** puts a teal-tinted copy
  over the image inside the mask only.

${QWEN_FILES(MODEL.qwenImage)}`),
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
  "Qwen-Image-Edit - edit inside a concept mask": {
    nodes: {
      qwen: unet(MODEL.qwenImageEdit, [20, 40], "Load Qwen-Image-Edit"),
      shift: flowShift(under("qwen"), 3.0),
      clip: qwenClip(under("shift")),
      vae: vae(under("clip"), MODEL.qwenVae),
      load: { type: "LoadImage", pos: under("vae"), size: [320, 300], title: "Source image",
        widgets: { image: "example.png" } },
      // ComfyUI 0.33 gives CFGNorm a second row (pre_cfg): room for it on every host
      cfgNorm: { type: "CFGNorm", pos: [1070, 40], size: [230, 82], widgets: { strength: 1.0 } },
      positive: { type: "TextEncodeQwenImageEditPlus", pos: [370, 40], size: [340, 168], title: "Edit instruction",
        widgets: { prompt: "turn the cat into a marble statue" } },
      negative: { type: "TextEncodeQwenImageEditPlus", pos: under("positive"), size: [340, 168], ...NEGATIVE,
        title: "Negative (empty)", widgets: { prompt: "" } },
      source: { type: "FluxKontextImageScale", pos: under("negative"), size: [320, 0], title: "Source at about 1 MP" },
      segment: { type: "ConceptAttentionSegmentImage", pos: [740, 40], size: [300, 0], ...OURS,
        widgets: { concepts: "cat, background", caption: "a cat", noise_level: 0.5, noise_samples: 2 } },
      mask: conceptMask(under("segment"), { concepts: "cat", grow: 12, blur: 4, fill_holes: true }),
      encode: { type: "VAEEncode", pos: under("cfgNorm") },
      region: { type: "SetLatentNoiseMask", pos: under("encode"), title: "Edit only inside the mask" },
      ksampler: { type: "KSampler", pos: under("region"), title: "KSampler (edit)",
        widgets: { seed: 21, steps: 20, cfg: 2.5, sampler_name: "euler", scheduler: "simple", denoise: 1.0 } },
      decode: { type: "VAEDecode", pos: [1330, 40] },
      composite: { type: "ImageCompositeMasked", pos: under("decode"), title: "Edit over the source" },
      save: { type: "SaveImage", pos: under("composite"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/qwen_image_edit" } },
      about: note(under("ksampler"), [560, 280], `### Qwen-Image-Edit inside a concept mask

The source is scaled to about 1 MP, as ComfyUI's official template does. **Segment Image** maps
\`cat, background\` in it with the edit model itself, and **Concept Mask** cuts out the \`cat\`
(grown and feathered). The edit (Flow Shift 3, CFGNorm, 20 steps at cfg 2.5) then samples only
inside that mask (**SetLatentNoiseMask**), and **ImageCompositeMasked** pastes the edited cat back
over the source through the same mask: everything outside the cat stays pixel for pixel.

Change the concepts and the instruction together, e.g. \`sofa\` and "make the sofa green leather".

${QWEN_FILES(MODEL.qwenImageEdit)}`),
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
  "Z-Image Turbo - concept mask": {
    nodes: {
      zimage: unet(MODEL.zImageTurbo, [COLUMN.loaders, 40], "Load Z-Image-Turbo"),
      shift: flowShift(under("zimage"), 3.0),
      clip: zImageClip(under("shift")),
      vae: vae(under("clip"), MODEL.zImageVae),
      positive: prompt("A red vintage bicycle leaning against a white brick wall, a potted sunflower beside it on "
        + "the pavement, bright summer daylight, photograph", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 11, steps: 8, cfg: 1.0, sampler_name: "res_multistep",
        concepts: "bicycle, sunflower, wall, pavement" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      generated: { type: "PreviewImage", pos: under("decode"), size: [260, 260], title: "Generated image" },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("generated"), { concepts: "bicycle", grow: 4, blur: 2, fill_holes: true }),
      colour: { type: "EmptyImage", pos: under("sampler"), title: "Blue",
        widgets: { width: 1024, height: 1024, batch_size: 1, color: 0x2f5fd0 } },
      tint: { type: "ImageBlend", pos: under("colour"), title: "Bicycle tinted blue",
        widgets: { blend_factor: 0.6, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: under("generated", COLUMN.maps), title: "Bicycle recoloured" },
      save: { type: "SaveImage", pos: under("composite"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/z_image_turbo" } },
      about: note(under("latent", COLUMN.loaders), [730, 280], `### Z-Image-Turbo with a concept mask

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
  "Z-Image Turbo - photo to concept mask": {
    nodes: {
      image: { type: "LoadImage", pos: [20, 40], size: [320, 320], widgets: { image: "example.png" } },
      zimage: unet(MODEL.zImageTurbo, under("image"), "Load Z-Image-Turbo"),
      clip: zImageClip(under("zimage")),
      vae: vae(under("clip"), MODEL.zImageVae),
      segment: { type: "ConceptAttentionSegmentImage", pos: [370, 40], size: [300, 0], ...OURS,
        widgets: { concepts: "girl, dress, grass, sky", caption: "a girl in a dress on grass under the sky" } },
      saliency: saliency([1030, 40]),
      mask: conceptMask([700, 40], { concepts: "dress", grow: 8, blur: 2, fill_holes: true }),
      preview: { type: "MaskPreview", pos: under("mask"), size: [300, 300], title: "dress mask" },
      about: note([1030, 440], [400, 280], `### Photo → concept mask with Z-Image

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
  "Lumina 2 - concept maps": {
    nodes: {
      checkpoint: { type: "CheckpointLoaderSimple", pos: [COLUMN.loaders, 40], size: [320, 0], models: [MODEL.lumina2],
        widgets: { ckpt_name: MODEL.lumina2.name } },
      shift: flowShift(under("checkpoint"), 6.0),
      positive: { ...prompt(`${LUMINA2_SYSTEM_PROMPT}a fox sitting in a snowy pine forest at dawn, soft pink light`,
        [COLUMN.prompts, 40]), size: [340, 160] },
      negative: { ...negative(`${LUMINA2_SYSTEM_PROMPT}blurry, low quality`, under("positive"), "Negative prompt"),
        size: [340, 160] },
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 5, steps: 25, cfg: 4.0, sampler_name: "res_multistep",
        concepts: "fox, snow, trees, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/lumina2" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "fox" }),
      about: note(under("shift"), [360, 260], `### Lumina 2 with concept maps

Generates with Lumina 2 as ComfyUI's official template does (Flow Shift 6, res_multistep, 25 steps,
cfg 4, the system prompt before yours) and maps \`fox, snow, trees, sky\` while sampling.

- Lumina 2 is single-stream: text and image share every weight, and the concepts take those weights.
  Each concept is encoded alone, without the system prompt.
- **Concept Mask**: the \`fox\` mask, ready for inpainting or compositing.

**Model file** (as ComfyUI's official Lumina 2 template lists it):

${modelFiles(MODEL.lumina2)}`),
    },
    links: [
      ["checkpoint", "MODEL", "shift", "model"],
      ...generationLinks({ model: ["shift", "MODEL"], clip: ["checkpoint", "CLIP"], vae: ["checkpoint", "VAE"] }),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // Krea 2 Turbo as Comfy-Org's Krea-2 repository packages it (8 steps, euler / simple, cfg 1; the model's own
  // flow shift), maps made while sampling.
  "Krea 2 Turbo - concept maps": {
    minHost: "0.33.0",  // Krea 2 (SingleStreamDiT, CLIPLoader's "krea2" type) is new in ComfyUI 0.33
    nodes: {
      krea2: unet(MODEL.krea2Turbo, [COLUMN.loaders, 40], "Load Krea 2 Turbo"),
      clip: { type: "CLIPLoader", pos: under("krea2"), size: [320, 0], models: [MODEL.qwen3vl4b],
        widgets: { clip_name: MODEL.qwen3vl4b.name, type: "krea2" } },
      vae: vae(under("clip"), MODEL.krea2Vae),
      positive: prompt("A lighthouse on a rocky cliff above a stormy sea, seagulls in the grey sky, dramatic "
        + "evening light, photograph", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptySD3LatentImage", pos: under("negative"), widgets: { width: 1024, height: 1024, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 3, steps: 8, cfg: 1.0, concepts: "lighthouse, cliff, sea, sky" }),
      decode: { type: "VAEDecode", pos: [COLUMN.outputs, 40] },
      save: { type: "SaveImage", pos: under("decode"), size: [300, 300],
        widgets: { filename_prefix: "ConceptAttention/krea2" } },
      saliency: saliency([COLUMN.maps, 40]),
      mask: conceptMask(under("save"), { concepts: "lighthouse" }),
      about: note(under("latent", COLUMN.loaders), [730, 270], `### Krea 2 with concept maps

Generates with Krea 2 Turbo (8 steps, euler / simple, cfg 1) and maps
\`lighthouse, cliff, sea, sky\` while sampling. Needs ComfyUI 0.33 or newer.

- Krea 2 is single-stream: text and image share every weight, and the concepts take those weights.
  **layers** \`auto\` averages the last four of its 28 blocks.
- **Concept Mask**: the \`lighthouse\` mask, ready for inpainting or compositing.

**Model files** (as Comfy-Org's Krea-2 repository packages them):

${modelFiles(MODEL.krea2Turbo, MODEL.qwen3vl4b, MODEL.krea2Vae)}`),
    },
    links: [
      ...generationLinks({ model: ["krea2", "MODEL"], clip: ["clip", "CLIP"], vae: ["vae", "VAE"] }),
      ["decode", "IMAGE", "save", "images"],
    ],
  },

  // HunyuanVideo text-to-video as ComfyUI's official template runs it (ModelSamplingSD3 shift 7,
  // FluxGuidance 6 at cfg 1, euler / simple, 20 steps, 848x480, VAEDecodeTiled 256/64/64/8), on a
  // shorter clip, with per-frame concept maps and a mask that recolours the cat in every frame.
  "HunyuanVideo - per-frame concept mask": {
    nodes: {
      hunyuan: unet(MODEL.hunyuanVideo, [COLUMN.loaders, 40], "Load HunyuanVideo"),
      shift: { type: "ModelSamplingSD3", pos: under("hunyuan"), size: [320, 0], widgets: { shift: 7.0 } },
      clip: hunyuanVideoClip(under("shift")),
      vae: vae(under("clip"), MODEL.hunyuanVideoVae),
      positive: prompt("a fluffy ginger cat walking slowly through tall green grass in a sunny meadow, "
        + "clear blue sky, gentle breeze, realistic video", [COLUMN.prompts, 40]),
      guidance: { type: "FluxGuidance", pos: under("positive"), size: [340, 0], widgets: { guidance: 6.0 } },
      negative: negative("", under("guidance"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptyHunyuanLatentVideo", pos: under("negative"), size: [340, 0],
        widgets: { width: 848, height: 480, length: 33, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 12, steps: 20, cfg: 1.0, concepts: "cat, grass, sky" }),
      decode: { type: "VAEDecodeTiled", pos: [COLUMN.outputs, 40], size: [300, 0],
        widgets: { tile_size: 256, overlap: 64, temporal_size: 64, temporal_overlap: 8 } },
      generated: saveClip(under("decode"), "Generated clip", "ConceptAttention/hunyuan_video", 24),
      saliency: saliency([COLUMN.maps, 40]),
      heatmapClips: saveClip(under("saliency"), "Heatmap clips (concept after concept)",
        "ConceptAttention/hunyuan_video_heatmaps", 24),
      mask: conceptMask(under("generated"), { concepts: "cat", grow: 4, blur: 2, fill_holes: true,
        temporal_smoothing: 1.0 }),
      colour: { type: "EmptyImage", pos: under("latent"), size: [340, 0], title: "Violet",
        widgets: { width: 848, height: 480, batch_size: 1, color: 0x8a3ffc } },
      tint: { type: "ImageBlend", pos: under("colour"), size: [340, 0], title: "Clip tinted violet",
        widgets: { blend_factor: 0.7, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: under("sampler"), title: "Cat recoloured in every frame" },
      save: saveClip(under("heatmapClips"), "Recoloured clip", "ConceptAttention/hunyuan_video_recoloured", 24),
      about: note(under("vae"), [360, 390], `### HunyuanVideo with per-frame concept masks

Generates a 33-frame clip with HunyuanVideo as ComfyUI's official template does (shift 7,
FluxGuidance 6, cfg 1, 20 steps) and maps \`cat, grass, sky\` in every frame while sampling.

- **Saliency Map**: a heatmap clip per concept, saved one after the other.
- **Concept Mask**: the \`cat\` mask, one per frame, smoothed over neighbouring frames
  (**temporal_smoothing** 1) against flicker.
- **ImageCompositeMasked** puts a violet-tinted copy of the clip over it inside the mask only:
  the cat changes colour, everything else stays as generated.

Longer clips: **length** 4n+1 (73 in the official template). Past what fits in memory, add
**Context Windows (Manual)** (dim 2) after ModelSamplingSD3: each window's maps land on
its own frames. Lower **tile_size** in the tiled decode if it runs out of memory.

**Model files** (as ComfyUI's official HunyuanVideo template lists them):

${modelFiles(MODEL.hunyuanVideo, MODEL.clipL, MODEL.llavaLlama3, MODEL.hunyuanVideoVae)}`),
    },
    links: [
      ["hunyuan", "MODEL", "shift", "model"],
      ...generationLinks(HUNYUAN_VIDEO_LOADERS, "positive", "negative", "guidance"),
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ...recolourLinks("decode"),
    ],
  },

  // Mochi 1 preview as ComfyUI's Mochi example runs it (848x480, 37 frames, cfg 4.5, 30 steps), with the per-frame
  // mask recolouring the subject as the HunyuanVideo template does
  "Mochi - per-frame concept mask": {
    nodes: {
      mochi: unet(MODEL.mochi, [COLUMN.loaders, 40], "Load Mochi"),
      clip: { type: "CLIPLoader", pos: under("mochi"), size: [320, 0], models: [MODEL.t5],
        widgets: { clip_name: MODEL.t5.name, type: "mochi" } },
      vae: vae(under("clip"), MODEL.mochiVae),
      positive: prompt("a red kite flying over a green hill on a windy day, blue sky with white clouds, "
        + "realistic video", [COLUMN.prompts, 40]),
      negative: negative("", under("positive"), "Negative prompt"),
      latent: { type: "EmptyMochiLatentVideo", pos: under("negative"), size: [340, 0],
        widgets: { width: 848, height: 480, length: 37, batch_size: 1 } },
      sampler: sampler([COLUMN.sampler, 40], { seed: 9, steps: 30, cfg: 4.5, concepts: "kite, hill, sky" }),
      decode: { type: "VAEDecodeTiled", pos: [COLUMN.outputs, 40], size: [300, 0],
        widgets: { tile_size: 256, overlap: 64, temporal_size: 64, temporal_overlap: 8 } },
      generated: saveClip(under("decode"), "Generated clip", "ConceptAttention/mochi", 24),
      saliency: saliency([COLUMN.maps, 40]),
      heatmapClips: saveClip(under("saliency"), "Heatmap clips (concept after concept)",
        "ConceptAttention/mochi_heatmaps", 24),
      mask: conceptMask(under("generated"), { concepts: "kite", grow: 4, blur: 2, fill_holes: true,
        temporal_smoothing: 1.0 }),
      colour: { type: "EmptyImage", pos: under("latent"), size: [340, 0], title: "Violet",
        widgets: { width: 848, height: 480, batch_size: 1, color: 0x8a3ffc } },
      tint: { type: "ImageBlend", pos: under("colour"), size: [340, 0], title: "Clip tinted violet",
        widgets: { blend_factor: 0.7, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: under("sampler"), title: "Kite recoloured in every frame" },
      save: saveClip(under("heatmapClips"), "Recoloured clip", "ConceptAttention/mochi_recoloured", 24),
      about: note(under("vae"), [360, 330], `### Mochi with per-frame concept masks

Generates a 37-frame Mochi clip (cfg 4.5, 30 steps) and maps
\`kite, hill, sky\` in every frame while sampling.

- **Saliency Map**: a heatmap clip per concept.
- **Concept Mask**: the \`kite\` mask, one per frame, smoothed over
  neighbouring frames; the kite is recoloured inside it.

Lengths are 6n+1 frames. Lower **tile_size** if decoding runs
out of memory.

**Model files** (as ComfyUI's Mochi example lists them):

${modelFiles(MODEL.mochi, MODEL.t5, MODEL.mochiVae)}`),
    },
    links: [
      ...generationLinks(MOCHI_LOADERS),
      ...recolourLinks("decode"),
    ],
  },

  // The cat's objects in the clip's first frame, from its concept maps, as SAM3 Video Track's initial masks:
  // SAM3 follows each one through the clip.
  "HunyuanVideo - SAM3 track of a concept": {
    minHost: "0.33.0",  // SAM3 Video Track is new in ComfyUI 0.33
    nodes: {
      hunyuan: unet(MODEL.hunyuanVideo, [COLUMN.loaders, 40], "Load HunyuanVideo"),
      shift: { type: "ModelSamplingSD3", pos: under("hunyuan"), size: [320, 0], widgets: { shift: 7.0 } },
      clip: hunyuanVideoClip(under("shift")),
      vae: vae(under("clip"), MODEL.hunyuanVideoVae),
      positive: prompt("a fluffy ginger cat walking slowly through tall green grass in a sunny meadow, "
        + "clear blue sky, gentle breeze, realistic video", [COLUMN.prompts, 40]),
      guidance: { type: "FluxGuidance", pos: under("positive"), size: [340, 0], widgets: { guidance: 6.0 } },
      negative: negative("", under("guidance"), "Negative prompt (unused at cfg 1)"),
      latent: { type: "EmptyHunyuanLatentVideo", pos: under("negative"), size: [340, 0],
        widgets: { width: 848, height: 480, length: 33, batch_size: 1 } },
      sam3: sam3Loader(under("latent")),
      sampler: sampler([COLUMN.sampler, 40], { seed: 12, steps: 20, cfg: 1.0, concepts: "cat, grass, sky" }),
      decode: { type: "VAEDecodeTiled", pos: [COLUMN.outputs, 40], size: [300, 0],
        widgets: { tile_size: 256, overlap: 64, temporal_size: 64, temporal_overlap: 8 } },
      prompts: conceptPrompts(under("decode"), { concepts: "cat", batch_index: 0 }),
      track: { type: "SAM3_VideoTrack", pos: under("prompts"), size: [300, 0],
        widgets: { detection_threshold: 0.5, max_objects: 4, detect_interval: 1 } },
      preview: { type: "SAM3_TrackPreview", pos: [COLUMN.maps, 40], size: [320, 0],
        widgets: { opacity: 0.5, fps: 24.0 } },
      tomask: { type: "SAM3_TrackToMask", pos: under("sampler"), size: [240, 0], widgets: { object_indices: "" } },
      save: saveClip(under("preview"), "Recoloured clip", "ConceptAttention/hunyuan_video_sam3", 24),
      colour: { type: "EmptyImage", pos: under("save"), size: [320, 0], title: "Violet",
        widgets: { width: 848, height: 480, batch_size: 1, color: 0x8a3ffc } },
      tint: { type: "ImageBlend", pos: under("colour"), size: [320, 0], title: "Clip tinted violet",
        widgets: { blend_factor: 0.7, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: under("tomask"), title: "Tracked cat recoloured" },
      about: note(under("vae"), [360, 370], `### A concept tracked by SAM3

Generates a 33-frame HunyuanVideo clip as the per-frame mask template does and maps
\`cat, grass, sky\` while sampling.

- **Concept Prompts** gives the cat's objects in the first frame (\`batch_index\` 0), one mask each.
- **SAM3 Video Track** starts from them and follows each one through the clip at full resolution.
- **SAM3 Track Preview** shows the clip with each tracked object in its colour.
- **SAM3 Track to Mask** gives the per-frame mask; the cat is recoloured inside it.

**Model files** (HunyuanVideo's as ComfyUI's official template lists them):

${modelFiles(MODEL.hunyuanVideo, MODEL.clipL, MODEL.llavaLlama3, MODEL.hunyuanVideoVae, MODEL.sam3)}`),
    },
    links: [
      ["hunyuan", "MODEL", "shift", "model"],
      ...generationLinks(HUNYUAN_VIDEO_LOADERS, "positive", "negative", "guidance")
        .filter(([, , to]) => to !== "saliency" && to !== "mask"),
      ["positive", "CONDITIONING", "guidance", "conditioning"],
      ["sampler", "CONCEPT_MAPS", "prompts", "concept_maps"],
      ["decode", "IMAGE", "prompts", "image"],
      ["decode", "IMAGE", "track", "images"],
      ["sam3", "MODEL", "track", "model"],
      ["prompts", "objects", "track", "initial_mask"],
      ["track", "track_data", "preview", "track_data"],
      ["decode", "IMAGE", "preview", "images"],
      ["track", "track_data", "tomask", "track_data"],
      ["decode", "IMAGE", "tint", "image1"],
      ["colour", "IMAGE", "tint", "image2"],
      ["decode", "IMAGE", "composite", "destination"],
      ["tint", "IMAGE", "composite", "source"],
      ["tomask", "masks", "composite", "mask"],
      ["composite", "IMAGE", "save", "images"],
    ],
  },

  // CogVideoX text to video through VOID pass 1 (CogVideoX-Fun V1.5 5B inpainting), the way CogVideoX-Fun
  // makes text to video with its inpainting models: every pixel of a blank clip marked for generation
  // (VOIDInpaintConditioning's mask, 1 = generate), so the prompt makes the whole clip. Size, length, steps,
  // cfg and sampling are those of ComfyUI 0.33's "Video Inpaint (VOID)" blueprint (672x384, 45 frames, 30
  // steps, cfg 6, an empty negative prompt): SamplerCustomAdvanced with CFGGuider and its DDIM sampler
  // (VOIDSampler: KSampler's samplers scale the noise for sigma space, CogVideoX's v-prediction wants the
  // DDIM update on unscaled latents). The Concept Attention Model and Concept Maps map the run.
  "CogVideoX - per-frame concept mask": {
    minHost: "0.33.0",  // CogVideoX (CLIPLoader's "cogvideox" type, the VOID nodes) is new in ComfyUI 0.33
    nodes: {
      cogvideox: unet(MODEL.cogvideox, [20, 40], "Load CogVideoX-Fun 1.5 5B (VOID pass 1)"),
      clip: cogvideoxClip(under("cogvideox")),
      vae: vae(under("clip"), MODEL.cogvideoxVae),
      camodel: { ...conceptModel([680, 40], { concepts: "cat, grass, sky" }), size: [250, 0] },
      positive: { ...prompt("A fluffy ginger cat walks slowly through tall green grass in a sunny meadow. The "
        + "grass sways in a gentle breeze under a clear blue sky. Realistic, natural light.", [370, 40]), size: [280, 130] },
      negative: { ...negative("", under("positive"), "Negative prompt (empty)"), size: [280, 100] },
      blank: { type: "EmptyImage", pos: under("negative"), size: [280, 0], title: "Blank clip",
        widgets: { width: 672, height: 384, batch_size: 45, color: 0x000000 } },
      white: { type: "EmptyImage", pos: under("blank"), size: [280, 0], title: "Inpaint every pixel",
        widgets: { width: 672, height: 384, batch_size: 45, color: 0xffffff } },
      ones: { type: "ImageToMask", pos: under("white"), size: [280, 0], title: "Mask of ones (generate everywhere)",
        widgets: { channel: "red" } },
      condition: { type: "VOIDInpaintConditioning", pos: under("camodel"), size: [250, 0],
        widgets: { width: 672, height: 384, length: 45, batch_size: 1 } },
      guider: { type: "CFGGuider", pos: under("condition"), size: [250, 0], widgets: { cfg: 6.0 } },
      noise: { type: "RandomNoise", pos: under("guider"), size: [250, 0], widgets: { noise_seed: 12 } },
      select: { type: "VOIDSampler", pos: under("noise"), size: [250, 0], title: "CogVideoX DDIM sampler" },
      scheduler: { type: "BasicScheduler", pos: under("select"), size: [250, 0],
        widgets: { scheduler: "simple", steps: 30, denoise: 1.0 } },
      sca: { type: "SamplerCustomAdvanced", pos: [960, 40], size: [250, 0] },
      maps: { ...conceptMaps(under("sca")), size: [250, 0] },
      decode: { type: "VAEDecode", pos: under("maps") },
      generated: saveClip([1240, 40], "Generated clip", "ConceptAttention/cogvideox", 8),
      saliency: { ...saliency([1570, 40]), size: [300, 150] },
      heatmapClips: saveClip(under("saliency"), "Heatmap clips (concept after concept)",
        "ConceptAttention/cogvideox_heatmaps", 8),
      mask: conceptMask(under("generated"), { concepts: "cat", grow: 4, blur: 2, fill_holes: true,
        temporal_smoothing: 1.0 }),
      colour: { type: "EmptyImage", pos: under("decode"), size: [250, 0], title: "Violet",
        widgets: { width: 672, height: 384, batch_size: 1, color: 0x8a3ffc } },
      tint: { type: "ImageBlend", pos: under("colour"), size: [250, 0], title: "Clip tinted violet",
        widgets: { blend_factor: 0.7, blend_mode: "multiply" } },
      composite: { type: "ImageCompositeMasked", pos: under("tint"), size: [250, 0],
        title: "Cat recoloured in every frame" },
      save: saveClip(under("mask"), "Recoloured clip", "ConceptAttention/cogvideox_recoloured", 8),
      about: note(under("vae"), [320, 520], `### CogVideoX with per-frame concept masks

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

${modelFiles(MODEL.cogvideox, MODEL.t5, MODEL.cogvideoxVae)}

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
export const RUNNABLE = "Demo on any CPU - concept maps and a mask";
