// One adapter: its aliases and their history, its versions, publish and rollback
// (compare-and-swap on the alias's generation), downloads, eval metrics over versions.

import { askPublish, askRollback, isStale, staleBox } from "../aliases.js";
import { allPages, baseModelName } from "../lookups.js";
import { el, errorBox, formatBytes, notify, pageTitle, shortHash, table, timeEl } from "../ui.js";

export async function render(root, params, ctx) {
  const path = `/v1/adapters/${encodeURIComponent(params.adapter_id)}`;
  let adapter;
  try {
    adapter = await ctx.api.get(path);
  } catch (err) {
    if (err.status !== 404) throw err;
    root.append(
      pageTitle("Adapter not found"),
      el("p", { role: "alert" }, `Not found: there is no adapter ${params.adapter_id} in this tenant.`),
      el("p", {}, el("a", { href: "#/users" }, "Back to users")),
    );
    return;
  }
  const alerts = el("div", { class: "alerts" });
  const body = el("div");
  const page = { ctx, path, adapter, alerts, body };
  page.reload = async (focus) => {
    alerts.replaceChildren();
    await load(page);
    if (focus) body.querySelector(focus)?.focus();
  };
  root.append(
    pageTitle(`${adapter.name}`, el("span", { class: "muted" }, ` · ${adapter.user_id}`)),
    alerts,
    body,
  );
  await load(page);
}

async function load(page) {
  const { ctx, path, adapter } = page;
  const [versions, aliases, baseName] = await Promise.all([
    allPages(ctx.api, `${path}/versions`),
    allPages(ctx.api, `${path}/aliases`),
    baseModelName(ctx.api, adapter.base_model_id),
  ]);
  const histories = await Promise.all(
    aliases.items.map((a) => allPages(ctx.api, `${path}/aliases/${encodeURIComponent(a.alias)}/history`, {}, 500)),
  );
  page.aliases = aliases.items;
  const chart = el("div", { class: "chart" });
  page.body.replaceChildren(el("div", {},
    facts(adapter, baseName),
    el("h2", { id: "aliases-heading", tabindex: "-1" }, "Aliases"),
    aliasTable(page),
    aliases.items.map((a, i) => historyTable(page, a.alias, histories[i].items)),
    el("h2", {}, "Versions"),
    versionTable(page, versions.items),
    versions.truncated ? el("p", { class: "muted" }, "Only the oldest 2000 versions are shown.") : null,
    el("h2", {}, "Eval metrics over versions"),
    chart,
  ));
  await metricsChart(chart, versions.items);
}

function facts(adapter, baseName) {
  const rows = [
    ["User", el("a", { href: `#/users/${encodeURIComponent(adapter.user_id)}` }, adapter.user_id)],
    ["Adapter id", el("code", {}, adapter.id)],
    ["Task", adapter.task],
    ["Base model", el("a", { href: "#/models", title: adapter.base_model_id }, baseName)],
    ["Projection", el("code", {}, adapter.projection_id)],
    ["Target modules", [adapter.target_modules].flat().join(", ")],
    ["Tags", adapter.tags.length ? adapter.tags.map((t) => el("span", { class: "badge" }, t)) : "—"],
    ["Description", adapter.description || "—"],
    ["Created", timeEl(adapter.created_at)],
    ["Updated", timeEl(adapter.updated_at)],
  ];
  return el("dl", { class: "facts" }, rows.map(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function aliasTable(page) {
  const canMove = page.ctx.can("train");
  const columns = [
    { label: "Alias", value: (a) => el("span", { class: "badge alias" }, a.alias) },
    { label: "Version", class: "num", value: (a) => `v${a.version}` },
    { label: "Generation", class: "num", value: (a) => String(a.generation) },
    { label: "Moved", value: (a) => timeEl(a.updated_at) },
  ];
  if (canMove) {
    columns.push({
      label: "Actions",
      value: (a) => el("button", { type: "button", class: "btn small", onclick: () => rollback(page, a),
        "aria-label": `Roll back ${a.alias}` }, "Roll back…"),
    });
  }
  return table(columns, page.aliases, { caption: "Aliases", hideCaption: true, empty: "No alias points at a version yet: publish one below." });
}

function historyTable(page, alias, events) {
  const mine = page.ctx.me.key_id;
  const actor = (e) => {
    if (e.actor_key_id === null) return el("span", { class: "muted" }, "a job or the server");
    return e.actor_key_id === mine ? "you (this key)" : el("code", {}, e.actor_key_id);
  };
  const move = (e) => `${e.from_version ? `v${e.from_version}` : "—"} → ${e.to_version ? `v${e.to_version}` : "—"}`;
  return [
    el("h3", {}, `History of ${alias}`),
    table(
      [
        { label: "When", value: (e) => timeEl(e.created_at) },
        { label: "Kind", value: (e) => e.kind },
        { label: "Move", value: move },
        { label: "Generation", class: "num", value: (e) => (e.generation === null ? "" : String(e.generation)) },
        { label: "By", value: actor },
        { label: "Reason", value: (e) => e.reason || "" },
      ],
      [...events].reverse(),
      { caption: `History of ${alias}, newest first`, hideCaption: true },
    ),
  ];
}

function versionTable(page, versions) {
  const { ctx, path, adapter } = page;
  const pointing = new Map();
  for (const a of page.aliases) pointing.set(a.version, [...(pointing.get(a.version) || []), a.alias]);
  const download = (url, name) => () =>
    ctx.api.download(url, name).catch((err) => notify(`Download failed: ${err.message}`, "error"));
  const actions = (v) => {
    const blob = `${path}/versions/${v.number}/blob`;
    return el("div", { class: "actions" },
      ctx.can("train")
        ? el("button", { type: "button", class: "btn small primary", onclick: () => publish(page, v.number),
          "aria-label": `Publish v${v.number}` }, "Publish…")
        : null,
      el("button", { type: "button", class: "btn small", "aria-label": `Download v${v.number} safetensors`,
        onclick: download(blob, `${adapter.user_id}-${adapter.name}-v${v.number}.safetensors`) }, "Blob"),
      el("button", { type: "button", class: "btn small", "aria-label": `Download v${v.number} PEFT zip`,
        onclick: download(`${path}/versions/${v.number}/peft`, `${adapter.id}-v${v.number}.zip`) }, "PEFT zip"));
  };
  return table(
    [
      { label: "Version", value: (v) => [el("strong", {}, `v${v.number}`), v.description ? el("div", { class: "muted" }, v.description) : null] },
      { label: "Aliases", value: (v) => (pointing.get(v.number) || []).map((a) => el("span", { class: "badge alias" }, a)) },
      { label: "Metrics", value: (v) => metricList(v.metrics) },
      { label: "Size", class: "num", value: (v) => formatBytes(v.size_bytes) },
      { label: "SHA-256", value: (v) => shortHash(v.blob_sha256) },
      { label: "Job", value: (v) => (v.job_id ? el("a", { href: `#/jobs/${encodeURIComponent(v.job_id)}` }, shortHash(v.job_id, 8)) : "—") },
      { label: "Parent", value: (v) => (v.parent_version_id ? shortHash(v.parent_version_id, 8) : "—") },
      { label: "Created", value: (v) => timeEl(v.created_at) },
      { label: "Actions", value: actions },
    ],
    [...versions].reverse(),
    { caption: "Versions, newest first", hideCaption: true, empty: "No versions yet: a finished training job adds one." },
  );
}

function metricList(metrics) {
  const entries = Object.entries(metrics || {});
  if (!entries.length) return "—";
  const show = (v) => (typeof v === "number" ? Number(v.toPrecision(4)).toString() : JSON.stringify(v));
  return el("ul", { class: "plain" }, entries.map(([k, v]) => el("li", {}, el("span", { class: "muted" }, `${k}: `), show(v))));
}

/** Numeric metrics as lines over version numbers: a chart (charts.js), else a table. */
async function metricsChart(container, versions) {
  const names = [...new Set(versions.flatMap((v) => Object.keys(v.metrics || {}).filter((k) => typeof v.metrics[k] === "number")))];
  if (!names.length) {
    container.append(el("p", { class: "muted" }, "No numeric eval metrics recorded yet."));
    return;
  }
  const series = names.map((name) => ({
    name,
    points: versions.filter((v) => typeof v.metrics[name] === "number").map((v) => [v.number, v.metrics[name]]),
  }));
  let charts = null;
  try {
    charts = await import("../charts.js");
  } catch {
    // charts.js not there (yet): the same numbers as a table below.
  }
  if (charts) {
    charts.lineChart(container, { title: "Eval metrics over versions", xLabel: "version", yLabel: "value", series });
  } else {
    container.append(table(
      [{ label: "Version", value: (v) => `v${v.number}` },
        ...names.map((name) => ({ label: name, class: "num", value: (v) => (typeof v.metrics[name] === "number" ? Number(v.metrics[name].toPrecision(4)).toString() : "") }))],
      versions,
      { caption: "Eval metrics over versions", hideCaption: true },
    ));
  }
}

async function publish(page, number) {
  const choice = await askPublish(page.adapter, number, page.aliases);
  if (!choice) return;
  const url = `${page.path}/aliases/${encodeURIComponent(choice.alias)}`;
  await move(page, () => page.ctx.api.send("PUT", url, { version: number, reason: choice.reason }, choice.headers));
}

async function rollback(page, current) {
  const choice = await askRollback(page.adapter, current);
  if (!choice) return;
  const url = `${page.path}/aliases/${encodeURIComponent(current.alias)}/rollback`;
  const body = choice.reason ? { reason: choice.reason } : undefined;
  await move(page, () => page.ctx.api.send("POST", url, body, choice.headers));
}

async function move(page, request) {
  let moved;
  try {
    moved = await request();
  } catch (err) {
    page.alerts.replaceChildren(isStale(err) ? staleBox(err, () => page.reload("#aliases-heading")) : errorBox(err));
    page.alerts.querySelector("button, p")?.focus?.();
    return;
  }
  // Announced once the page shows it, so what is read out and what is on screen agree.
  await page.reload("#aliases-heading");
  notify(`${moved.alias} now points at v${moved.version} (generation ${moved.generation}).`, "success");
}
