// Sign in with an API key: kept in this tab's sessionStorage only, checked with GET /v1/me.

import { el, errorBox, pageTitle } from "../ui.js";

export async function render(root, params, ctx) {
  const input = el("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", required: true,
    spellcheck: "false", "aria-describedby": "api-key-hint",
  });
  const status = el("div", { "aria-live": "polite" });
  if (params.expired) {
    status.append(errorBox(new Error("The key was refused (revoked or expired): sign in again.")));
  }
  const submit = el("button", { type: "submit", class: "btn primary" }, "Sign in");
  const form = el(
    "form",
    { class: "stack", "aria-label": "Sign in" },
    el("div", { class: "field" },
      el("label", { for: "api-key" }, "API key"),
      input,
      el("span", { id: "api-key-hint", class: "hint" },
        "A key of your tenant (vera_…). It stays in this browser tab and is forgotten when the tab closes.")),
    el("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    status.replaceChildren();
    try {
      await ctx.signIn(input.value.trim());
      const next = params.next && params.next.startsWith("#/") && !params.next.startsWith("#/signin")
        ? params.next : "#/users";
      ctx.navigate(next);
    } catch (err) {
      status.replaceChildren(errorBox(err));
      input.focus();
    } finally {
      submit.disabled = false;
    }
  });
  root.append(pageTitle("Sign in"), form, status);
  input.focus();
}
