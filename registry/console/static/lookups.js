// Names for ids the pages show often, fetched once per page load of the console.

const baseModels = new Map(); // id → Promise<base model | null>

/** The base model's name (or its id when it cannot be read), cached. */
export async function baseModelName(api, id) {
  if (!baseModels.has(id)) {
    baseModels.set(id, api.get(`/v1/base-models/${encodeURIComponent(id)}`).catch(() => null));
  }
  const model = await baseModels.get(id);
  return model ? model.name : id;
}

/** Every page of a list route, up to `max` items (the console shows bounded tables). */
export async function allPages(api, path, query = {}, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api.get(path, { ...query, limit: 500, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return { items, truncated: Boolean(cursor) };
}
