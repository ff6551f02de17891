// What a newcomer meets in ComfyUI's real frontend: every help page, the node search, the demo in
// Nodes 2.0, and a language switch without a reload. Writes a JSON report for test_newcomer.py.
//   node tests/browser/newcomer.mjs <config.json>
// config: { url, demo: path of the demo template, nodeIds, queries, nodes2, artifacts, report }
// nodes2: whether to run the demo in Nodes 2.0 too (the frontends whose Nodes 2.0 lets a node hide its stock
// preview).
import fs from "node:fs";
import path from "node:path";
import { closeDialogs, extensionErrors, extensionMisses, openComfy, settle } from "./browser.mjs";
import { loadWorkflow, readGallery, runWithButton } from "./comfy_actions.mjs";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(config.artifacts, { recursive: true });
const shot = (name) => path.join(config.artifacts, `${name}.png`);
const report = { help: {}, search: {}, nodes2: null, languageSwitch: {} };

/** In-page: the frontend's own stores (Pinia), as its components reach them. */
function installStores() {
  const pinia = () => document.querySelector("#vue-app").__vue_app__.config.globalProperties.$pinia;
  window.caStore = (id) => pinia()._s.get(id);
}

/**
 * Open a node's help page where the frontend shows it, and wait for the page to arrive: the node library's
 * help (frontends before the new node library), or the Info tab of the right side panel for the selected
 * node (the new node library's frontends, ComfyUI 0.33).
 */
async function openHelp(page, nodeId) {
  const arrived = page.waitForResponse(
    (response) => response.url().includes(`/docs/${nodeId}`) && response.status() === 200, { timeout: 15_000 },
  ).then((response) => new URL(response.url()).pathname, () => null);
  const newLibrary = await page.evaluate(() => !!window.app.extensionManager.setting.get("Comfy.NodeLibrary.NewDesign"));
  if (newLibrary) {
    await page.evaluate((id) => {
      const { app, LiteGraph } = window;
      app.graph.clear();
      const node = LiteGraph.createNode(id);
      node.pos = [100, 100];
      app.graph.add(node);
      app.canvas.selectNode(node);
      window.caStore("canvas").updateSelectedItems();  // as a click on the node does
      window.caStore("rightSidePanel").openPanel("info");
    }, nodeId);
  } else {
    await page.evaluate(() => {
      const sidebar = window.caStore("sidebarTab");
      if (sidebar.activeSidebarTabId !== "node-library") sidebar.toggleSidebarTab("node-library");
    });
    // the help store comes with the node library's panel
    await page.waitForFunction(() => window.caStore("nodeHelp"), null, { timeout: 15_000 });
    await page.evaluate((id) => {
      window.caStore("nodeHelp").openHelp(window.caStore("nodeDef").nodeDefsByName[id]);
    }, nodeId);
  }
  const served = await arrived;
  await settle(page, 300);
  const shown = await page.evaluate(() => document.body.innerText);
  await page.evaluate((closeLibrary) => {
    if (closeLibrary) window.caStore("rightSidePanel").closePanel();
    else window.caStore("nodeHelp").closeHelp();
  }, newLibrary);
  return { served, shown: shown.slice(0, 20_000) };
}

/** Where each of the pack's nodes ranks in the frontend's node search (1 = first), and how many it found. */
function searchRanks([queries, nodeIds]) {
  const search = window.caStore("nodeDef").nodeSearchService;
  return Object.fromEntries(queries.map((query) => {
    const found = search.searchNode(query, []).map((def) => def.name);
    const ranks = Object.fromEntries(nodeIds.map((id) => [id, found.includes(id) ? found.indexOf(id) + 1 : null]));
    return [query, { ranks, found: found.length, first: found.slice(0, 5) }];
  }));
}

/** What the demo's Saliency Map and Concept Mask nodes show now, in either canvas mode. */
function readShown() {
  const nodes = window.caTest.nodes();
  const saliency = nodes.find((n) => n.comfyClass === "ConceptAttentionSaliencyMap");
  const mask = nodes.find((n) => n.comfyClass === "ConceptAttentionMask");
  const inNode = (node, selector) => document.querySelectorAll(`[data-node-id="${node.id}"] ${selector}`).length;
  return {
    vueNodes: !!window.LiteGraph.vueNodesMode,
    galleries: document.querySelectorAll(".ca-gallery").length,
    items: [...document.querySelectorAll(".ca-gallery .ca-gallery-item")].map((item) => ({
      label: item.querySelector("figcaption")?.textContent ?? "",
      loaded: !!item.querySelector("img")?.complete && item.querySelector("img").naturalWidth > 0,
    })),
    legends: document.querySelectorAll(".ca-gallery .ca-gallery-legend").length,
    // the whole gallery shows in the node, captions included, with nothing to scroll
    galleryFits: [...document.querySelectorAll(".ca-gallery")].every((g) => g.scrollHeight <= g.clientHeight + 1),
    // the classic canvas's stock preview: images the node drew, its preview widget
    saliencyStockImages: saliency?.imgs?.length ?? 0,
    saliencyPreviewWidgets: (saliency?.widgets ?? []).filter((w) => w.name === "$$canvas-image-preview").length,
    // Nodes 2.0's stock preview, under the node's widgets
    saliencyVuePreviews: inNode(saliency, ".image-preview img"),
    maskVuePreviews: inNode(mask, ".image-preview img"),
    maskImages: mask?.imgs?.length ?? 0,
    // Nodes 2.0 lays nodes out in the page: pairs of node elements whose boxes overlap
    overlappingNodes: (() => {
      const boxes = [...document.querySelectorAll("[data-node-id]")]
        .map((element) => [element.dataset.nodeId, element.getBoundingClientRect()]);
      const pairs = [];
      boxes.forEach(([a, boxA], i) => boxes.slice(i + 1).forEach(([b, boxB]) => {
        const apart = boxA.right <= boxB.left || boxB.right <= boxA.left || boxA.bottom <= boxB.top
          || boxB.bottom <= boxA.top;
        if (!apart) pairs.push(`${a} ${b}`);
      }));
      return pairs;
    })(),
    maskOutputImages: window.app.nodeOutputs?.[String(mask?.id)]?.images?.length ?? 0,
  };
}

/**
 * Whether Concept Mask shows its `threshold` input under each method, picked as the user picks it (the
 * widget's value and callback), in the canvas mode on now; ends on the method it started with.
 */
async function thresholdShownByMethod(page) {
  const pick = (method) => page.evaluate((value) => {
    const node = window.caTest.nodes().find((n) => n.comfyClass === "ConceptAttentionMask");
    const widget = node.widgets.find((w) => w.name === "method");
    widget.value = value;
    widget.callback?.(value, window.app.canvas, node);
  }, method);
  const read = () => page.evaluate(() => {
    const node = window.caTest.nodes().find((n) => n.comfyClass === "ConceptAttentionMask");
    const widget = node.widgets.find((w) => w.name === "threshold");
    if (!window.LiteGraph.vueNodesMode) return !widget.hidden && node.isWidgetVisible?.(widget) !== false;
    // Nodes 2.0: the widget's row, labelled with its name, is drawn or not
    const text = document.querySelector(`[data-node-id="${node.id}"]`)?.innerText ?? "";
    const method = node.widgets.find((w) => w.name === "method").value;
    const lines = text.split("\n").filter((line) => line.trim() === "threshold").length;
    return lines > (method === "threshold" ? 1 : 0);
  });
  const start = await page.evaluate(
    () => window.caTest.nodes().find((n) => n.comfyClass === "ConceptAttentionMask").widgets.find((w) => w.name === "method").value);
  const shown = {};
  for (const method of ["argmax", "threshold", "otsu", start]) {
    await pick(method);
    await settle(page, 300);
    shown[method] = await read();
  }
  return shown;
}

/**
 * App mode (frontend 1.49): the demo's Saliency Map and Concept Mask picked as the app's outputs, run with the
 * app's Run button; each output's label, read by showing it as the user does (a click on its thumbnail).
 */
async function appModeOutputs(page, demo) {
  await loadWorkflow(page, demo, "demo");
  await page.evaluate(() => {
    const picked = window.caTest.nodes()
      .filter((n) => ["ConceptAttentionSaliencyMap", "ConceptAttentionMask"].includes(n.comfyClass)).map((n) => n.id);
    const outputs = window.caStore("appMode").selectedOutputs;
    outputs.splice(0, outputs.length, ...picked);
    window.caStore("workflow").activeWorkflow.activeMode = "app";
  });
  await settle(page, 800);
  // the first visit offers a tour
  await page.getByText("Skip", { exact: true }).click({ timeout: 5000 }).catch(() => {});
  await settle(page, 300);
  await page.locator('[data-testid="linear-run-button"] button').filter({ hasText: "Run" }).first().click();
  const thumbnails = page.locator('[data-testid="linear-image-output"]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="linear-image-output"]').length >= 4,
    null, { timeout: 60_000 }).catch(() => {});
  const labels = [];
  for (let i = 0; i < await thumbnails.count(); i++) {
    await thumbnails.nth(i).click();
    await settle(page, 300);
    labels.push(await page.evaluate(() => {
      // "256 x 256 | circle" under the shown output
      const captions = [...document.querySelectorAll("span")]
        .map((span) => span.textContent.replace(/\s+/g, " ").trim())
        .map((text) => text.match(/^\d+ [x×] \d+ \| (.+)$/)).filter(Boolean);
      return captions.length ? captions[0][1] : null;
    }));
  }
  const screenshot = shot("demo-app-mode");
  await page.screenshot({ path: screenshot });
  await page.evaluate(() => { window.caStore("workflow").activeWorkflow.activeMode = "graph"; });
  await settle(page, 500);
  return { labels, screenshot };
}

async function setSetting(page, id, value) {
  await page.evaluate(([key, v]) => window.app.extensionManager.setting.set(key, v), [id, value]);
}

/** Load the demo, run it, and read what shows. */
async function runDemo(page, demo, name) {
  await loadWorkflow(page, demo, name);
  await closeDialogs(page);
  const run = await runWithButton(page);
  await readGallery(page);
  await settle(page, 600);
  return { run, shown: await page.evaluate(readShown) };
}

/**
 * Switch the language as the settings dialog does, without a reload: the frontend re-registers every node
 * type and rebuilds the workflow's nodes. Waits until the demo's nodes are new instances.
 */
async function switchLanguageLive(page, language) {
  await page.evaluate(() => window.caTest.nodes().forEach((node) => { node.caBeforeSwitch = true; }));
  await setSetting(page, "Comfy.Locale", language);
  const rebuilt = await page.waitForFunction(
    () => window.caTest.nodes().length > 0 && !window.caTest.nodes().some((node) => node.caBeforeSwitch),
    null, { timeout: 30_000 },
  ).then(() => true, () => false);
  await readGallery(page);
  await settle(page, 800);
  return rebuilt;
}

const demo = JSON.parse(fs.readFileSync(config.demo, "utf8"));
const { page, log, close } = await openComfy(config.url);
try {
  await closeDialogs(page);
  await page.evaluate(installStores);
  report.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);

  for (const nodeId of config.nodeIds) {
    report.help[nodeId] = await openHelp(page, nodeId);
  }
  await page.evaluate(() => window.app.graph.clear());
  report.search = await page.evaluate(searchRanks, [config.queries, config.nodeIds]);

  const modes = config.nodes2 ? [false, true] : [false];
  for (const vue of modes) {
    const mode = vue ? "nodes2" : "classic";
    if (config.nodes2) {
      await setSetting(page, "Comfy.VueNodes.Enabled", vue);
      await settle(page, 800);
    }
    const { run, shown } = await runDemo(page, demo, "demo");
    // the graph alone, without the run's toast, as the README shows it
    await page.evaluate(() => document.querySelectorAll(".p-toast-message").forEach((toast) => toast.remove()));
    await page.screenshot({ path: shot(`demo-${mode}`), clip: await page.evaluate(() => window.caTest.graphClip()) });
    shown.thresholdByMethod = await thresholdShownByMethod(page);
    if (vue) report.nodes2 = { run, shown, screenshot: shot(`demo-${mode}`) };
    else report.classic = { run, shown, screenshot: shot(`demo-${mode}`) };

    const rebuilt = await switchLanguageLive(page, "zh");
    const afterSwitch = await page.evaluate(readShown);
    await page.screenshot({ path: shot(`language-switch-${mode}`) });
    const again = await runWithButton(page);
    await readGallery(page);
    await settle(page, 600);
    const afterRun = await page.evaluate(readShown);
    const restored = await switchLanguageLive(page, "en");
    report.languageSwitch[mode] = { rebuilt, afterSwitch, run: again, afterRun, restored };
  }
  if (config.nodes2) {
    report.appMode = await appModeOutputs(page, demo);
    await setSetting(page, "Comfy.VueNodes.Enabled", false);
  }
} finally {
  report.failedRequests = log.failed;
  report.extensionMisses = extensionMisses(log);
  report.extensionErrors = extensionErrors(log);
  report.console = log.console;
  report.pageErrors = log.pageErrors;
  fs.writeFileSync(config.report, JSON.stringify(report, null, 2));
  await close();
}
