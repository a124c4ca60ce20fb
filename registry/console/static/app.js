// The console's hash router: `#/path?query` → a page module under ./pages/, loaded on
// demand. Every page but sign-in needs a key; the key's scopes decide what is offered.

import { ApiError, api, clearKey, getKey, setKey } from "./api.js";
import { el, errorBox } from "./ui.js";

// Every route of the console (contracts C4). `nav`: the main-menu entry it highlights.
const ROUTES = [
  { path: /^\/signin$/, page: "signin", title: "Sign in", open: true },
  { path: /^\/users$/, page: "users", title: "Users", nav: "users" },
  { path: /^\/users\/(?<user_id>.+)$/, page: "user", title: "User", nav: "users" },
  { path: /^\/adapters\/(?<adapter_id>[^/]+)$/, page: "adapter", title: "Adapter", nav: "users" },
  { path: /^\/jobs$/, page: "jobs", title: "Jobs", nav: "jobs" },
  { path: /^\/jobs\/(?<job_id>[^/]+)$/, page: "job", title: "Job", nav: "jobs" },
  { path: /^\/models$/, page: "models", title: "Base models", nav: "models" },
];
const HOME = "#/users";

const main = document.getElementById("main");
let me = null; // GET /v1/me for the key in sessionStorage
let cleanup = null; // what the current page returned from render()
let renderCount = 0; // a render superseded by a newer navigation drops its result

export function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function parseHash() {
  const raw = window.location.hash.replace(/^#/, "") || HOME.slice(1);
  const [path, search = ""] = raw.split("?", 2);
  const query = Object.fromEntries(new URLSearchParams(search));
  for (const candidate of ROUTES) {
    const match = candidate.path.exec(path);
    if (match) {
      const params = {};
      for (const [name, value] of Object.entries(match.groups || {})) {
        params[name] = decodeURIComponent(value);
      }
      return { route: candidate, params: { ...query, ...params } };
    }
  }
  return { route: null, params: query, path };
}

async function signIn(key) {
  setKey(key);
  try {
    me = await api.get("/v1/me");
  } catch (err) {
    clearKey();
    me = null;
    throw err;
  }
  showWho();
}

function signOut() {
  clearKey();
  me = null;
  showWho();
  navigate("#/signin");
}

function can(scope) {
  return Boolean(me && me.granted.includes(scope));
}

function showWho() {
  const who = document.getElementById("who");
  const nav = document.getElementById("nav");
  nav.hidden = !me;
  if (!me) {
    who.replaceChildren();
    return;
  }
  who.replaceChildren(
    el("span", { class: "tenant", title: `tenant ${me.tenant_id}` }, me.tenant_name),
    el("span", { class: "key", title: `key ${me.key_id}` }, me.key_name),
    el("span", { class: "scopes" }, el("span", { class: "visually-hidden" }, "scopes: "),
      me.scopes.map((s) => el("span", { class: `badge scope-${s}` }, s))),
    el("button", { type: "button", class: "btn small", onclick: signOut }, "Sign out"),
  );
}

function highlightNav(route) {
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (route && link.dataset.nav === route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const count = ++renderCount;
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.warn("page cleanup failed", err);
    }
    cleanup = null;
  }
  const { route: found, params, path } = parseHash();
  if (!found) {
    showPage(el("h1", { tabindex: "-1" }, "Not found"),
      el("p", {}, `The console has no page ${path}. `, el("a", { href: HOME }, "Go to users")));
    return;
  }
  if (!found.open && !(await ensureSignedIn(count))) return;
  highlightNav(found);
  document.title = `${found.title} · VeRA Registry`;
  const root = el("div", { class: `page page-${found.page}` });
  main.replaceChildren(root);
  let module;
  try {
    module = await import(`./pages/${found.page}.js`);
  } catch (err) {
    if (count === renderCount) {
      showPage(errorBox(new Error(`The ${found.title} page could not be loaded (${err.message}).`)));
    }
    return;
  }
  if (count !== renderCount) return;
  const ctx = { api, me, navigate, can, signIn };
  try {
    const result = await module.render(root, params, ctx);
    if (count !== renderCount) {
      if (typeof result === "function") result();
      return;
    }
    if (typeof result === "function") cleanup = result;
  } catch (err) {
    if (count === renderCount) root.replaceChildren(errorBox(err));
    if (!(err instanceof ApiError)) console.warn(err);
  }
  if (count === renderCount) focusHeading();
}

/** True once GET /v1/me answered for the stored key; otherwise off to sign-in. */
async function ensureSignedIn(count) {
  if (me) return true;
  if (getKey()) {
    try {
      me = await api.get("/v1/me");
      showWho();
      return count === renderCount;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) {
        showPage(errorBox(err));
        return false;
      }
      clearKey();
    }
  }
  const next = window.location.hash || HOME;
  window.location.replace(`#/signin?next=${encodeURIComponent(next)}`);
  return false;
}

function showPage(...nodes) {
  main.replaceChildren(...nodes);
  focusHeading();
}

// Focus moves to the new page's heading, so keyboard and screen-reader users start there;
// not on first load, where the browser's own order is expected.
let firstRender = true;
function focusHeading() {
  if (firstRender) {
    firstRender = false;
    return;
  }
  const heading = main.querySelector("h1");
  if (heading) heading.focus({ preventScroll: false });
}

window.addEventListener("vera:unauthorized", () => {
  if (!me) return;
  me = null;
  clearKey();
  showWho();
  const next = window.location.hash || HOME;
  window.location.replace(`#/signin?next=${encodeURIComponent(next)}&expired=1`);
});

document.getElementById("skip-link").addEventListener("click", (event) => {
  // The hash is the router's: focus the content without touching it.
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", route);
route();
