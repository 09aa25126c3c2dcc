// The JSON API with the user's bearer key; the key lives in sessionStorage only.

const KEY = "enclave.apiKey";

export class ApiError extends Error {
  constructor(status, code, detail, retryAfter = null) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;  // seconds, from a 429's or 503's Retry-After
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY);
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${getKey() || ""}`, ...extra };
}

async function failure(response) {
  let code = "";
  let detail = "";
  try {
    const body = await response.json();
    code = body.error || "";
    detail = body.detail || "";
  } catch {
    detail = response.statusText;
  }
  const after = Number.parseFloat(response.headers.get("Retry-After") || "");
  return new ApiError(response.status, code, detail, Number.isFinite(after) ? after : null);
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function call(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers = headers({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

// GET a text body (an HTML report) with the bearer header; errors as call() gives them.
export async function callText(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  return response.text();
}

// Fetch a download with the bearer header and hand it to the browser as a file.
export async function download(path, fallbackName) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await failure(response);
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return link.download;
}

// POST and read Server-Sent Events from the body (EventSource cannot send headers).
// onEvent(name, data) is called for each event; data is parsed JSON.
export async function stream(path, body, onEvent, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("Content-Type") || "";
  if (!type.startsWith("text/event-stream")) {
    onEvent("answer", await response.json());
    return;
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "message";
  let data = [];
  const dispatch = () => {
    if (data.length) {
      const text = data.join("\n");
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { text };
      }
      onEvent(name, parsed);
    }
    name = "message";
    data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffer += value;
    // Lines end in \r\n, \n or \r; keep a trailing partial line (a lone \r may precede \n).
    const lines = buffer.split(/\r\n|\n|\r(?!$)/);
    buffer = done ? "" : lines.pop();
    for (let line of lines) {
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") dispatch();
      else if (line.startsWith(":")) continue;
      else {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") name = val;
        else if (field === "data") data.push(val);
      }
    }
    if (done) {
      dispatch();
      return;
    }
  }
}
