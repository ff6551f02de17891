// What a user sees first when opening each template from the template browser, in a 1600x1000 window
// with the frontend's own level-of-detail setting: the zoom, whether the canvas draws its nodes as blank
// boxes (low quality), whether any nodes overlap or lie outside the view, and whether each note's text
// fits it. Writes a JSON report for test_template_view.py.
//   node tests/browser/template_view.mjs <config.json>
// config: { url, pack, templates: [name, ...], minFontSizeAfter, artifacts, report }
// minFontSizeAfter: the level-of-detail setting to leave behind, the one the other browser tests run with.
import fs from "node:fs";
import path from "node:path";
import { closeDialogs, openComfy, settle } from "./browser.mjs";

const LOD_SETTING = "LiteGraph.Canvas.MinFontSizeForLOD";
const VIEWPORT = { width: 1600, height: 1000 };

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(config.artifacts, { recursive: true });
const report = { frontendVersion: null, viewport: VIEWPORT, lod: null, templates: {}, packLabel: null };

/** Set the level-of-detail setting as the settings dialog does; the canvas picks it up on its next frame. */
async function setMinFontSize(page, value) {
  await page.evaluate(([id, v]) => window.app.extensionManager.setting.set(id, v), [LOD_SETTING, value]);
  await settle(page, 100);
  return page.evaluate((id) => window.app.extensionManager.setting.get(id), LOD_SETTING);
}

/** The setting's default, from the frontend's own definition of it. */
function frontendDefault(id) {
  const definition = window.app.extensionManager.setting.settings[id];
  const value = definition?.defaultValue;
  return typeof value === "function" ? value() : value;
}

/** Load a template as the template browser does: its served file, loadGraphData with openSource "template". */
async function openAsTemplate([pack, name]) {
  const { api } = window.comfyAPI.api;
  const json = await (await fetch(api.apiURL(`/workflow_templates/${pack}/${name}.json`))).json();
  await window.app.loadGraphData(json, true, true, name, { openSource: "template" });
}

/** The canvas's view and every node's box (title included) once it has drawn, in graph units. */
function readView() {
  const canvas = window.app.canvas;
  const { scale, offset } = canvas.ds;
  const box = canvas.canvas.getBoundingClientRect();
  // The part of the canvas inside the window, in graph units.
  const [left, top] = [Math.max(box.left, 0), Math.max(box.top, 0)];
  const [right, bottom] = [Math.min(box.right, window.innerWidth), Math.min(box.bottom, window.innerHeight)];
  const toGraph = (x, y) => [(x - box.left) / scale - offset[0], (y - box.top) / scale - offset[1]];
  const [x0, y0] = toGraph(left, top);
  const [x1, y1] = toGraph(right, bottom);
  const nodes = window.app.graph.nodes.map((node) => ({
    id: node.id, type: node.type, title: node.title, rect: [...node.boundingRect].map((v) => Math.round(v * 10) / 10),
  }));
  const overlaps = [];
  for (const [i, a] of nodes.entries()) {
    for (const b of nodes.slice(i + 1)) {
      const w = Math.min(a.rect[0] + a.rect[2], b.rect[0] + b.rect[2]) - Math.max(a.rect[0], b.rect[0]);
      const h = Math.min(a.rect[1] + a.rect[3], b.rect[1] + b.rect[3]) - Math.max(a.rect[1], b.rect[1]);
      if (w > 0 && h > 0) overlaps.push({ nodes: [`${a.id} ${a.title}`, `${b.id} ${b.title}`], size: [w, h] });
    }
  }
  const outside = nodes.filter(({ rect: [x, y, w, h] }) => x < x0 || y < y0 || x + w > x1 || y + h > y1)
    .map((n) => `${n.id} ${n.title}`);
  // A note's text as the page lays it out (hidden at low quality): code lines that wrap, text past its bottom.
  const notes = window.app.graph.nodes.filter((node) => node.type === "MarkdownNote").map((node) => {
    const element = node.widgets?.[0]?.element;
    const entry = { node: `${node.id} ${node.title}`, shown: !!element?.getClientRects().length };
    if (!entry.shown) return entry;
    const rangeOver = (contents) => {
      const range = document.createRange();
      range.selectNodeContents(contents);
      return range;
    };
    entry.wrappedCode = [...element.querySelectorAll("pre")].flatMap((pre) => {
      const lines = pre.textContent.replace(/\n$/, "").split("\n");
      const tops = new Set([...rangeOver(pre).getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      return tops.size > lines.length ? [lines.reduce((a, b) => (b.length > a.length ? b : a))] : [];
    });
    const text = element.querySelector(".ProseMirror") ?? element;
    const below = rangeOver(text).getBoundingClientRect().bottom - element.getBoundingClientRect().bottom;
    entry.overflow = Math.round(below / scale);
    return entry;
  });
  return {
    scale, lowQuality: canvas.low_quality, threshold: canvas._lowQualityZoomThreshold,
    devicePixelRatio: window.devicePixelRatio, view: [x0, y0, x1 - x0, y1 - y0], nodes, overlaps, outside, notes,
  };
}

/** The label the template browser's sidebar gives the pack: its i18n category name, else the folder name. */
function packLabel(pack) {
  const { $t, $te } = document.querySelector("#vue-app").__vue_app__.config.globalProperties;
  const key = `templateWorkflows.category.${pack.replace(/\./g, "_")}`;
  return $te(key) ? $t(key) : pack;
}

const { page, close } = await openComfy(config.url, { viewport: VIEWPORT });
try {
  await closeDialogs(page);
  report.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  report.packLabel = await page.evaluate(packLabel, config.pack);
  const byDefault = await page.evaluate(frontendDefault, LOD_SETTING);
  report.lod = { setting: LOD_SETTING, frontendDefault: byDefault, set: await setMinFontSize(page, byDefault) };
  try {
    for (const name of config.templates) {
      await page.evaluate(openAsTemplate, [config.pack, name]);
      await settle(page, 300);
      await closeDialogs(page);
      const entry = await page.evaluate(readView);
      entry.screenshot = path.join(config.artifacts, `view-${name}.png`);
      await page.screenshot({ path: entry.screenshot });
      report.templates[name] = entry;
    }
  } finally {
    // The server and its settings are shared with the other browser tests.
    report.lod.restored = await setMinFontSize(page, config.minFontSizeAfter);
  }
} finally {
  fs.writeFileSync(config.report, JSON.stringify(report, null, 2));
  await close();
}
