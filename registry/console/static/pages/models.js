// #/models : base models (hashes, layers) and the projections registered for each
// (r, seed, sizes, fingerprint) — what a job's adapter is bound to.

import { el, errorBox, formatTime } from "../ui.js";
import { useJobsStylesheet } from "./jobs-common.js";

const PAGE_SIZE = 20;

function detail(list, term, value) {
  list.append(el("dt", {}, term), el("dd", {}, value ?? ""));
}

function hash(value) {
  return el("code", { class: "hash" }, value || "");
}

/** Layers grouped by module name ("query"), with how many there are and their dims. */
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

function layersTable(layers) {
  const head = el("tr", {}, el("th", { scope: "col" }, "Module"), el("th", { scope: "col" }, "Layers"), el("th", { scope: "col" }, "d_in × d_out"));
  const body = el("tbody", {});
  for (const group of layerGroups(layers)) {
    body.append(el("tr", {}, el("td", {}, group.name), el("td", {}, String(group.count)), el("td", {}, group.dims)));
  }
  return el("div", { class: "jobs-scroll" }, el("table", { class: "model-layers" }, el("thead", {}, head), body));
}

function projectionsTable(items) {
  if (!items.length) return el("p", {}, "No projections registered for this model yet.");
  const head = el("tr", {});
  for (const label of ["r", "Seed", "Max d_in × d_out", "Generator", "Fingerprint", "Registered"]) {
    head.append(el("th", { scope: "col" }, label));
  }
  const body = el("tbody", {});
  for (const p of items) {
    body.append(
      el(
        "tr", { "data-projection-id": p.id },
        el("td", {}, String(p.r)),
        el("td", {}, String(p.seed)),
        el("td", {}, `${p.max_d_in} × ${p.max_d_out}`),
        el("td", {}, `${p.generator} (torch ${p.torch_version})`),
        el("td", {}, hash(p.fingerprint)),
        el("td", {}, formatTime(p.created_at)),
      ),
    );
  }
  return el("div", { class: "jobs-scroll" }, el("table", { class: "model-projections" }, el("thead", {}, head), body));
}

async function projectionsOf(api, modelId) {
  const items = [];
  let cursor = null;
  do {
    const page = await api.get(`/v1/base-models/${encodeURIComponent(modelId)}/projections`, cursor ? { limit: 500, cursor } : { limit: 500 });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < 5000);
  return items;
}

async function modelCard(api, model) {
  const headingId = `model-${model.id}`;
  const list = el("dl", { class: "job-details" });
  detail(list, "Id", hash(model.id));
  detail(list, "Architecture", model.architecture);
  detail(list, "Content hash", hash(model.content_hash));
  detail(list, "Weights hash", hash(model.weights_hash));
  const count = Object.keys(model.layers || {}).length;
  detail(list, "Layers", `${count} adaptable linear layer${count === 1 ? "" : "s"}`);
  detail(list, "Files", `${(model.files || []).length}${model.source_uri ? ` at ${model.source_uri}` : " in the registry's store"}`);
  if (model.capabilities) detail(list, "Tasks", Object.keys(model.capabilities.tasks || {}).join(", ") || "none");
  detail(list, "Registered", formatTime(model.created_at));
  const projections = el("div", {}, el("p", { role: "status" }, "Loading projections…"));
  const card = el(
    "section", { class: "model-card", "aria-labelledby": headingId },
    el("h2", { id: headingId }, model.name),
    list,
    el("details", {}, el("summary", {}, `Layers by module (${count})`), layersTable(model.layers)),
    el("h3", {}, "Projections"),
    projections,
  );
  projectionsOf(api, model.id)
    .then((items) => projections.replaceChildren(projectionsTable(items)))
    .catch((err) => projections.replaceChildren(errorBox(err)));
  return card;
}

export async function render(root, params, ctx) {
  useJobsStylesheet();
  const cards = el("div", { class: "model-list" });
  const status = el("p", { role: "status" });
  const more = el("button", { type: "button", hidden: "" }, "Load more base models");
  root.replaceChildren(el("h1", {}, "Base models"), cards, status, more);
  let cursor = null;
  let shown = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const page = await ctx.api.get("/v1/base-models", cursor ? { limit: PAGE_SIZE, cursor } : { limit: PAGE_SIZE });
      for (const model of page.items) cards.append(await modelCard(ctx.api, model));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      status.textContent = shown ? "" : "No base models registered yet (vera-registry base-models register).";
    } catch (err) {
      status.replaceChildren(errorBox(err));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}
