// Steps on a ComfyUI page that the builder and the checks share: load a workflow, run it with the
// Run button, read the Saliency Map gallery, take pictures.
import fs from "node:fs";
import { settle } from "./browser.mjs";

/**
 * Load a UI-format workflow the way the frontend loads a template, then show all of it.
 * Returns the nodes the workflow's own saved view (extra.ds) left off screen.
 */
export async function loadWorkflow(page, workflow, name) {
  await page.evaluate(async ([json, title]) => {
    await window.app.loadGraphData(structuredClone(json), true, true, title);
  }, [workflow, name]);
  await settle(page, 100);
  const offscreen = await page.evaluate(() => window.caTest.offscreen());
  await page.evaluate(() => window.caTest.fitView());
  await settle(page);
  return { offscreen };
}

/**
 * Where each frontend puts the Run (queue) button, tried in order. The legacy floating menu's
 * #queue-button is hidden whenever the top menu is on, so it is never one of them.
 */
const RUN_BUTTONS = [
  'button[data-testid="queue-button"]', // frontend 1.49 (ComfyUI 0.33): the test id is on the button itself
  '[data-testid="queue-button"] button', // frontend 1.27-1.35 (ComfyUI 0.3.64, 0.8): on the SplitButton around it
];

/** The first visible Run button of RUN_BUTTONS, waiting for the frontend to render one. */
export async function runButton(page, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    for (const selector of RUN_BUTTONS) {
      const button = page.locator(selector).first();
      if (await button.isVisible()) return button;
    }
    if (Date.now() > deadline) throw new Error(`no visible Run button (tried ${RUN_BUTTONS.join(" | ")})`);
    await page.waitForTimeout(250);
  }
}

/** Queue the loaded workflow with the Run button and wait until the server reports the end. */
export async function runWithButton(page, timeout = 120_000) {
  await page.evaluate(() => {
    const { api } = window.comfyAPI.api;
    const run = (window.caTest.run = { events: [], done: false, error: null });
    const finish = (error) => { run.done = true; run.error = error; };
    api.addEventListener("execution_start", (e) => run.events.push(["execution_start", e.detail?.prompt_id]));
    api.addEventListener("executed", (e) => run.events.push(["executed", String(e.detail?.node)]));
    api.addEventListener("execution_error", (e) => finish(e.detail?.exception_message ?? "execution_error"));
    api.addEventListener("execution_interrupted", () => finish("interrupted"));
    api.addEventListener("execution_success", () => finish(null));
    // Older servers end a run with an `executing` event for no node.
    api.addEventListener("executing", (e) => {
      if (e.detail === null && run.events.length) finish(run.error);
    });
  });
  await (await runButton(page)).click();
  await page.waitForFunction(() => window.caTest.run.done, null, { timeout });
  const result = await page.evaluate(() => window.caTest.run);
  await page.evaluate(() => window.caTest.fitView());
  await settle(page, 800);
  return result;
}

/** What the Saliency Map gallery shows, read from the DOM. */
export async function readGallery(page) {
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll(".ca-gallery .ca-gallery-item img")];
    return imgs.length && imgs.every((img) => img.complete);
  }, null, { timeout: 30_000 }).catch(() => {});
  return page.evaluate(() => [...document.querySelectorAll(".ca-gallery .ca-gallery-item")].map((item) => {
    const img = item.querySelector("img");
    const box = item.getBoundingClientRect();
    return {
      concept: item.dataset.concept,
      label: item.querySelector("figcaption")?.textContent ?? "",
      src: img?.getAttribute("src") ?? "",
      loaded: !!img && img.complete && img.naturalWidth > 0,
      width: img?.naturalWidth ?? 0,
      height: img?.naturalHeight ?? 0,
      visible: box.width > 0 && box.height > 0,
    };
  }));
}

/** The stock image preview of a node (what ComfyUI draws on the canvas), from the frontend's state. */
export async function readPreview(page, nodeId) {
  await page.waitForFunction((id) => {
    const node = window.app.graph.getNodeById(id);
    return node?.imgs?.length && node.imgs.every((img) => img.complete && img.naturalWidth > 0);
  }, nodeId, { timeout: 30_000 }).catch(() => {});
  return page.evaluate((id) => {
    const node = window.app.graph.getNodeById(id);
    const outputs = window.app.nodeOutputs?.[String(id)];
    return {
      outputImages: outputs?.images?.length ?? 0,
      shown: (node?.imgs ?? []).map((img) => ({ width: img.naturalWidth, height: img.naturalHeight })),
    };
  }, nodeId);
}

/** A screenshot as a small JPEG (for template thumbnails): shrunk in a blank page, no extra tools. */
export async function jpegThumbnail(context, png, file, width = 800, quality = 0.8) {
  const page = await context.newPage();
  try {
    const base64 = await page.evaluate(async ([data, w, q]) => {
      const img = new Image();
      img.src = `data:image/png;base64,${data}`;
      await img.decode();
      const h = Math.round((img.naturalHeight * w) / img.naturalWidth);
      const canvas = new OffscreenCanvas(w, h);
      const ctx = canvas.getContext("2d");
      ctx.imageSmoothingQuality = "high";
      ctx.drawImage(img, 0, 0, w, h);
      const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: q });
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let binary = "";
      for (const b of bytes) binary += String.fromCharCode(b);
      return btoa(binary);
    }, [png.toString("base64"), width, quality]);
    fs.writeFileSync(file, Buffer.from(base64, "base64"));
  } finally {
    await page.close();
  }
}
