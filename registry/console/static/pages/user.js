// One user: their adapters with the live version, base model and last training.

import { allPages, baseModelName } from "../lookups.js";
import { el, pageTitle, table, timeEl } from "../ui.js";

export async function render(root, params, ctx) {
  const userId = params.user_id;
  const path = `/v1/users/${encodeURIComponent(userId)}/adapters`;
  const [{ items: adapters }, listed, jobs] = await Promise.all([
    allPages(ctx.api, path, {}, 500),
    // The users list carries each adapter's live version; the prefix narrows it to this id.
    ctx.api.get("/v1/users", { user_id_prefix: userId, limit: 1 }),
    ctx.api.get("/v1/jobs", { user_id: userId, limit: 100 }),
  ]);
  root.append(pageTitle(`User ${userId}`));
  if (!adapters.length) {
    root.append(el("p", { class: "muted empty" }, `Not found: user ${userId} has no adapters in this tenant.`));
    return;
  }
  const live = new Map();
  for (const user of listed.items.filter((u) => u.user_id === userId)) {
    for (const a of user.adapters) live.set(a.id, a.live_version);
  }
  const lastJob = new Map(); // newest first: the first job seen per adapter is its last
  for (const job of jobs.items) if (!lastJob.has(job.adapter_id)) lastJob.set(job.adapter_id, job);
  const names = new Map(
    await Promise.all(adapters.map(async (a) => [a.base_model_id, await baseModelName(ctx.api, a.base_model_id)])),
  );
  root.append(
    table(
      [
        { label: "Adapter", value: (a) => el("a", { href: `#/adapters/${encodeURIComponent(a.id)}` }, a.name) },
        { label: "Task", value: (a) => a.task },
        { label: "Live version", class: "num", value: (a) => (live.get(a.id) ? `v${live.get(a.id)}` : "—") },
        { label: "Base model", value: (a) => el("a", { href: "#/models", title: a.base_model_id }, names.get(a.base_model_id)) },
        { label: "Last training", value: (a) => lastTraining(lastJob.get(a.id)) },
        { label: "Tags", value: (a) => a.tags.map((t) => el("span", { class: "badge" }, t)) },
        { label: "Updated", value: (a) => timeEl(a.updated_at) },
      ],
      adapters,
      { caption: `Adapters of ${userId}` },
    ),
    el("p", {}, el("a", { href: `#/jobs?user_id=${encodeURIComponent(userId)}` }, `All jobs of ${userId}`)),
  );
}

function lastTraining(job) {
  if (!job) return el("span", { class: "muted" }, "none");
  return el("span", {},
    el("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, el("span", { class: `badge state-${job.state}` }, job.state)),
    " ",
    timeEl(job.finished_at || job.started_at || job.created_at));
}
