// Follow a job's events over SSE (api.stream: fetch, since EventSource cannot send the key),
// resuming after the last seen seq when the connection drops, until the server says "end".

const RETRY_DELAYS_MS = [1000, 2000, 5000, 10000];

/** One SSE message as the page wants it: {seq, kind, data, created_at} or {kind: "end"}. */
export function parseJobEvent(message) {
  const name = message.event ?? message.type ?? "message";
  let payload = message.data;
  if (typeof payload === "string") {
    try {
      payload = payload ? JSON.parse(payload) : {};
    } catch {
      payload = {};
    }
  }
  if (name === "end") return { kind: "end" };
  return { seq: payload.seq, kind: payload.kind ?? name, data: payload.data ?? {}, created_at: payload.created_at };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Calls onEvent for each event in order (history first), onEnd once the job has ended;
 * onStatus gets a line for the page while the connection is down. Stops when signal aborts.
 */
export async function followJob(api, jobId, { signal, onEvent, onEnd, onStatus }) {
  let after = 0;
  let ended = false;
  let failures = 0;
  const handle = (message) => {
    const event = parseJobEvent(message);
    if (event.kind === "end") {
      ended = true;
      return;
    }
    if (Number.isInteger(event.seq)) {
      if (event.seq <= after) return; // already seen before a reconnect
      after = event.seq;
    }
    failures = 0;
    onEvent(event);
  };
  while (!signal.aborted && !ended) {
    try {
      await api.stream(`/v1/jobs/${encodeURIComponent(jobId)}/events?after=${after}`, handle, signal);
      // A stream that closed without "end" (a proxy's timeout): resume shortly.
      if (!ended) await sleep(RETRY_DELAYS_MS[0], signal);
    } catch (err) {
      if (signal.aborted || err?.name === "AbortError") return;
      if (err?.status && err.status < 500 && err.status !== 429) {
        onStatus(`Live updates stopped: ${err.message}`);
        return;
      }
      const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)];
      failures += 1;
      onStatus(`Connection lost; reconnecting in ${delay / 1000} s…`);
      await sleep(delay, signal);
    }
  }
  if (ended && !signal.aborted) {
    onStatus("");
    await onEnd();
  }
}
