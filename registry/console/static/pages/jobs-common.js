// What the jobs, job and models pages share: their stylesheet, state badges, durations.

import { el, errorBox } from "../ui.js";

export const JOB_STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** Link pages/jobs.css once (the console's style.css stays the console's). */
export function useJobsStylesheet() {
  const href = new URL("./jobs.css", import.meta.url).href;
  if (document.querySelector(`link[rel="stylesheet"][href="${href}"]`)) return;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = href;
  document.head.append(link);
}

/** A state badge: text (never colour alone) plus a class per state for the colour. */
export function stateBadge(state) {
  const badge = document.createElement("span");
  setState(badge, state);
  return badge;
}

export function setState(badge, state) {
  // The console's .badge.state-* colours (style.css).
  badge.className = `badge state-${JOB_STATES.includes(state) ? state : "other"}`;
  badge.textContent = state;
}

/** "2 min 05 s" from seconds; "" when unknown. */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
  if (minutes) return `${minutes} min ${String(secs).padStart(2, "0")} s`;
  return `${secs} s`;
}

export function percent(fraction) {
  return `${Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100)}%`;
}

/** One term and its value in a <dl class="facts">. */
export function fact(list, term, value) {
  list.append(el("dt", {}, term), el("dd", {}, value ?? ""));
}

/**
 * A "load more" button over a cursor-paginated list route. fetchPage(cursor) → a page;
 * show(all, added, done) renders what is loaded and returns the status line.
 */
export function loadMore(label, fetchPage, show) {
  const button = el("button", { type: "button", class: "btn", hidden: true }, label);
  const status = el("p", { role: "status", class: "muted" });
  const items = [];
  let cursor = null;
  const load = async () => {
    button.disabled = true;
    try {
      const page = await fetchPage(cursor);
      items.push(...page.items);
      cursor = page.next_cursor;
      button.hidden = !cursor;
      status.textContent = show(items, page.items, !cursor) || "";
    } catch (err) {
      status.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
  };
  button.addEventListener("click", load);
  return { button, status, load };
}
