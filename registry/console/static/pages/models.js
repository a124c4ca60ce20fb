// #/models : base models (hashes, layers) and the projections registered for each
// (r, seed, sizes, fingerprint): what a job's adapter is bound to.

import { el, errorBox, pageTitle, table, timeEl } from "../ui.js";
import { fact, loadMore, useJobsStylesheet } from "./jobs-common.js";

const PAGE_SIZE = 20;

function hash(value) {
  return el("code", { class: "hash" }, value || "");
}

/** Layers grouped by module name ("query") and dims, with how many layers have each. */
export function layerGroups(layers) {
  const groups = new Map();
  for (const [path, dims] of Object.entries(layers || {})) {
    const name = path.split(".").pop();
    const key = `${name} ${dims[0]}×${dims[1]}`;
    const group = groups.get(key) || { name, dims: `${dims[0]} × ${dims[1]}`, count: 0 };
    group.count += 1;
    groups.set(key, group);
  }
  return [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
}

const LAYER_COLUMNS = [
  { label: "Module", value: (g) => el("code", {}, g.name) },
  { label: "Layers", class: "num", value: (g) => String(g.count) },
  { label: "d_in × d_out", class: "num", value: (g) => g.dims },
];

/** One projection as facts, not a table row: its fingerprint stays readable at 375 px. */
function projectionFacts(projection) {
  const facts = el("dl", { class: "facts" });
  fact(facts, "Fingerprint", hash(projection.fingerprint));
  fact(facts, "Max d_in × d_out", `${projection.max_d_in} × ${projection.max_d_out}`);
  fact(facts, "Generator", `${projection.generator} (torch ${projection.torch_version})`);
  fact(facts, "Id", hash(projection.id));
  fact(facts, "Registered", timeEl(projection.created_at));
  return el(
    "li", { class: "projection", dataset: { projectionId: projection.id } },
    el("h4", {}, `r = ${projection.r}, seed ${projection.seed}`),
    facts,
  );
}

function projectionList(items) {
  if (!items.length) return el("p", { class: "muted" }, "No projections registered for this model yet.");
  return el("ul", { class: "projections" }, items.map(projectionFacts));
}

async function projectionsOf(api, modelId) {
  const items = [];
  let cursor = null;
  do {
    const path = `/v1/base-models/${encodeURIComponent(modelId)}/projections`;
    const page = await api.get(path, { limit: 500, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < 5000);
  return items;
}

function modelCard(api, model) {
  const headingId = `model-${model.id}`;
  const count = Object.keys(model.layers || {}).length;
  const facts = el("dl", { class: "facts" });
  fact(facts, "Id", hash(model.id));
  fact(facts, "Architecture", model.architecture);
  fact(facts, "Content hash", hash(model.content_hash));
  fact(facts, "Weights hash", hash(model.weights_hash));
  fact(facts, "Layers", `${count} adaptable linear layer${count === 1 ? "" : "s"}`);
  const where = model.source_uri ? `at ${model.source_uri}` : "in the registry's store";
  fact(facts, "Files", `${(model.files || []).length} ${where}`);
  if (model.capabilities) fact(facts, "Tasks", Object.keys(model.capabilities.tasks || {}).join(", ") || "none");
  fact(facts, "Registered", timeEl(model.created_at));
  const projections = el("div", {}, el("p", { class: "muted" }, "Loading projections…"));
  projectionsOf(api, model.id)
    .then((items) => projections.replaceChildren(projectionList(items)))
    .catch((err) => projections.replaceChildren(errorBox(err)));
  return el(
    "section", { class: "card model", "aria-labelledby": headingId, dataset: { modelId: model.id } },
    el("h2", { id: headingId }, model.name),
    facts,
    el(
      "details", {},
      el("summary", {}, `Layers by module (${count})`),
      table(LAYER_COLUMNS, layerGroups(model.layers), { caption: `Layers of ${model.name}` }),
    ),
    el("h3", {}, "Projections (VeRA's frozen random matrices)"),
    projections,
  );
}

export async function render(root, params, ctx) {
  useJobsStylesheet();
  const cards = el("div", { class: "model-list" });
  const pager = loadMore(
    "Load more base models",
    (cursor) => ctx.api.get("/v1/base-models", { limit: PAGE_SIZE, cursor }),
    (models, added) => {
      cards.append(...added.map((model) => modelCard(ctx.api, model)));
      return models.length ? "" : "No base models registered yet (vera-registry base-models register).";
    },
  );
  root.replaceChildren(pageTitle("Base models"), cards, pager.status, el("div", { class: "pager" }, pager.button));
  await pager.load();
}
