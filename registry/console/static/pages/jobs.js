// #/jobs?state=&user_id= : the tenant's jobs, newest first, filtered as GET /v1/jobs filters.

import { el, errorBox, formatTime } from "../ui.js";
import { JOB_STATES, percent, stateBadge, useJobsStylesheet } from "./jobs-common.js";

const PAGE_SIZE = 50;

function filtersForm(params, ctx) {
  const state = el("select", { id: "jobs-state", name: "state" }, el("option", { value: "" }, "Any state"));
  for (const name of JOB_STATES) {
    const option = el("option", { value: name }, name);
    if (params.state === name) option.selected = true;
    state.append(option);
  }
  const user = el("input", {
    id: "jobs-user", name: "user_id", type: "search", autocomplete: "off",
    placeholder: "any user", value: params.user_id || "",
  });
  const form = el(
    "form", { class: "jobs-filters", role: "search", "aria-label": "Filter jobs" },
    el("label", { for: "jobs-state" }, "State", state),
    el("label", { for: "jobs-user" }, "User id", user),
    el("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (state.value) query.set("state", state.value);
    if (user.value.trim()) query.set("user_id", user.value.trim());
    const suffix = query.toString();
    ctx.navigate(suffix ? `#/jobs?${suffix}` : "#/jobs");
  });
  return form;
}

function jobRow(job) {
  const progress = job.total_steps ? `${percent(job.progress)} (${job.step}/${job.total_steps})` : percent(job.progress);
  return el(
    "tr", {},
    el("td", {}, el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "hash" }, job.id)),
    el("td", {}, el("a", { href: `#/users/${encodeURIComponent(job.user_id)}` }, job.user_id)),
    el("td", {}, stateBadge(job.state)),
    el("td", {}, progress),
    el("td", {}, formatTime(job.created_at)),
    el("td", {}, job.finished_at ? formatTime(job.finished_at) : ""),
  );
}

function jobsTable() {
  const head = el("tr", {});
  for (const label of ["Job", "User", "State", "Progress", "Submitted", "Finished"]) {
    head.append(el("th", { scope: "col" }, label));
  }
  const body = el("tbody", {});
  const tableNode = el("table", { class: "jobs-table" }, el("caption", { class: "visually-hidden" }, "Jobs"), el("thead", {}, head), body);
  return { tableNode, body };
}

export async function render(root, params, ctx) {
  useJobsStylesheet();
  const { tableNode, body } = jobsTable();
  const status = el("p", { role: "status", class: "jobs-status" });
  const more = el("button", { type: "button", hidden: "" }, "Load older jobs");
  const errors = el("div", {});
  root.replaceChildren(
    el("h1", {}, "Training jobs"),
    filtersForm(params, ctx),
    errors,
    el("div", { class: "jobs-scroll" }, tableNode),
    status,
    more,
  );
  let cursor = null;
  let shown = 0;
  const load = async () => {
    more.disabled = true;
    try {
      const query = { limit: PAGE_SIZE };
      if (params.state) query.status = params.state;
      if (params.user_id) query.user_id = params.user_id;
      if (cursor) query.cursor = cursor;
      const page = await ctx.api.get("/v1/jobs", query);
      for (const job of page.items) body.append(jobRow(job));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      status.textContent = shown ? `${shown} job${shown === 1 ? "" : "s"} shown${cursor ? "" : ", no more"}.` : "No jobs match.";
    } catch (err) {
      errors.replaceChildren(errorBox(err));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}
