// The registry's HTTP API from the browser: the key (sessionStorage only) as a bearer
// token, JSON in and out, errors from the {"error": {code, message, details}} envelope.

const KEY_NAME = "vera.apiKey";

export class ApiError extends Error {
  constructor(status, code, message, details = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY_NAME);
}

function url(path, query) {
  const target = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") {
      target.searchParams.set(name, String(value));
    }
  }
  return target;
}

function authHeaders(extra) {
  const headers = { ...(extra || {}) };
  const key = getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not our envelope (a proxy's page): the status says what happened.
  }
  const error = body && body.error;
  if (error && typeof error.message === "string") {
    return new ApiError(response.status, error.code, error.message, error.details);
  }
  const text = response.statusText || "request failed";
  return new ApiError(response.status, `http_${response.status}`, `${response.status} ${text}`);
}

async function call(method, path, { query, body, headers, accept } = {}, signal) {
  const init = { method, headers: authHeaders(headers), signal };
  if (accept) init.headers.Accept = accept;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", `cannot reach the registry (${err.message}); is it running?`);
  }
  if (!response.ok) {
    const error = await errorOf(response);
    // A revoked or expired key: the app sends the user back to sign in.
    if (response.status === 401) window.dispatchEvent(new CustomEvent("vera:unauthorized"));
    throw error;
  }
  return response;
}

async function json(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const api = {
  /** GET `path` with query parameters (empty ones left out) → parsed JSON. */
  async get(path, query) {
    return json(await call("GET", path, { query }));
  },

  /** `method` `path` with a JSON body and extra headers (If-Match…) → parsed JSON. */
  async send(method, path, body, headers) {
    return json(await call(method, path, { body, headers }));
  },

  /**
   * Server-sent events over fetch (EventSource cannot send the Authorization header):
   * calls onEvent({event, data, id}) per event, data parsed as JSON where it is JSON.
   * Resolves when the stream ends; aborting `signal` ends it quietly.
   */
  async stream(path, onEvent, signal) {
    let response;
    try {
      response = await call("GET", path, { accept: "text/event-stream" }, signal);
    } catch (err) {
      if (err.name === "AbortError") return;
      throw err;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(block);
          if (event) onEvent(event);
        }
      }
    } catch (err) {
      if (err.name !== "AbortError") throw err;
    }
  },

  /** Fetches `path` with the key and saves it as `filename` (adapters are small). */
  async download(path, filename) {
    const response = await call("GET", path, {});
    const blob = await response.blob();
    const href = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = href;
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10_000);
    return blob.size;
  },
};

function parseEvent(block) {
  const event = { event: "message", data: "", id: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment: keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
  }
  if (!data.length) return null;
  event.data = data.join("\n");
  try {
    event.data = JSON.parse(event.data);
  } catch {
    // Plain text data stays a string.
  }
  return event;
}
