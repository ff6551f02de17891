// The browser half of tests/browser: drives ComfyUI's real frontend and writes what it saw to a
// JSON report that test_browser.py asserts on.
//   node tests/browser/check.mjs <config.json>
// config: { url, workflows: {name: path}, leftOut: {name: path}, runnable, artifacts, report }
// leftOut: templates that declare a newer ComfyUI than this host; never loaded, only checked for
// what this frontend lacks to load them.
import fs from "node:fs";
import path from "node:path";
import { EXTENSION_NAME, closeDialogs, extensionErrors, extensionMisses, openComfy, settle } from "./browser.mjs";
import { loadWorkflow, readGallery, readPreview, runWithButton } from "./comfy_actions.mjs";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(config.artifacts, { recursive: true });
const shot = (name) => path.join(config.artifacts, `${name}.png`);
const report = { workflows: {}, leftOut: {}, run: null, steps: [] };

/** Frontend-side facts about the loaded graph, compared with the file it came from. */
function inspectLoaded(workflow) {
  const { app, LiteGraph } = window;
  const types = [...new Set(workflow.nodes.map((n) => n.type))];
  const serialised = app.graph.serialize();
  const byId = new Map(serialised.nodes.map((n) => [n.id, n]));
  const widgetDrift = [];
  for (const node of workflow.nodes) {
    const saved = node.widgets_values ?? [];
    const now = byId.get(node.id)?.widgets_values ?? [];
    // A newer host may add widgets at the end; what the file set must land where it was.
    if (JSON.stringify(now.slice(0, saved.length)) !== JSON.stringify(saved)) {
      widgetDrift.push({ id: node.id, type: node.type, saved, now });
    }
  }
  return {
    frontendVersion: window.__COMFYUI_FRONTEND_VERSION__ ?? null,
    unknownTypes: types.filter((t) => !LiteGraph.registered_node_types[t]),
    nodeCount: window.caTest.nodes().length,
    fileNodeCount: workflow.nodes.length,
    linkCount: serialised.links.length,
    fileLinkCount: workflow.links.length,
    widgetDrift,
    dialogs: window.caTest.dialogs(),
  };
}

/**
 * What this frontend lacks for a workflow, found without loading it (loading would open the missing
 * nodes dialog): node types it does not know, and combo values that its widgets do not offer, the
 * saved values matched to the widgets in order, as loading does.
 */
function lacksInFrontend(workflow) {
  const { LiteGraph } = window;
  const known = (type) => !!LiteGraph.registered_node_types[type];
  const lacks = [...new Set(workflow.nodes.map((n) => n.type))].filter((t) => !known(t)).map((t) => `node ${t}`);
  for (const saved of workflow.nodes) {
    if (!known(saved.type) || !Array.isArray(saved.widgets_values)) continue;
    const node = LiteGraph.createNode(saved.type);
    const widgets = node?.widgets ?? [];
    if (widgets.length === saved.widgets_values.length) {  // else its values cannot be matched to widgets
      widgets.forEach((widget, i) => {
        const offered = typeof widget.options?.values === "function" ? widget.options.values() : widget.options?.values;
        const value = saved.widgets_values[i];
        if (widget.type === "combo" && Array.isArray(offered) && !offered.includes(value)) {
          lacks.push(`${saved.type} ${widget.name} "${value}"`);
        }
      });
    }
    node?.onRemoved?.();
  }
  return [...new Set(lacks)];
}

const step = async (name, fn) => {
  const started = Date.now();
  try {
    return await fn();
  } finally {
    report.steps.push({ name, ms: Date.now() - started });
  }
};

const { page, log, close } = await openComfy(config.url);
try {
  await closeDialogs(page);
  report.extensionLoaded = await page.evaluate(
    (name) => window.app.extensions.some((e) => e.name === name), EXTENSION_NAME);

  for (const [name, file] of Object.entries(config.leftOut ?? {})) {
    await step(`check left-out ${name}`, async () => {
      const workflow = JSON.parse(fs.readFileSync(file, "utf8"));
      report.leftOut[name] = { lacks: await page.evaluate(lacksInFrontend, workflow) };
    });
  }

  for (const [name, file] of Object.entries(config.workflows)) {
    await step(`load ${name}`, async () => {
      const workflow = JSON.parse(fs.readFileSync(file, "utf8"));
      const { offscreen } = await loadWorkflow(page, workflow, name);
      const entry = { ...(await page.evaluate(inspectLoaded, workflow)), offscreen };
      entry.prompt = (await page.evaluate(() => window.app.graphToPrompt())).output;
      entry.screenshot = shot(name);
      await page.screenshot({ path: entry.screenshot });
      report.workflows[name] = entry;
      await closeDialogs(page);
    });
  }

  report.run = await step(`run ${config.runnable}`, async () => {
    const workflow = JSON.parse(fs.readFileSync(config.workflows[config.runnable], "utf8"));
    const idOf = (type) => workflow.nodes.find((n) => n.type === type)?.id;
    await loadWorkflow(page, workflow, config.runnable);
    const before = (await page.evaluate(() => window.app.graphToPrompt())).output;
    const run = await runWithButton(page);
    run.gallery = await readGallery(page);
    run.maskPreview = await readPreview(page, idOf("ConceptAttentionMask"));
    run.saliencyStockPreview = await page.evaluate(
      (id) => window.app.graph.getNodeById(id)?.imgs?.length ?? 0, idOf("ConceptAttentionSaliencyMap"));
    run.screenshot = shot(`${config.runnable}-after-run`);
    await page.screenshot({ path: run.screenshot });
    // The gallery is display only: the saved workflow and the prompt stay as they were.
    const afterPrompt = (await page.evaluate(() => window.app.graphToPrompt())).output;
    run.promptUnchanged = JSON.stringify(afterPrompt) === JSON.stringify(before);
    const nodes = await page.evaluate(() => window.app.graph.serialize().nodes);
    const saliency = nodes.find((n) => n.type === "ConceptAttentionSaliencyMap");
    const savedSaliency = workflow.nodes.find((n) => n.type === "ConceptAttentionSaliencyMap");
    run.saliencyWidgetsUnchanged = JSON.stringify(saliency?.widgets_values) === JSON.stringify(savedSaliency.widgets_values);

    if (run.gallery.length) {
      await page.locator(".ca-gallery .ca-gallery-item").first().click();
      const box = page.locator(".ca-lightbox");
      await box.waitFor({ state: "visible", timeout: 5000 }).catch(() => {});
      run.lightbox = await page.evaluate(() => {
        const lightbox = document.querySelector(".ca-lightbox");
        const img = lightbox?.querySelector("img");
        return lightbox && {
          caption: lightbox.querySelector(".ca-lightbox-caption")?.textContent ?? "",
          loaded: !!img && img.complete && img.naturalWidth > 0,
          width: img?.getBoundingClientRect().width ?? 0,
        };
      });
      run.lightboxScreenshot = shot(`${config.runnable}-enlarged`);
      await page.screenshot({ path: run.lightboxScreenshot });
      await page.keyboard.press("Escape");
      await settle(page, 200);
      run.lightboxClosed = await page.evaluate(() => !document.querySelector(".ca-lightbox"));
    }
    // Where a block cache skipped some chosen steps the node's message carries a `steps` line (the host tier
    // checks the node sends it): replayed here, it shows above the gallery, and a plain run's message clears it.
    run.stepsNote = await page.evaluate(({ id, note }) => {
      const node = window.app.graph.getNodeById(id);
      const message = window.app.nodeOutputs?.[String(id)] ?? {};
      const read = () => ({
        note: node.widgets?.find((w) => w.name === "concept_gallery")?.element
          ?.querySelector(".ca-gallery-note")?.textContent ?? null,
        items: document.querySelectorAll(".ca-gallery .ca-gallery-item").length,
      });
      node.onExecuted({ ...message, steps: [note] });
      const skipped = read();
      node.onExecuted({ ...message, steps: undefined });
      return { skipped, plain: read() };
    }, { id: idOf("ConceptAttentionSaliencyMap"), note: "maps from steps 0, 3; a block cache skipped steps 1, 2" });
    return run;
  });

  // The same workflow with two images in the batch (and fewer steps, to be quick): every image
  // gets its own labelled maps.
  report.batchRun = await step(`run ${config.runnable} with a batch of 2`, async () => {
    await page.evaluate(() => {
      const widget = (type, name) => window.caTest.nodes().find((n) => n.type === type)
        .widgets.find((w) => w.name === name);
      widget("EmptySD3LatentImage", "batch_size").value = 2;
      widget("ConceptAttentionSampler", "steps").value = 4;
    });
    const run = await runWithButton(page);
    run.gallery = await readGallery(page);
    const maskId = await page.evaluate(
      () => window.caTest.nodes().find((n) => n.type === "ConceptAttentionMask").id);
    run.maskPreview = await readPreview(page, maskId);
    run.screenshot = shot(`${config.runnable}-batch-of-2`);
    await page.screenshot({ path: run.screenshot });
    return run;
  });
} finally {
  report.extensionErrors = extensionErrors(log);
  report.extensionMisses = extensionMisses(log);
  report.console = log.console;
  report.pageErrors = log.pageErrors;
  report.blockedRequests = log.blocked;
  fs.writeFileSync(config.report, JSON.stringify(report, null, 2));
  await close();
}
