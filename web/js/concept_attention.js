// ConceptAttention front end: a labelled gallery of the Saliency Map node's heatmaps, and a Concept Mask
// node that shows `threshold` only for the method that reads it.
//
// The Saliency Map's UI output carries `images` (the heatmaps, image by image, concept by concept) and
// `concepts` (the concept name of each image), and `steps` where a block cache skipped some of the chosen
// steps (which steps the maps come from, shown above the heatmaps). The gallery replaces ComfyUI's stock preview
// on that node only, in the classic canvas and in Nodes 2.0 alike; click a heatmap to enlarge it. A colour bar
// under the heatmaps reads low to high. The Concept Mask node keeps the stock preview.
// The gallery is drawn from the node's outputs whenever the frontend sets them: after a run (onExecuted) and
// when it restores them on new node instances (a language switch or a node-definition reload rebuilds every
// node, and replays the outputs through onNodeOutputsUpdated, not onExecuted).
// Nothing here is needed to run the nodes: without this file the stock preview shows the heatmaps.
//
// This file is served at /extensions/<pack>/js/, three levels below the site root.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const SALIENCY_NODE = "ConceptAttentionSaliencyMap";
const MASK_NODE = "ConceptAttentionMask";
// Concept Mask's methods that read `threshold` (argmax on one concept uses its own fixed cut)
const THRESHOLD_METHODS = new Set(["threshold"]);
// The heatmaps' colormap (OpenCV's inferno, as ca_core.maps.colourise draws them), low to high
const INFERNO = ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06",
  "#f7d13d", "#fcffa4"];
const WIDGET_NAME = "concept_gallery";
const STYLE_ID = "ca-gallery-style";

const CSS = `
.ca-gallery { display: grid; gap: 6px; padding: 4px; box-sizing: border-box; width: 100%;
  height: 100%; overflow: auto; align-content: start; }
.ca-gallery-note { grid-column: 1 / -1; font: 12px sans-serif; color: var(--input-text, #ddd);
  opacity: 0.8; white-space: normal; }
.ca-gallery-item { margin: 0; cursor: zoom-in; display: flex; flex-direction: column; min-width: 0; }
.ca-gallery-item img { width: 100%; aspect-ratio: var(--ca-aspect, 1); object-fit: contain;
  background: #111; border-radius: 4px; display: block; }
.ca-gallery-item figcaption { font: 12px sans-serif; color: var(--input-text, #ddd); text-align: center;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding-top: 2px; }
.ca-gallery-item:hover img { outline: 2px solid var(--p-primary-color, #4a9eff); }
.ca-gallery-legend { grid-column: 1 / -1; display: flex; align-items: center; gap: 6px;
  font: 11px sans-serif; color: var(--input-text, #ddd); opacity: 0.85; }
.ca-gallery-legend-bar { flex: 1; max-width: 160px; height: 8px; border-radius: 2px;
  background: linear-gradient(to right, ${INFERNO.join(", ")}); }
.ca-lightbox { position: fixed; inset: 0; z-index: 10000; background: rgba(0, 0, 0, 0.85);
  display: flex; flex-direction: column; align-items: center; justify-content: center; cursor: zoom-out; }
.ca-lightbox img { width: 90vw; height: 85vh; object-fit: contain; image-rendering: pixelated; }
.ca-lightbox-caption { font: 16px sans-serif; color: #eee; margin-top: 8px; }
`;

function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  document.head.appendChild(style);
}

function viewUrl(image) {
  const params = new URLSearchParams({
    filename: image.filename,
    subfolder: image.subfolder ?? "",
    type: image.type ?? "temp",
  });
  return api.apiURL(`/view?${params}${app.getPreviewFormatParam?.() ?? ""}${app.getRandParam?.() ?? ""}`);
}

/** One entry per heatmap: its URL and a label (the concept, plus the image number in a batch). */
function galleryEntries(message) {
  const images = message?.images ?? [];
  const concepts = message?.concepts ?? [];
  const perImage = new Set(concepts).size || images.length || 1;
  const batch = Math.ceil(images.length / perImage);
  return images.map((image, index) => {
    const concept = concepts[index] ?? `#${index + 1}`;
    const imageNumber = Math.floor(index / perImage) + 1;
    return {
      url: viewUrl(image),
      concept,
      imageNumber,
      label: batch > 1 ? `${concept} · image ${imageNumber}` : concept,
    };
  });
}

function openLightbox(entry) {
  closeLightbox();
  const box = document.createElement("div");
  box.className = "ca-lightbox";
  const img = document.createElement("img");
  img.src = entry.url;
  img.alt = entry.label;
  const caption = document.createElement("div");
  caption.className = "ca-lightbox-caption";
  caption.textContent = entry.label;
  box.append(img, caption);
  box.addEventListener("click", closeLightbox);
  document.addEventListener("keydown", onLightboxKey, true);
  document.body.appendChild(box);
}

function onLightboxKey(event) {
  if (event.key !== "Escape") return;
  event.stopPropagation();
  closeLightbox();
}

function closeLightbox() {
  document.querySelector(".ca-lightbox")?.remove();
  document.removeEventListener("keydown", onLightboxKey, true);
}

function renderGallery(node, entries, note) {
  ensureStyle();
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    const element = document.createElement("div");
    element.className = "ca-gallery";
    widget = node.addDOMWidget(WIDGET_NAME, "ca-gallery", element, {
      serialize: false,
      hideOnZoom: false,
      getMinHeight: () => galleryHeight(node),
    });
    // Not a value of the node: keeps widgets_values and the API prompt unchanged.
    widget.serialize = false;
    widget.serializeValue = () => undefined;
  }
  const element = widget.element;
  const perImage = new Set(entries.map((e) => e.concept)).size || 1;
  const columns = perImage <= 6 ? perImage : 4;  // one row per image when it fits
  element.style.gridTemplateColumns = `repeat(${columns}, minmax(0, 1fr))`;
  const noteElement = document.createElement("div");
  noteElement.className = "ca-gallery-note";
  noteElement.textContent = note ?? "";
  element.replaceChildren(
    ...(note ? [noteElement] : []),
    legendElement(),
    ...entries.map((entry) => {
      const figure = document.createElement("figure");
      figure.className = "ca-gallery-item";
      figure.dataset.concept = entry.concept;
      figure.dataset.image = String(entry.imageNumber);
      figure.title = `${entry.label} (click to enlarge)`;
      const img = document.createElement("img");
      img.src = entry.url;
      img.alt = entry.label;
      img.addEventListener("load", () => fitToAspect(node, element, img), { once: true });
      const caption = document.createElement("figcaption");
      caption.textContent = entry.label;
      figure.append(img, caption);
      figure.addEventListener("click", () => openLightbox(entry));
      return figure;
    }),
  );
  node.caGalleryCount = entries.length;
  node.caGalleryNote = Boolean(note);
  node.caGalleryColumns = columns;
  const [width, height] = node.computeSize();
  node.setSize([Math.max(node.size[0], width), Math.max(node.size[1], height)]);
  node.setDirtyCanvas?.(true, true);
}

/** "low [colour bar] high": what the heatmaps' colours mean, whatever the image under them. */
function legendElement() {
  const legend = document.createElement("div");
  legend.className = "ca-gallery-legend";
  legend.title = "Heatmap colours: the concept's attention, low to high";
  const bar = document.createElement("span");
  bar.className = "ca-gallery-legend-bar";
  const low = document.createElement("span");
  low.textContent = "low";
  const high = document.createElement("span");
  high.textContent = "high";
  legend.append(low, bar, high);
  return legend;
}

/** Draw (or clear) a Saliency Map node's gallery from its outputs, once per set of outputs. */
function showOutputs(node, message) {
  const shown = JSON.stringify([message?.images, message?.concepts, message?.steps]);
  if (shown === node.caShown) return;
  node.caShown = shown;
  const entries = galleryEntries(message);
  if (entries.length) renderGallery(node, entries, message?.steps?.[0]);
}

/** Show `threshold` only where the chosen method reads it, in the classic canvas and Nodes 2.0. */
function showThresholdFor(node) {
  const method = node.widgets?.find((w) => w.name === "method");
  const threshold = node.widgets?.find((w) => w.name === "threshold");
  if (!method || !threshold) return;
  const hidden = !THRESHOLD_METHODS.has(method.value);
  if (threshold.hidden === hidden) return;
  threshold.hidden = hidden;  // the classic canvas
  // Nodes 2.0 reads options.hidden through the frontend's reactive copy of the widget's state, where the
  // frontend keeps one (frontend 1.49); writing through it redraws the node.
  threshold.options ??= {};
  threshold.options.hidden = hidden;
  const state = threshold._state?.options;
  if (state && state !== threshold.options) state.hidden = hidden;
  node.setSize([node.size[0], node.computeSize()[1]]);
  node.setDirtyCanvas?.(true, true);
}

function outputsOf(node) {
  return app.nodeOutputs?.[String(node.id)];
}

/** Tiles take the heatmaps' aspect ratio (the image's); the node's height follows. */
function fitToAspect(node, element, img) {
  const aspect = img.naturalHeight / img.naturalWidth;
  if (!aspect || aspect === node.caAspect) return;
  node.caAspect = aspect;
  element.style.setProperty("--ca-aspect", `${img.naturalWidth} / ${img.naturalHeight}`);
  node.setSize([node.size[0], node.computeSize()[1]]);
  node.setDirtyCanvas?.(true, true);
}

function galleryHeight(node) {
  const count = node.caGalleryCount ?? 0;
  if (!count) return 0;
  const columns = node.caGalleryColumns ?? 1;
  const tile = Math.max(48, (node.size[0] - 20) / columns) * (node.caAspect ?? 1);
  const legend = 20;  // the colour bar's row
  return Math.ceil(count / columns) * (tile + 24) + 8 + legend + (node.caGalleryNote ? 20 : 0);
}

app.registerExtension({
  name: "ConceptAttention.SaliencyGallery",
  // Called again for every node type when the frontend re-registers them (a language switch), so the
  // wrappers below are on the new prototypes too.
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name === MASK_NODE) {
      const onNodeCreated = nodeType.prototype.onNodeCreated;
      nodeType.prototype.onNodeCreated = function () {
        const made = onNodeCreated?.apply(this, arguments);
        const method = this.widgets?.find((w) => w.name === "method");
        if (method) {
          const callback = method.callback;
          method.callback = (...args) => {
            const result = callback?.apply(method, args);
            showThresholdFor(this);
            return result;
          };
        }
        showThresholdFor(this);
        return made;
      };
      // a loaded workflow sets the method's value without its callback
      const onConfigure = nodeType.prototype.onConfigure;
      nodeType.prototype.onConfigure = function () {
        const configured = onConfigure?.apply(this, arguments);
        showThresholdFor(this);
        return configured;
      };
      return;
    }
    if (nodeData?.name !== SALIENCY_NODE) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      showOutputs(this, message);
    };

    // The classic canvas's stock preview would show the same heatmaps again, unlabelled, under the gallery:
    // it is drawn from onDrawBackground, so the gallery takes its place there.
    const onDrawBackground = nodeType.prototype.onDrawBackground;
    nodeType.prototype.onDrawBackground = function () {
      const outputs = outputsOf(this);
      if (outputs?.concepts) {
        showOutputs(this, outputs);
        return;
      }
      if (this.caGalleryCount) return;
      return onDrawBackground?.apply(this, arguments);
    };
  },

  nodeCreated(node) {
    // Nodes 2.0 draws its own preview of `images` under the node unless the node opts out.
    if (node.comfyClass === SALIENCY_NODE) node.hideOutputImages = true;
  },

  // Outputs the frontend sets without a run: restored onto rebuilt nodes, or loaded with a workflow.
  onNodeOutputsUpdated(nodeOutputs) {
    for (const [id, message] of Object.entries(nodeOutputs ?? {})) {
      const node = app.graph?.getNodeById?.(id);
      if (node?.comfyClass === SALIENCY_NODE && message?.concepts) showOutputs(node, message);
    }
  },
});
