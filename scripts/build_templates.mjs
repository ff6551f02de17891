// Builds workflows/<name>.json and workflows/<name>.jpg in ComfyUI's frontend from template_specs.mjs.
//   node scripts/build_templates.mjs <comfyui url> <workflows dir> [template ...]
// Run through build_templates.py, which starts a ComfyUI server with placeholder model files. It drives
// chromium with the browser tier's helpers (tests/browser).
// Each thumbnail is a screenshot of the workflow as loaded from the written file; the runnable
// demo is run first, so its thumbnail shows its real output.
import fs from "node:fs";
import path from "node:path";
import { closeDialogs, openComfy, settle } from "../tests/browser/browser.mjs";
import { jpegThumbnail, loadWorkflow, readGallery, runWithButton } from "../tests/browser/comfy_actions.mjs";
import { RUNNABLE, WORKFLOWS } from "./template_specs.mjs";

const [url, outDir, ...names] = process.argv.slice(2);
if (!url || !outDir) throw new Error("usage: build_templates.mjs <comfyui url> <workflows dir> [template ...]");
const chosen = names.length ? names : Object.keys(WORKFLOWS);  // build_templates.py names them

function buildInPage([spec, name]) {
  const { app, LiteGraph } = window;
  app.graph.clear();
  const made = {};
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
    node.pos = [...n.pos];
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
  window.caTest.fitView();
  const workflow = app.graph.serialize();
  const { scale, offset } = app.canvas.ds;
  workflow.extra = { ...(workflow.extra ?? {}), ds: { scale, offset: [offset[0], offset[1]] } };
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
    const workflow = await page.evaluate(buildInPage, [spec, name]);
    const file = path.join(outDir, `${name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(workflow, null, 2)}\n`);
    await loadWorkflow(page, JSON.parse(fs.readFileSync(file, "utf8")), name);
    await closeDialogs(page);
    if (name === RUNNABLE) {
      const run = await runWithButton(page);
      if (run.error) throw new Error(`${name} failed to run: ${run.error}`);
      const gallery = await readGallery(page);
      console.log(`${name}: ran; gallery ${gallery.map((g) => g.label).join(", ")}`);
    }
    await settle(page, 500);
    const clip = await page.evaluate(() => window.caTest.graphClip());
    await jpegThumbnail(context, await page.screenshot({ clip }), path.join(outDir, `${name}.jpg`));
    console.log(`wrote ${file} and its thumbnail`);
  }
} finally {
  await close();
}
