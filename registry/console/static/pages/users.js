// The tenant's users (GET /v1/users): search by id prefix, tag and base model, one page
// at a time (the cursor rides in the URL, so a page can be bookmarked or shared).

import { baseModelName } from "../lookups.js";
import { el, pageTitle, table, timeEl } from "../ui.js";

const PAGE_SIZE = 25;
const FILTERS = ["user_id_prefix", "tag", "base_model_id"];

export async function render(root, params, ctx) {
  const fields = {
    user_id_prefix: field("user_id_prefix", "User id starts with", params, "alice"),
    tag: field("tag", "Adapter tag", params, "prod"),
    base_model_id: await baseModelField(ctx, params),
  };
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Search users" },
    Object.values(fields).map((f) => f.wrap),
    el("div", { class: "actions" },
      el("button", { type: "submit", class: "btn primary" }, "Search"),
      el("a", { href: "#/users", class: "btn" }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const name of FILTERS) {
      const value = fields[name].input.value.trim();
      if (value) query.set(name, value);
    }
    ctx.navigate(`#/users${String(query) ? `?${query}` : ""}`);
  });
  const results = el("div", { "aria-live": "polite", "aria-busy": "true" });
  root.append(pageTitle("Users"), form, results);

  const query = Object.fromEntries(FILTERS.map((name) => [name, params[name]]));
  const page = await ctx.api.get("/v1/users", { ...query, cursor: params.cursor, limit: PAGE_SIZE });
  results.removeAttribute("aria-busy");
  const names = await Promise.all(
    page.items.flatMap((u) => u.adapters.map((a) => baseModelName(ctx.api, a.base_model_id))),
  );
  let index = 0;
  for (const user of page.items) {
    for (const adapter of user.adapters) adapter.base_model_name = names[index++];
  }
  results.replaceChildren(
    table(
      [
        { label: "User", value: (u) => el("a", { href: `#/users/${encodeURIComponent(u.user_id)}` }, u.user_id) },
        { label: "Adapters", value: (u) => adapterList(u.adapters) },
        { label: "Updated", value: (u) => timeEl(latest(u.adapters)) },
      ],
      page.items,
      {
        caption: "Users and their adapters",
        empty: params.cursor ? "No more users." : "No users match (a user appears once they have an adapter).",
      },
    ),
    pager(params, page.next_cursor),
  );
}

function field(name, label, params, placeholder) {
  const id = `filter-${name}`;
  const input = el("input", { id, name, value: params[name] || "", placeholder, autocomplete: "off" });
  return { input, wrap: el("div", { class: "field" }, el("label", { for: id }, label), input) };
}

/** A choice of the tenant's base models (their names need not be unique: ids shown). */
async function baseModelField(ctx, params) {
  const id = "filter-base_model_id";
  const models = await ctx.api.get("/v1/base-models", { limit: 200 });
  const input = el(
    "select",
    { id, name: "base_model_id" },
    el("option", { value: "" }, "Any"),
    models.items.map((m) =>
      el("option", { value: m.id, selected: m.id === params.base_model_id }, `${m.name} · ${m.id.slice(0, 8)}`)),
  );
  return { input, wrap: el("div", { class: "field" }, el("label", { for: id }, "Base model"), input) };
}

function adapterList(adapters) {
  return el(
    "ul",
    { class: "plain" },
    adapters.map((a) =>
      el("li", {},
        el("a", { href: `#/adapters/${encodeURIComponent(a.id)}` }, a.name),
        " · ",
        a.live_version ? el("span", { class: "badge alias" }, `live v${a.live_version}`)
          : el("span", { class: "muted" }, "not live"),
        " · ",
        el("span", { title: a.base_model_id }, a.base_model_name)),
    ),
  );
}

function latest(adapters) {
  return adapters.map((a) => a.updated_at).sort().at(-1);
}

function pager(params, nextCursor) {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (params[name]) query.set(name, params[name]);
  const first = `#/users${String(query) ? `?${query}` : ""}`;
  const nav = el("nav", { class: "pager", "aria-label": "Pages" });
  if (params.cursor) nav.append(el("a", { class: "btn", href: first }, "First page"));
  if (nextCursor) {
    query.set("cursor", nextCursor);
    nav.append(el("a", { class: "btn", href: `#/users?${query}`, rel: "next" }, "Next page"));
  }
  return nav;
}
