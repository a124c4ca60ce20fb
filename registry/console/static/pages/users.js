// The tenant's users (GET /v1/users): filters, cursor pages, each user's adapters.

import { el, pageTitle } from "../ui.js";

export async function render(root, params, ctx) {
  root.append(pageTitle("Users"), el("p", { class: "muted" }, "Coming up."));
}
