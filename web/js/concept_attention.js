// ConceptAttention front end: a labelled gallery of the Saliency Map node's heatmaps.
//
// The node's UI output carries `images` (the heatmaps, image by image, concept by concept) and
// `concepts` (the concept name of each image), and `steps` where a block cache skipped some of the chosen
// steps (which steps the maps come from, shown above the heatmaps). The gallery replaces ComfyUI's stock preview grid
// on that node only; click a heatmap to enlarge it. The Concept Mask node keeps the stock preview.
// Nothing here is needed to run the nodes: without this file the stock preview shows the heatmaps.
//
// This file is served at /extensions/<pack>/js/, three levels below the site root.
import { app } from "../../../scripts/app.js";
import { api } from "../../../scripts/api.js";

const SALIENCY_NODE = "ConceptAttentionSaliencyMap";
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
  return Math.ceil(count / columns) * (tile + 24) + 8 + (node.caGalleryNote ? 20 : 0);
}

app.registerExtension({
  name: "ConceptAttention.SaliencyGallery",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== SALIENCY_NODE) return;

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const entries = galleryEntries(message);
      if (entries.length) renderGallery(this, entries, message?.steps?.[0]);
    };

    // The stock preview would show the same heatmaps again, unlabelled, under the gallery.
    const onDrawBackground = nodeType.prototype.onDrawBackground;
    nodeType.prototype.onDrawBackground = function () {
      if (this.caGalleryCount) return;
      return onDrawBackground?.apply(this, arguments);
    };
  },
});
