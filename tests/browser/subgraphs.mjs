// The browser half of tests/browser/test_subgraphs.py: the pack's subgraph blueprints (subgraphs/*.json) in
// ComfyUI's real frontend, placed the way the node library places one, and the prompts they expand into.
//   node tests/browser/subgraphs.mjs <config.json>
// config: { url, blueprints: [name], edits: {name: {widget: value}}, harness: {nodes, links, widgets},
//           artifacts, report }
// harness: core nodes wired around the placed blueprints (model loaders, an image, previews), so that the
// expanded prompt is complete enough for ComfyUI's validation.
import fs from "node:fs";
import path from "node:path";
import { closeDialogs, extensionErrors, openComfy, settle } from "./browser.mjs";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
fs.mkdirSync(config.artifacts, { recursive: true });
const report = { definitions: {}, placed: {}, edited: {}, wired: null };

/** In-page helpers, reached as window.caSubgraphs.* */
function installHelpers() {
  // The frontend keeps the blueprints it loaded from /api/global_subgraphs in its Pinia "subgraph" store.
  const store = () => document.querySelector("#vue-app")?.__vue_app__?.config.globalProperties.$pinia
    ?._s.get("subgraph");
  const definitionOf = (name) => (store()?.subgraphBlueprints ?? []).find((d) => d.display_name === name);
  window.caSubgraphs = {
    loaded: (names) => names.every((name) => definitionOf(name)),
    /** The node definition the frontend registered for a blueprint: what the node library lists. */
    definition(name) {
      const def = definitionOf(name);
      return def && {
        name: def.name, category: def.category, description: def.description, pythonModule: def.python_module,
        inputs: Object.keys(def.input?.required ?? {}), outputs: def.output,
      };
    },
    /**
     * What litegraphService.addNodeOnGraph does for a blueprint (the node library, its search box and
     * drag-and-drop all end there): paste the stored blueprint's node and subgraph definition, which gives
     * the subgraph a fresh id and its inner nodes ids unique in the graph.
     */
    place(name, pos) {
      const blueprint = store().getBlueprint(definitionOf(name).name);
      const placed = window.app.canvas._deserializeItems(
        { nodes: blueprint.nodes, subgraphs: blueprint.definitions?.subgraphs }, { position: pos });
      return placed.nodes.values().next().value;
    },
    /** What a placed blueprint node is and shows. */
    describe: (node) => ({
      id: String(node.id),
      isSubgraphNode: !!node.isSubgraphNode?.(),
      title: node.title,
      innerTypes: (node.subgraph?.nodes ?? []).map((n) => n.type).sort(),
      inputs: node.inputs.map((i) => i.name),
      outputs: node.outputs.map((o) => o.name),
      widgets: (node.widgets ?? []).map((w) => ({ name: w.name, label: w.label ?? null, value: w.value })),
    }),
  };
}

/** Place one blueprint alone on an empty graph; its prompt, then its prompt after editing promoted widgets. */
async function placeAlone(page, name, edits) {
  const placed = await page.evaluate(async (name) => {
    window.app.graph.clear();
    const node = window.caSubgraphs.place(name, [100, 100]);
    window.caTest.fitView();
    return { ...window.caSubgraphs.describe(node), prompt: (await window.app.graphToPrompt()).output };
  }, name);
  await settle(page);
  placed.screenshot = path.join(config.artifacts, `${name}.png`);
  await page.screenshot({ path: placed.screenshot });
  const edited = await page.evaluate(async ([id, edits]) => {
    const node = window.caTest.nodes().find((n) => String(n.id) === id);
    for (const [widget, value] of Object.entries(edits)) {
      node.widgets.find((w) => w.name === widget).value = value;
    }
    return (await window.app.graphToPrompt()).output;
  }, [placed.id, edits]);
  return { placed, edited };
}

/**
 * Every blueprint on one graph with the harness around it: loaders into the model inputs, a loaded image,
 * one blueprint's outputs into another's inputs or into preview nodes. Returns each node's id by its role
 * (a blueprint's role is its name).
 */
function wireHarness({ blueprints, harness }) {
  const { app, LiteGraph } = window;
  app.graph.clear();
  const byRole = {};
  Object.entries(harness.nodes).forEach(([role, { type, values }], i) => {
    const node = LiteGraph.createNode(type);
    app.graph.add(node);
    node.pos = [340 * i, 500];
    (values ?? []).forEach((value, index) => { node.widgets[index].value = value; });
    byRole[role] = node;
  });
  blueprints.forEach((name, i) => { byRole[name] = window.caSubgraphs.place(name, [400 + 560 * i, 0]); });
  const slot = (slots, name) => {
    const index = slots.findIndex((s) => s.name === name);
    if (index < 0) throw new Error(`no slot ${name} among ${slots.map((s) => s.name).join(", ")}`);
    return index;
  };
  for (const [from, output, to, input] of harness.links) {
    const [source, target] = [byRole[from], byRole[to]];
    if (!source.connect(slot(source.outputs, output), target, slot(target.inputs, input))) {
      throw new Error(`could not connect ${from}.${output} to ${to}.${input}`);
    }
  }
  for (const [role, values] of Object.entries(harness.widgets ?? {})) {
    for (const [widget, value] of Object.entries(values)) {
      byRole[role].widgets.find((w) => w.name === widget).value = value;
    }
  }
  window.caTest.fitView();
  return Object.fromEntries(Object.entries(byRole).map(([role, node]) => [role, String(node.id)]));
}

const { page, log, close } = await openComfy(config.url);
try {
  await closeDialogs(page);
  await page.evaluate(installHelpers);
  report.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  // The frontend fetches the blueprints after start-up; a test says which never came.
  await page.waitForFunction((names) => window.caSubgraphs.loaded(names), config.blueprints, { timeout: 30_000 })
    .catch(() => {});
  for (const name of config.blueprints) {
    const found = await page.evaluate((name) => window.caSubgraphs.definition(name), name);
    if (found) report.definitions[name] = found;
  }
  for (const name of Object.keys(report.definitions)) {
    const { placed, edited } = await placeAlone(page, name, config.edits[name] ?? {});
    report.placed[name] = placed;
    report.edited[name] = edited;
  }
  if (Object.keys(report.definitions).length === config.blueprints.length) {
    const ids = await page.evaluate(wireHarness, { blueprints: config.blueprints, harness: config.harness });
    await settle(page);
    const screenshot = path.join(config.artifacts, "wired.png");
    await page.screenshot({ path: screenshot });
    report.wired = { ids, prompt: (await page.evaluate(() => window.app.graphToPrompt())).output, screenshot };
  }
} finally {
  report.extensionErrors = extensionErrors(log);
  report.pageErrors = log.pageErrors;
  report.blockedRequests = log.blocked;
  fs.writeFileSync(config.report, JSON.stringify(report, null, 2));
  await close();
}
