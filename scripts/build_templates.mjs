// Builds workflows/<name>.json and workflows/<name>.jpg in ComfyUI's frontend from template_specs.mjs.
//   node scripts/build_templates.mjs <comfyui url> <workflows dir> [template ...]
// Run through build_templates.py, which starts a ComfyUI server with placeholder model files. It drives
// chromium with the browser tier's helpers (tests/browser).
// Each thumbnail is a screenshot of the workflow as loaded from the written file; the runnable
// demo is run first, so its thumbnail shows its real output.
// A node's `pos` is [x, y], or under(key[, x]) in the specs: under a node placed before it, clear of that
// node's size as built here.
import fs from "node:fs";
import path from "node:path";
import { closeDialogs, openComfy, settle } from "../tests/browser/browser.mjs";
import { jpegThumbnail, loadWorkflow, readGallery, runWithButton } from "../tests/browser/comfy_actions.mjs";
import { RUNNABLE, WORKFLOWS } from "./template_specs.mjs";

const [url, outDir, ...names] = process.argv.slice(2);
if (!url || !outDir) throw new Error("usage: build_templates.mjs <comfyui url> <workflows dir> [template ...]");
const chosen = names.length ? names : Object.keys(WORKFLOWS);  // build_templates.py names them

// The view ComfyUI 0.3.64 and 0.8 open a template at (its extra.ds; 0.33's template browser fits the
// graph itself): the graph centred in the smallest canvas any supported frontend leaves in a 1600x1000
// window (0.3.64's, beside its side bar and under its menu), at 80 % of its width or height, a little
// closer than the frontend's own fit (75 % of a larger canvas).
const SAVED_VIEW = { canvas: [1536, 922], zoom: 0.8 };

function buildInPage([spec, name, savedView]) {
  const { app, LiteGraph } = window;
  app.graph.clear();
  const made = {};
  // between a node and the title of the node stacked under it: room for the source badge that Nodes 2.0
  // draws under a node, which the classic canvas does not
  const GAP = 40;
  const place = (pos) => {
    if (Array.isArray(pos)) return [...pos];
    const above = made[pos.under];
    if (!above) throw new Error(`${name}: under(${pos.under}) names no node placed before it`);
    return [pos.x ?? above.pos[0], above.pos[1] + above.size[1] + LiteGraph.NODE_TITLE_HEIGHT + GAP];
  };
  for (const [key, n] of Object.entries(spec.nodes)) {
    const node = LiteGraph.createNode(n.type);
    if (!node) throw new Error(`${name}: unknown node type ${n.type}`);
    app.graph.add(node);
    if (n.title) node.title = n.title;
    // Fixed seeds: re-running after a change to a mask or map setting re-runs only those nodes.
    const widgets = { control_after_generate: "fixed", ...n.widgets };
    for (const [widgetName, value] of Object.entries(widgets)) {
      if (widgetName === "control_after_generate" && !node.widgets?.some((w) => w.name === widgetName)) continue;
      const widget = node.widgets?.find((w) => w.name === widgetName);
      if (!widget) throw new Error(`${name}: ${n.type} has no widget ${widgetName}`);
      widget.value = value;
    }
    if (n.models) node.properties.models = n.models;
    if (n.color) node.color = n.color;
    if (n.bgcolor) node.bgcolor = n.bgcolor;
    const [w, h] = node.computeSize();
    node.size = n.size ? [Math.max(n.size[0], w), Math.max(n.size[1], h)] : [w, h];
    node.pos = place(n.pos);
    made[key] = node;
  }
  for (const [from, output, to, input] of spec.links) {
    const source = made[from];
    const target = made[to];
    const outSlot = source.findOutputSlot(output);
    const inSlot = target.findInputSlot(input);
    if (outSlot < 0 || inSlot < 0) throw new Error(`${name}: cannot link ${from}.${output} -> ${to}.${input}`);
    if (!source.connect(outSlot, target, inSlot)) throw new Error(`${name}: link ${from}.${output} -> ${to}.${input} refused`);
  }
  // As the frontend bounds the nodes to fit them: titles included, 10 around.
  const [x, y, width, height] = window.caTest.bounds();
  const bounds = [x - 10, y - 10, width + 20, height + 20];
  const [canvasWidth, canvasHeight] = savedView.canvas;
  const scale = savedView.zoom * Math.min(canvasWidth / bounds[2], canvasHeight / bounds[3]);
  const offset = [canvasWidth / scale / 2 - bounds[0] - bounds[2] / 2,
    canvasHeight / scale / 2 - bounds[1] - bounds[3] / 2];
  const workflow = app.graph.serialize();
  workflow.extra = { ...(workflow.extra ?? {}), ds: { scale, offset } };
  delete workflow.extra.frontendVersion;
  delete workflow.id;  // a random UUID per build; the frontend assigns one on load
  return workflow;
}

const { context, page, close } = await openComfy(url, { viewport: { width: 1600, height: 1000 } });
try {
  await closeDialogs(page);
  for (const name of chosen) {
    const spec = WORKFLOWS[name];
    if (!spec) throw new Error(`no template ${name} in template_specs.mjs`);
    const workflow = await page.evaluate(buildInPage, [spec, name, SAVED_VIEW]);
    const file = path.join(outDir, `${name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(workflow, null, 2)}\n`);
    await loadWorkflow(page, JSON.parse(fs.readFileSync(file, "utf8")), name);
    await closeDialogs(page);
    if (name === RUNNABLE) {
      const run = await runWithButton(page);
      if (run.error) throw new Error(`${name} failed to run: ${run.error}`);
      const gallery = await readGallery(page);
      console.log(`${name}: ran; gallery ${gallery.map((g) => g.label).join(", ")}`);
      await page.waitForTimeout(6500);  // the run's completion banner (ComfyUI 0.8 on) covers the graph for 6 s
    }
    await settle(page, 500);
    const clip = await page.evaluate(() => window.caTest.graphClip());
    await jpegThumbnail(context, await page.screenshot({ clip }), path.join(outDir, `${name}.jpg`));
    console.log(`wrote ${file} and its thumbnail`);
  }
} finally {
  await close();
}
