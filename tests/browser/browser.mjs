// Shared by the browser checks and the workflow builder: Debian's chromium through playwright-core,
// ComfyUI's real frontend, nothing reached but the ComfyUI server on 127.0.0.1.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CA_CHROMIUM || "/usr/bin/chromium";
export const PACK = "comfyui-concept-attention";
export const EXTENSION_NAME = "ConceptAttention.SaliencyGallery";

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-proxy-server",
  // No name resolution at all, so nothing but 127.0.0.1 can be reached even by chromium itself.
  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
];

/** Launch chromium on a fresh profile, open ComfyUI at url and wait until its node types are registered. */
export async function openComfy(url, { viewport = { width: 1400, height: 900 }, timeout = 90_000 } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ca-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport, deviceScaleFactor: 1,
  });
  await context.route((u) => u.hostname !== "127.0.0.1", (route) => route.abort());
  const page = context.pages()[0] ?? (await context.newPage());
  const log = { console: [], pageErrors: [], blocked: [], failed: [] };
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      log.console.push({ type: msg.type(), text: msg.text(), url: msg.location()?.url ?? "" });
    }
  });
  page.on("pageerror", (error) => log.pageErrors.push({ text: String(error), stack: error.stack ?? "" }));
  // every answer of 400 or more from the server (a help page or script the frontend asked for and missed)
  page.on("response", (response) => {
    if (response.status() >= 400) log.failed.push({ url: response.url(), status: response.status() });
  });
  page.on("requestfailed", (request) => {
    if (new URL(request.url()).hostname !== "127.0.0.1") log.blocked.push(request.url());
  });
  await page.goto(url, { timeout });
  await untilReady(page, timeout);
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, log, close };
}

/** Wait until the page's ComfyUI has registered its node types, then install the in-page helpers. */
export async function untilReady(page, timeout = 90_000) {
  await page.waitForFunction(
    () => window.app?.graph && window.LiteGraph?.registered_node_types?.KSampler && window.app.canvas,
    null, { timeout },
  );
  await page.evaluate(installHelpers);
}

/** In-page helpers, reached as window.caTest.*. */
function installHelpers() {
  const nodesOf = (graph) => graph.nodes ?? graph._nodes ?? [];
  window.caTest = {
    nodes: () => nodesOf(window.app.graph),
    /** [x, y, width, height] around all nodes, in graph units. */
    bounds() {
      let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
      // From pos and size: boundingRect is only refreshed when a node is drawn.
      const title = window.LiteGraph.NODE_TITLE_HEIGHT ?? 30;
      for (const node of nodesOf(window.app.graph)) {
        const [x, y] = node.pos;
        const [w, h] = node.size;
        x0 = Math.min(x0, x); y0 = Math.min(y0, y - title); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
      }
      return [x0, y0, x1 - x0, y1 - y0];
    },
    fitView(zoom = 0.9) {
      if (!nodesOf(window.app.graph).length) return;
      window.app.canvas.ds.fitToBounds(window.caTest.bounds(), { zoom });
      window.app.canvas.setDirty(true, true);
    },
    /** The page area that shows all nodes, for a screenshot clip. */
    graphClip(pad = 16) {
      const [x, y, w, h] = window.caTest.bounds();
      const { ds, canvas } = window.app.canvas;
      const box = canvas.getBoundingClientRect();
      const left = Math.max(0, box.left + (x + ds.offset[0]) * ds.scale - pad);
      const top = Math.max(0, box.top + (y + ds.offset[1]) * ds.scale - pad);
      return {
        x: left, y: top,
        width: Math.min(window.innerWidth - left, w * ds.scale + 2 * pad),
        height: Math.min(window.innerHeight - top, h * ds.scale + 2 * pad),
      };
    },
    /** Nodes whose top-left corner is outside the canvas's current view. */
    offscreen() {
      const { ds, canvas } = window.app.canvas;
      const width = canvas.width / window.devicePixelRatio / ds.scale;
      const height = canvas.height / window.devicePixelRatio / ds.scale;
      const [left, top] = [-ds.offset[0], -ds.offset[1]];
      return nodesOf(window.app.graph)
        .filter((n) => !(n.pos[0] >= left && n.pos[0] <= left + width && n.pos[1] >= top && n.pos[1] <= top + height))
        .map((n) => `${n.id} ${n.type}`);
    },
    dialogs: () => [...document.querySelectorAll(".p-dialog")]
      .filter((d) => d.offsetParent !== null || getComputedStyle(d).display !== "none")
      .map((d) => d.innerText.trim().slice(0, 300)),
  };
}

/** Wait for the canvas to draw a couple of frames (previews and DOM widgets follow the draw loop). */
export async function settle(page, ms = 400) {
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
  await page.waitForTimeout(ms);
}

export async function closeDialogs(page) {
  for (let i = 0; i < 3 && (await page.evaluate(() => window.caTest.dialogs().length)); i++) {
    await page.keyboard.press("Escape");
    await page.waitForTimeout(200);
  }
}

/** Answers of 400 or more to requests for this extension's files (help pages, scripts, templates). */
export function extensionMisses(log) {
  return log.failed.filter((miss) => new URL(miss.url).pathname.includes(`/${PACK}/`));
}

/** Error-level console messages and uncaught errors that come from this extension. */
export function extensionErrors(log) {
  const ours = (s) => s.includes(PACK) || s.includes("ConceptAttention") || s.includes("ca-gallery");
  return [
    ...log.console.filter((m) => m.type === "error" && (ours(m.text) || ours(m.url))),
    ...log.pageErrors.filter((e) => ours(e.text) || ours(e.stack)),
  ];
}
