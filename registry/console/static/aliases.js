// Publish and rollback from the adapter page: a confirmation that shows the alias's
// generation, sent as If-Match so that a move someone else made meanwhile is refused.

import { el, confirmDialog } from "./ui.js";

/** "live is at v3 (generation 5)…": what confirming will do, from what this page loaded. */
function publishSummary(alias, current, number) {
  if (!current) {
    return `“${alias}” does not exist yet: it will be created pointing at v${number}.`;
  }
  if (current.version === number) {
    return `“${alias}” already points at v${number} (generation ${current.generation}); publishing again records a new move.`;
  }
  return `“${alias}” points at v${current.version} (generation ${current.generation}): it will move to v${number}, only if it is still at generation ${current.generation}.`;
}

/** Asks which alias and why; null when cancelled, else {alias, reason, headers}. */
export async function askPublish(adapter, number, aliases) {
  const byName = new Map(aliases.map((a) => [a.alias, a]));
  const aliasInput = el("input", {
    id: "publish-alias", name: "alias", value: "live", list: "publish-aliases", required: true,
    autocomplete: "off", maxlength: "64",
  });
  const reasonInput = reasonField("publish-reason");
  const summary = el("p", { class: "summary", "aria-live": "polite" });
  const update = () => { summary.textContent = publishSummary(aliasInput.value.trim(), byName.get(aliasInput.value.trim()), number); };
  aliasInput.addEventListener("input", update);
  update();
  const confirmed = await confirmDialog(
    [
      el("p", {}, `Publish version ${number} of ${adapter.user_id} / ${adapter.name}.`),
      el("div", { class: "field" }, el("label", { for: "publish-alias" }, "Alias"), aliasInput,
        el("datalist", { id: "publish-aliases" }, aliases.map((a) => el("option", { value: a.alias })))),
      summary,
      reasonInput.wrap,
    ],
    { title: `Publish v${number}`, confirmLabel: "Publish" },
  );
  if (!confirmed) return null;
  const alias = aliasInput.value.trim();
  const current = byName.get(alias);
  // Compare-and-swap on what this page showed: the generation, or "must not exist yet".
  const headers = current ? { "If-Match": `"${current.generation}"` } : { "If-None-Match": "*" };
  return { alias, reason: reasonInput.value(), headers };
}

/** Asks to confirm a rollback of `current` (an alias as listed); null when cancelled. */
export async function askRollback(adapter, current) {
  const reasonInput = reasonField("rollback-reason");
  const confirmed = await confirmDialog(
    [
      el("p", {},
        `“${current.alias}” of ${adapter.user_id} / ${adapter.name} points at v${current.version} `,
        `(generation ${current.generation}). Rolling back undoes its latest move not yet undone, `,
        `only if it is still at generation ${current.generation}.`),
      reasonInput.wrap,
    ],
    { title: `Roll back ${current.alias}`, confirmLabel: "Roll back" },
  );
  if (!confirmed) return null;
  return { reason: reasonInput.value(), headers: { "If-Match": `"${current.generation}"` } };
}

function reasonField(id) {
  const input = el("input", { id, name: "reason", maxlength: "500", autocomplete: "off", placeholder: "e.g. regression in eval" });
  return {
    wrap: el("div", { class: "field" }, el("label", { for: id }, "Reason (optional, kept in the history)"), input),
    value: () => input.value.trim() || undefined,
  };
}

/** True for the answers of a write whose precondition no longer held. */
export function isStale(err) {
  return err && (err.status === 412 || (err.status === 409 && err.code === "stale_generation"));
}

/** The explanation of a stale write, with a way to reload. */
export function staleBox(err, reload) {
  return el(
    "div",
    { class: "error-box", role: "alert" },
    el("p", {}, el("strong", {}, "Not changed. "),
      "Someone moved the alias since you loaded the page — reload to see where it points now, then try again."),
    el("p", { class: "muted" }, err.message),
    el("button", { type: "button", class: "btn", onclick: reload }, "Reload"),
  );
}
