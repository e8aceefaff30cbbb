// The HTTP API as the page uses it: fetch with the session's API key, problem errors, and SSE over fetch.

const KEY_STORAGE = "docqa.apiKey";

/** An error carrying the server's problem body (RFC 9457) when there was one. */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
  }
}

let askForKey = async () => null;

/** Register the function that asks the user for an API key (returns the key, or null when cancelled). */
export function onKeyNeeded(fn) {
  askForKey = fn;
}

/** Ask for a key in the page's `#key-dialog` (with `#key-reason` and `#key-input`), as both pages do. */
export function askForKeyInDialog() {
  const $ = (id) => document.getElementById(id);
  onKeyNeeded(
    (reason) =>
      new Promise((resolve) => {
        const dialog = $("key-dialog");
        $("key-reason").textContent = reason ? `${reason} The key is kept for this browser tab only.` : "This server needs an API key.";
        $("key-input").value = "";
        dialog.addEventListener(
          "close",
          () => resolve(dialog.returnValue === "ok" ? $("key-input").value.trim() || null : null),
          { once: true },
        );
        dialog.showModal();
      }),
  );
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function authHeaders(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

/** An ApiError from a failed response, using its problem body when it has one. */
export async function errorFrom(response) {
  let title = response.statusText;
  let detail = "";
  try {
    const body = await response.json();
    title = body.title || title;
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? "");
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, title, detail);
}

let keyPrompt = null;

/** Ask for a new key, once even when several requests are refused together; null when the user cancels. */
function newKey(reason) {
  sessionStorage.removeItem(KEY_STORAGE);
  keyPrompt ??= askForKey(reason)
    .then((key) => {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      return key;
    })
    .finally(() => (keyPrompt = null));
  return keyPrompt;
}

/** Run send() (which reads the current key) until it isn't refused with 401 or the user gives up on a key. */
async function withKey(send, refusal) {
  for (;;) {
    const used = apiKey();
    const result = await send();
    if (result.status !== 401) return result;
    if (apiKey() !== used) continue; // another request already got a new key
    const problem = await refusal(result);
    if (!(await newKey(problem.message))) throw problem;
  }
}

/** fetch with the API key; on 401 ask for a key and retry. Returns the Response (any other status). */
export function authorizedFetch(url, options = {}) {
  return withKey(() => fetch(url, { ...options, headers: authHeaders(options.headers) }), errorFrom);
}

/** A JSON request; throws ApiError unless the status is 2xx. 204 gives null. */
export async function api(url, { method = "GET", body, signal } = {}) {
  const options = { method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await authorizedFetch(url, options);
  if (!response.ok) throw await errorFrom(response);
  return response.status === 204 ? null : response.json();
}

/** POST a JSON body and call onEvent(name, data) for each Server-Sent Event until the stream ends. */
export async function streamEvents(url, body, onEvent, signal) {
  const response = await authorizedFetch(url, {
    method: "POST",
    signal,
    headers: { Accept: "text/event-stream", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await errorFrom(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    // Events end with a blank line; sse-starlette writes CRLF line endings.
    const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    buffer = done ? "" : blocks.pop();
    for (const block of blocks) dispatch(block, onEvent);
    if (done) return;
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alive pings
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let parsed = data.join("\n");
  try {
    parsed = JSON.parse(parsed);
  } catch {
    // leave non-JSON data as text
  }
  onEvent(name, parsed);
}

/** Upload one file with progress; resolves to the job. onProgress(fraction) while the bytes go up. */
export function uploadFile(collection, file, onProgress) {
  const send = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/v1/collections/${encodeURIComponent(collection)}/documents`);
      for (const [name, value] of Object.entries(authHeaders({ Accept: "application/json" }))) {
        xhr.setRequestHeader(name, value);
      }
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () => reject(new ApiError(0, "Network error", "the upload could not reach the server"));
      const form = new FormData();
      form.append("files", file, file.name);
      xhr.send(form);
    });
  const result = async (xhr) => {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch {
      // not JSON
    }
    if (xhr.status >= 200 && xhr.status < 300) return body;
    throw new ApiError(xhr.status, body?.title || xhr.statusText, typeof body?.detail === "string" ? body.detail : "");
  };
  return withKey(send, (xhr) => result(xhr).catch((err) => err)).then(result);
}

/** Open a document's source file at a page; with an API key it goes through fetch and a blob URL. */
export async function openSource(url, page) {
  const fragment = page ? `#page=${page}` : "";
  if (!apiKey()) {
    window.open(url + fragment, "_blank", "noopener");
    return;
  }
  const target = window.open("", "_blank");
  try {
    const response = await authorizedFetch(url);
    if (!response.ok) throw await errorFrom(response);
    const blob = await response.blob();
    const blobUrl = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60_000);
    if (target && blob.type === "application/pdf") {
      target.location.href = blobUrl + fragment;
      return;
    }
    // Not viewable inline: save it under its own name.
    if (target) target.close();
    const link = document.createElement("a");
    link.href = blobUrl;
    link.download = filenameOf(response) || "document";
    link.click();
  } catch (err) {
    if (target) target.close();
    throw err;
  }
}

function filenameOf(response) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=(?:UTF-8'')?([^;]+)/i.exec(disposition);
  if (star) return decodeURIComponent(star[1].replace(/"/g, ""));
  const plain = /filename="?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1] : null;
}
