// #/jobs?state=&user_id= : the tenant's jobs, newest first, filtered as GET /v1/jobs filters.

import { el, pageTitle, table, timeEl } from "../ui.js";
import { JOB_STATES, loadMore, percent, stateBadge, useJobsStylesheet } from "./jobs-common.js";

const PAGE_SIZE = 50;

const COLUMNS = [
  { label: "Job", value: (job) => el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "hash" }, job.id) },
  { label: "User", value: (job) => el("a", { href: `#/users/${encodeURIComponent(job.user_id)}` }, job.user_id) },
  { label: "State", value: (job) => stateBadge(job.state) },
  {
    label: "Progress",
    class: "num",
    value: (job) => (job.total_steps ? `${percent(job.progress)} (${job.step}/${job.total_steps})` : percent(job.progress)),
  },
  { label: "Submitted", value: (job) => timeEl(job.created_at) },
  { label: "Finished", value: (job) => timeEl(job.finished_at) },
];

function filtersForm(params, ctx) {
  const state = el(
    "select", { id: "jobs-state", name: "state" },
    el("option", { value: "" }, "Any state"),
    JOB_STATES.map((name) => el("option", { value: name, selected: params.state === name }, name)),
  );
  const user = el("input", {
    id: "jobs-user", name: "user_id", type: "search", autocomplete: "off",
    placeholder: "any user", value: params.user_id || "",
  });
  const onsubmit = (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (state.value) query.set("state", state.value);
    if (user.value.trim()) query.set("user_id", user.value.trim());
    const suffix = query.toString();
    ctx.navigate(suffix ? `#/jobs?${suffix}` : "#/jobs");
  };
  return el(
    "form", { class: "filters", role: "search", "aria-label": "Filter jobs", onsubmit },
    el("div", { class: "field" }, el("label", { for: "jobs-state" }, "State"), state),
    el("div", { class: "field" }, el("label", { for: "jobs-user" }, "User id"), user),
    el("button", { type: "submit", class: "btn" }, "Filter"),
  );
}

export async function render(root, params, ctx) {
  useJobsStylesheet();
  const list = el("div", { class: "jobs-list" });
  const pager = loadMore(
    "Load older jobs",
    (cursor) => ctx.api.get("/v1/jobs", { limit: PAGE_SIZE, status: params.state, user_id: params.user_id, cursor }),
    (jobs, added, done) => {
      list.replaceChildren(table(COLUMNS, jobs, { caption: "Jobs, newest first", empty: "No jobs match." }));
      return jobs.length ? `${jobs.length} job${jobs.length === 1 ? "" : "s"} shown${done ? ", no more" : ""}.` : "";
    },
  );
  root.replaceChildren(
    pageTitle("Training jobs"),
    filtersForm(params, ctx),
    list,
    pager.status,
    el("div", { class: "pager" }, pager.button),
  );
  await pager.load();
}
