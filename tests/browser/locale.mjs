// The frontend in other languages: set its Comfy.Locale setting as the settings dialog does, open
// ComfyUI again, and read what the canvas shows for the extension's nodes. Writes a JSON report for
// test_locales.py.
//   node tests/browser/locale.mjs <config.json>
// config: { url, nodeIds: [...], titles: {language: {nodeId: title}}, artifacts, report }
import fs from "node:fs";
import path from "node:path";
import { closeDialogs, openComfy, settle, untilReady } from "./browser.mjs";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(config.artifacts, { recursive: true });
const report = { frontendVersion: null, localeSetting: null, english: null, languages: {}, restored: null };

/** Titles and labels of the extension's nodes, as placed on the canvas now. */
function readCanvas(nodeIds) {
  const { app, LiteGraph } = window;
  app.graph.clear();
  const placed = nodeIds.map((type, i) => {
    const node = LiteGraph.createNode(type);
    node.pos = [40 + (i % 4) * 420, 60 + Math.floor(i / 4) * 560];
    app.graph.add(node);
    return node;
  });
  window.caTest.fitView();
  const label = (slot) => slot?.label || slot?.localized_name || slot?.name;
  return Object.fromEntries(placed.map((node) => [node.type, {
    title: node.title,
    inputs: Object.fromEntries((node.inputs ?? []).map((slot) => [slot.name, label(slot)])),
    widgets: Object.fromEntries((node.widgets ?? []).map((w) => [w.name, w.label || w.name])),
    outputs: (node.outputs ?? []).map(label),
    advancedWidgets: (node.widgets ?? []).filter((w) => w.options?.advanced).map((w) => w.name),
  }]));
}

/**
 * Set the language and open ComfyUI again, as a user finds it the next time. Without the reload, the
 * frontends of ComfyUI 0.8 and 0.33 keep the titles (0.33 also the widget labels) of node types
 * registered before the switch.
 */
async function switchTo(page, language, expectedTitle) {
  const started = Date.now();
  await page.evaluate((value) => window.app.extensionManager.setting.set("Comfy.Locale", value), language);
  await page.reload();
  await untilReady(page);
  await closeDialogs(page);
  const translated = await page.waitForFunction(
    (title) => window.LiteGraph.createNode("ConceptAttentionSampler")?.title === title, expectedTitle,
    { timeout: 30_000 },
  ).then(() => true, () => false);
  return { translated, ms: Date.now() - started };
}

const { page, log, close } = await openComfy(config.url);
try {
  await closeDialogs(page);
  report.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  report.localeSetting = await page.evaluate(() => {
    const setting = window.app.extensionManager?.setting;
    return typeof setting?.set === "function" && typeof setting.get("Comfy.Locale") === "string";
  });
  if (report.localeSetting) {
    report.english = await page.evaluate(readCanvas, config.nodeIds);
    for (const [language, titles] of Object.entries(config.titles)) {
      const switched = await switchTo(page, language, titles.ConceptAttentionSampler);
      const nodes = await page.evaluate(readCanvas, config.nodeIds);
      await settle(page);
      const screenshot = path.join(config.artifacts, `locale-${language}.png`);
      await page.screenshot({ path: screenshot });
      report.languages[language] = { ...switched, nodes, screenshot };
    }
    await switchTo(page, "en", report.english.ConceptAttentionSampler.title);
    report.restored = await page.evaluate(readCanvas, config.nodeIds);
  }
} finally {
  report.pageErrors = log.pageErrors;
  fs.writeFileSync(config.report, JSON.stringify(report, null, 2));
  await close();
}
