// One way of talking to the LesionOps API, shared by the clinician page and the review page.
//
// Every call goes through `request()`: it uses XMLHttpRequest (not fetch) because only XHR reports
// upload progress, which the waiting state shows for large phone photos. Every failure becomes an
// `ApiError` whose `message` is a plain-language headline for the status plus the API's own
// `detail` text, so both pages explain errors the same way.
//
// URLs are resolved against the app's root, derived from this module's own URL
// (<root>/static/api.js), so the pages keep working when the app is mounted under a path prefix.

export const ROOT = new URL("../", import.meta.url);
const TOKEN_KEY = "lesionops.token";

// What each status means for the person in front of the page; the API's detail follows it.
const HEADLINES = {
  0: "Cannot reach the LesionOps server. Check the connection and try again.",
  400: "The image could not be used.",
  401: "The access token was refused. Sign in with your personal access token.",
  403: "Your role does not allow this.",
  404: "Not found.",
  409: "This report was already reviewed.",
  410: "The photo was deleted after the retention period.",
  413: "The photo is too large to upload.",
  415: "This file is not a supported image.",
  422: "Something required is missing from the request.",
  429: "Too many uploads in a short time. Wait a moment and try again.",
  503: "The service is not available right now (busy, or no model in service).",
};

export class ApiError extends Error {
  constructor(status, detail) {
    const head = HEADLINES[status] ?? (status >= 500 ? "The server failed to answer." : "The request failed.");
    const code = status ? ` (HTTP ${status})` : "";
    super(detail ? `${head}${code} ${detail}` : `${head}${code}`);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

/** FastAPI's 422 detail is a list of {loc, msg}; every other error is {"detail": "<reason>"}. */
export function detailText(body) {
  const detail = body && typeof body === "object" ? body.detail : body;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
  }
  return detail == null ? "" : String(detail);
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  const token = value.trim();
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

async function errorFrom(xhr) {
  let body = xhr.response;
  try {
    if (body instanceof Blob) body = await body.text();
    if (typeof body === "string") body = JSON.parse(body);
  } catch {
    // not JSON (e.g. a proxy's HTML error page): show the status text instead
    body = { detail: xhr.statusText };
  }
  return new ApiError(xhr.status, detailText(body));
}

/**
 * Send one request. `form` (FormData) or `json` is the body; the signed-in user's token goes with
 * every request (`auth: false` leaves it off); `onProgress(fraction)` reports upload progress;
 * `responseType` "json" (default) or "blob".
 */
export function request(method, path, { form, json, auth = true, onProgress, responseType = "json" } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, new URL(path, ROOT));
    xhr.responseType = responseType === "blob" ? "blob" : "text";
    if (auth) {
      const token = getToken();
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    }
    let body = null;
    if (json !== undefined) {
      xhr.setRequestHeader("Content-Type", "application/json");
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    if (onProgress) {
      xhr.upload.addEventListener("progress", (e) => e.lengthComputable && onProgress(e.loaded / e.total));
    }
    xhr.addEventListener("load", async () => {
      if (xhr.status < 200 || xhr.status >= 300) return reject(await errorFrom(xhr));
      if (responseType === "blob") return resolve(xhr.response);
      try {
        resolve(xhr.response ? JSON.parse(xhr.response) : null);
      } catch {
        reject(new ApiError(xhr.status, "the server sent an unreadable answer"));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "")));
    xhr.addEventListener("timeout", () => reject(new ApiError(0, "the request timed out")));
    xhr.send(body);
  });
}

const boxField = (box) => box.map((v) => Math.round(v)).join(",");

export function classify(file, box, onProgress) {
  const form = new FormData();
  form.append("file", file);
  if (box) form.append("box", boxField(box));
  return request("POST", "classify", { form, onProgress });
}

export function detect(file, onProgress) {
  const form = new FormData();
  form.append("file", file);
  form.append("annotated", "true");
  return request("POST", "detect", { form, onProgress });
}

export function health() {
  return request("GET", "health", { auth: false });
}

/** The signed-in user ({user_id, name, role, permissions}); 401 when the stored token is refused. */
export function me() {
  return request("GET", "auth/me");
}

export function sendFeedback({ predictionId, suggestedLabel, note, box }) {
  const form = new FormData();
  form.append("prediction_id", predictionId);
  form.append("suggested_label", suggestedLabel);
  if (note) form.append("note", note);
  if (box) form.append("box", boxField(box));
  return request("POST", "feedback", { form });
}

export function reviewQueue(status = "pending") {
  return request("GET", `review/queue?status=${encodeURIComponent(status)}`);
}

/** The stored image of a feedback item, fetched with the token (an <img src> cannot send headers). */
export async function reviewImageUrl(imageUrl) {
  const blob = await request("GET", imageUrl.replace(/^\//, ""), { responseType: "blob" });
  return URL.createObjectURL(blob);
}

export function reviewDecision(feedbackId, decision) {
  return request("POST", `review/items/${encodeURIComponent(feedbackId)}`, { json: decision });
}

/** Show a message in a status/alert element; `kind` is "error", "ok" or "" (neutral). */
export function say(el, text, kind = "") {
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = !text;
}

export const percent = (x) => `${(100 * x).toFixed(1)} %`;
