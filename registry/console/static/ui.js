// Small DOM helpers the pages share. Text always goes in as text nodes (never innerHTML),
// so nothing a user or an API returns can inject markup.

/**
 * el("a", {href: "#/x", class: "btn", onclick: fn, "aria-label": "…"}, "text", node, [more])
 * Attributes: `class`, `text`, `on<event>` functions, `dataset` objects, booleans (set
 * when true), anything else as an attribute. Children: strings, nodes, arrays; null,
 * undefined and false are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/**
 * A table in a scrollable region (wide tables scroll inside it, never the page).
 * columns: [{label, value: row => node | text, class?}]; options: {caption, hideCaption
 * (for screen readers only, where a heading already says it), empty}.
 */
export function table(columns, rows, { caption, hideCaption = false, empty = "Nothing here yet." } = {}) {
  if (!rows.length) return el("p", { class: "muted empty" }, empty);
  const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.map((row) =>
    el("tr", {}, columns.map((c) => el("td", { class: c.class }, c.value(row)))),
  );
  const label = caption || "Table";
  return el(
    "div",
    { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" },
    el("table", {}, caption ? el("caption", { class: hideCaption ? "visually-hidden" : null }, caption) : null, el("thead", {}, head),
      el("tbody", {}, body)),
  );
}

/**
 * A modal confirmation (<dialog>: focus moves in, Escape cancels, focus returns after).
 * `content`: text or nodes. Resolves true when confirmed.
 */
export function confirmDialog(content, { title = "Are you sure?", confirmLabel = "Confirm" } = {}) {
  const opener = document.activeElement;
  const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
  const cancel = el("button", { type: "button", class: "btn" }, "Cancel");
  const confirm = el("button", { type: "submit", class: "btn primary", value: "yes" }, confirmLabel);
  const dialog = el(
    "dialog",
    { class: "dialog", "aria-labelledby": titleId },
    el(
      "form",
      { method: "dialog" },
      el("h2", { id: titleId }, title),
      el("div", { class: "dialog-body" }, content),
      el("div", { class: "actions" }, cancel, confirm),
    ),
  );
  cancel.addEventListener("click", () => dialog.close(""));
  document.body.append(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
    });
    dialog.showModal();
    cancel.focus();
  });
}

/** A short message in the live region (announced by screen readers), gone after a while. */
export function notify(text, kind = "info") {
  const region = document.getElementById("toasts");
  const toast = el("div", { class: `toast ${kind}` }, text);
  region.append(toast);
  setTimeout(() => toast.remove(), kind === "error" ? 10_000 : 5_000);
  return toast;
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

/** "2026-01-31 12:00:05 UTC": one zone for everyone reading the same history. */
export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** A <time> element: formatted text, machine-readable datetime. */
export function timeEl(iso) {
  return iso ? el("time", { datetime: iso }, formatTime(iso)) : "";
}

/** An error as the user should read it: the API's message, its code and details. */
export function errorBox(err) {
  const message = (err && err.message) || String(err);
  const details = err && Array.isArray(err.details) ? err.details : [];
  return el(
    "div",
    { class: "error-box", role: "alert" },
    el("p", {}, el("strong", {}, err && err.status === 404 ? "Not found. " : "Error. "), message),
    err && err.code ? el("p", { class: "muted" }, `code: ${err.code}`) : null,
    details.length
      ? el("ul", {}, details.map((d) => el("li", {}, d.field ? `${d.field}: ${d.message}` : JSON.stringify(d))))
      : null,
  );
}

/** A heading for a page: focusable so that navigation can move focus to it. */
export function pageTitle(text, ...extra) {
  return el("h1", { tabindex: "-1", class: "page-title" }, text, ...extra);
}

/** Short form of a long hash or id, full value in the title and for copying. */
export function shortHash(value, length = 12) {
  if (!value) return "";
  return el("code", { title: value, class: "hash" }, value.length > length ? `${value.slice(0, length)}…` : value);
}
