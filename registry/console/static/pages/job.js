// #/jobs/<job_id> : one job, followed live over Server-Sent Events until it ends: state,
// progress bar, ETA, loss per step, failure reason, the version it made, cancel.

import { lineChart } from "../charts.js";
import { confirmDialog, el, errorBox, notify, pageTitle, timeEl } from "../ui.js";
import { followJob } from "./job-events.js";
import {
  TERMINAL,
  fact as detail,
  formatDuration,
  percent,
  setState,
  stateBadge,
  useJobsStylesheet,
} from "./jobs-common.js";

function link(href, text) {
  return el("a", { href }, text);
}

function detailsList(job) {
  const list = el("dl", { class: "facts" });
  detail(list, "User", link(`#/users/${encodeURIComponent(job.user_id)}`, job.user_id));
  detail(list, "Adapter", link(`#/adapters/${encodeURIComponent(job.adapter_id)}`, job.adapter_id));
  detail(list, "Base model", link("#/models", job.base_model_id));
  detail(list, "Projection", job.projection_id);
  detail(list, "Dataset", job.dataset_id);
  detail(list, "Publish", job.publish ? "yes (moves live)" : "no");
  detail(list, "Submitted", timeEl(job.created_at));
  detail(list, "Started", job.started_at ? timeEl(job.started_at) : "not yet");
  detail(list, "Finished", job.finished_at ? timeEl(job.finished_at) : "not yet");
  detail(list, "Attempts", String(job.attempts));
  const hyper = Object.entries(job.hyperparameters || {})
    .filter(([, value]) => value !== null)
    .map(([name, value]) => `${name}=${value}`)
    .join(", ");
  detail(list, "Hyperparameters", el("span", { class: "hash" }, hyper));
  return list;
}

/** The version a succeeded job made: scan the adapter's versions for this job's id. */
async function findVersion(api, job) {
  let cursor = null;
  for (let pages = 0; pages < 20; pages++) {
    const path = `/v1/adapters/${encodeURIComponent(job.adapter_id)}/versions`;
    const page = await api.get(path, { limit: 500, cursor });
    const found = page.items.find((version) => version.job_id === job.id);
    if (found || !page.next_cursor) return found || null;
    cursor = page.next_cursor;
  }
  return null;
}

function buildView(job, ctx) {
  const badge = stateBadge(job.state);
  const bar = el("progress", { id: "job-progress", max: "1", value: String(job.progress || 0), "aria-describedby": "job-progress-text" });
  const view = {
    badge,
    bar,
    text: el("p", { id: "job-progress-text", class: "job-progress-text" }),
    failure: el("div", { class: "job-failure" }),
    result: el("p", { class: "job-result", hidden: true }),
    cancel: el("button", { type: "button", class: "btn danger", hidden: true }, "Cancel job"),
    chart: el("div", { class: "job-chart" }),
    metrics: el("div", { class: "job-metrics" }),
    log: el("ol", { class: "job-log", "aria-label": "Job events" }),
    details: el("div", {}, detailsList(job)),
    connection: el("p", { class: "job-connection", role: "status" }),
    points: new Map(), // step → loss (a retried step replaces its earlier loss)
    chartFrame: 0,
    job,
  };
  view.root = [
    pageTitle("Job ", el("span", { class: "hash" }, job.id)),
    el("p", { class: "job-state" }, "State: ", el("span", { "aria-live": "polite" }, badge)),
    el("div", { class: "job-progress" }, el("label", { for: "job-progress" }, "Training progress"), bar, view.text),
    view.failure,
    view.result,
    ctx.can("train") ? el("div", { class: "actions" }, view.cancel) : null,
    view.connection,
    el("h2", {}, "Loss per step"),
    view.chart,
    view.metrics,
    el("h2", {}, "Details"),
    view.details,
    el("h2", {}, "Events"),
    view.log,
  ];
  return view;
}

function showProgress(view, { step, total, eta }) {
  const job = view.job;
  const done = job.state === "succeeded";
  const fraction = done ? 1 : total ? step / total : job.progress || 0;
  view.bar.value = fraction;
  let text = total ? `Step ${step} of ${total} (${percent(fraction)})` : percent(fraction);
  if (job.state === "running" && eta !== null && eta !== undefined) text += ` · about ${formatDuration(eta)} left`;
  if (job.state === "queued") text += " · waiting for a worker";
  if (job.cancel_requested_at && !TERMINAL.has(job.state)) text += " · cancellation requested";
  view.text.textContent = text;
}

function showState(view, ctx) {
  const job = view.job;
  setState(view.badge, job.state);
  view.cancel.hidden = !ctx.can("train") || TERMINAL.has(job.state) || Boolean(job.cancel_requested_at);
  if (job.state === "failed") {
    const message = `The job failed: ${job.error_message || "no reason recorded"}`;
    view.failure.replaceChildren(errorBox({ message, code: job.error_code }));
  }
}

function scheduleChart(view) {
  // Replaying hundreds of events draws once per frame, not once per event.
  if (view.chartFrame) return;
  view.chartFrame = requestAnimationFrame(() => {
    view.chartFrame = 0;
    const points = [...view.points.entries()];
    lineChart(view.chart, { title: "Training loss", xLabel: "step", yLabel: "loss", series: [{ name: "loss", points }] });
  });
}

/** A metric as people read it: times as times, 4 significant digits, ids as code. */
function metricValue(name, value) {
  if (typeof value !== "number") return el("span", { class: "hash" }, String(value));
  if (name.endsWith("_at")) return timeEl(new Date(value * 1000).toISOString()); // epoch seconds
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
}

function showMetrics(view, metrics) {
  const rows = Object.entries(metrics).filter(([, value]) => typeof value === "number" || typeof value === "string");
  if (!rows.length) return;
  const list = el("dl", { class: "facts" });
  for (const [name, value] of rows) detail(list, name.replaceAll("_", " "), metricValue(name, value));
  view.metrics.replaceChildren(el("h2", {}, "Final metrics"), list);
}

function logLine(view, event) {
  const data = event.data || {};
  let text = event.kind;
  if (event.kind === "state") {
    text = `state ${data.state}${data.reason ? `: ${data.reason}` : ""}${data.worker ? ` on ${data.worker}` : ""}`;
  } else if (event.kind === "log") {
    text = data.message || JSON.stringify(data);
  } else if (event.kind === "metrics") {
    text = "final metrics recorded";
  }
  view.log.append(el("li", {}, timeEl(event.created_at), " ", text));
}

async function showResult(view, ctx) {
  const job = view.job;
  if (job.state !== "succeeded" || !job.result_version_id) return;
  const version = await findVersion(ctx.api, job).catch(() => null);
  const label = version ? `version ${version.number}` : "a new version";
  view.result.hidden = false;
  view.result.replaceChildren(
    "Made ",
    link(`#/adapters/${encodeURIComponent(job.adapter_id)}`, `${label} of adapter ${job.adapter_id}`),
    job.publish ? " (published as live)." : ".",
  );
}

function onEvent(view, ctx, event) {
  const data = event.data || {};
  if (event.kind === "progress") {
    if (Number.isFinite(data.loss)) view.points.set(data.step, data.loss);
    Object.assign(view.job, { step: data.step, total_steps: data.total_steps });
    if (view.job.state === "queued") view.job.state = "running";
    showProgress(view, { step: data.step, total: data.total_steps, eta: data.eta_s });
    scheduleChart(view);
    return;
  }
  logLine(view, event);
  if (event.kind === "state") {
    Object.assign(view.job, { state: data.state });
    if (data.error_code) Object.assign(view.job, { error_code: data.error_code, error_message: data.error_message });
    showState(view, ctx);
    showProgress(view, { step: view.job.step, total: view.job.total_steps, eta: null });
  } else if (event.kind === "metrics") {
    showMetrics(view, data);
  }
}

async function cancelJob(view, ctx) {
  const ok = await confirmDialog(
    `Cancel job ${view.job.id}? A queued job stops at once; a running one at its next training step.`,
    { title: "Cancel this job?", confirmLabel: "Yes, cancel the job" },
  );
  if (!ok) return;
  view.cancel.disabled = true;
  try {
    view.job = await ctx.api.send("POST", `/v1/jobs/${encodeURIComponent(view.job.id)}/cancel`);
    showState(view, ctx);
    showProgress(view, { step: view.job.step, total: view.job.total_steps, eta: null });
    notify(view.job.state === "cancelled" ? "Job cancelled." : "Cancellation requested: the job stops at its next step.", "success");
  } catch (err) {
    notify(err.message || String(err), "error");
  } finally {
    view.cancel.disabled = false;
  }
}

export async function render(root, params, ctx) {
  useJobsStylesheet();
  let job;
  try {
    job = await ctx.api.get(`/v1/jobs/${encodeURIComponent(params.job_id)}`);
  } catch (err) {
    root.replaceChildren(pageTitle("Job"), errorBox(err));
    return undefined;
  }
  const view = buildView(job, ctx);
  root.replaceChildren(...view.root.filter(Boolean));
  showState(view, ctx);
  showProgress(view, { step: job.step, total: job.total_steps, eta: null });
  scheduleChart(view);
  view.cancel.addEventListener("click", () => cancelJob(view, ctx));
  const controller = new AbortController();
  const following = followJob(ctx.api, job.id, {
    signal: controller.signal,
    onEvent: (event) => onEvent(view, ctx, event),
    onStatus: (text) => { view.connection.textContent = text; },
    onEnd: async () => {
      view.job = await ctx.api.get(`/v1/jobs/${encodeURIComponent(job.id)}`);
      showState(view, ctx);
      showProgress(view, { step: view.job.step, total: view.job.total_steps, eta: null });
      await showResult(view, ctx);
      view.details.replaceChildren(detailsList(view.job));
    },
  });
  following.catch((err) => view.connection.replaceChildren(errorBox(err)));
  return () => {
    controller.abort();
    cancelAnimationFrame(view.chartFrame);
  };
}
