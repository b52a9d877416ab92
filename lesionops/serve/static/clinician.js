// The clinician's page: task → photo → (box) → wait → result → "this result looks wrong".
import * as api from "./api.js";
import { BoxStage, boxText } from "./box.js";
import { Account } from "./signin.js";

const $ = (id) => document.getElementById(id);
const human = (label) => label.replaceAll("_", " ");
const MAX_LISTED = 10; // detections listed by name; the annotated photo shows them all

let photo = null; // the File being analysed (kept after the <input> is cleared)
let previewUrl = null;
let last = null; // the last /classify or /detect answer
let health = null; // GET /health: which models are in service, and why one is missing

const account = new Account(() => api.say($("error"), ""));

const stage = new BoxStage($("stage"), $("photo"), (box) => {
  $("box-out").value = boxText(box);
});

const task = () => document.querySelector("input[name=task]:checked").value;

function showTask() {
  const classify = task() === "classify";
  $("region").hidden = !classify;
  stage.enabled = classify;
  $("stage").setAttribute(
    "aria-label",
    classify ? "Photo. Drag over the lesion to draw a box." : "Photo to search for lesions.",
  );
  $("go").textContent = classify ? "Classify" : "Detect lesions";
  showService();
  clearResult();
}

async function checkService() {
  try {
    health = await api.health();
  } catch {
    health = null; // unknown: the next request's own error says what is wrong
    api.say($("service"), "");
    return;
  }
  showService();
}

/** Say up front when the chosen task has no model in service (the API would answer 503). */
function showService() {
  if (!health) return;
  const kind = task() === "classify" ? "classifier" : "detector";
  const what = task() === "classify" ? "Classification" : "Lesion detection";
  const why = health.problems?.[kind] || `no ${kind} in service`;
  api.say($("service"), health[kind] ? "" : `${what} is not available right now: ${why}.`, "warn");
}

function clearResult() {
  last = null;
  $("result").hidden = true;
  api.say($("error"), "");
}

function choosePhoto(input) {
  const [file] = input.files;
  input.value = ""; // picking the same file again must still fire "change"
  if (!file) return;
  photo = file;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  $("photo").src = previewUrl;
  const size = file.size >= 1e6 ? `${(file.size / 1e6).toFixed(1)} MB` : `${Math.ceil(file.size / 1e3)} kB`;
  $("file-name").textContent = `${file.name} (${size})`;
  stage.set(null);
  $("go").disabled = false;
  clearResult();
}

function waiting(on) {
  $("waiting").hidden = !on;
  $("go").disabled = on;
  $("ask").setAttribute("aria-busy", String(on));
  if (on) {
    $("wait-text").textContent = "Uploading the photo…";
    $("progress").value = 0;
    $("waiting").scrollIntoView({ block: "nearest" });
  }
}

function progress(fraction) {
  if (fraction < 1) {
    $("progress").value = fraction;
    return;
  }
  $("wait-text").textContent = task() === "classify" ? "Classifying…" : "Looking for lesions…";
  $("progress").removeAttribute("value"); // indeterminate while the model runs
}

async function analyse(event) {
  event.preventDefault();
  if (!photo) {
    api.say($("error"), "Choose or take a photo first.", "error");
    return;
  }
  if (!account.user && !health?.anonymous_classify) {
    api.say($("error"), "Sign in first: enter your personal access token above.", "error");
    $("token").focus();
    return;
  }
  clearResult();
  waiting(true);
  try {
    const answer = task() === "classify"
      ? await api.classify(photo, stage.box, progress)
      : await api.detect(photo, progress);
    showResult(answer);
  } catch (err) {
    api.say($("error"), err.message, "error");
    if (err.status === 503 || err.status === 0) checkService();
  } finally {
    waiting(false);
  }
}

function barItem({ label, confidence }) {
  const li = document.createElement("li");
  li.dataset.label = label;
  const name = document.createElement("span");
  name.className = "label";
  name.textContent = human(label);
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = api.percent(confidence);
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.setAttribute("aria-hidden", "true");
  bar.style.setProperty("--fill", `${(100 * confidence).toFixed(1)}%`);
  li.append(name, value, bar);
  return li;
}

function detectionItem({ label, score }) {
  const li = document.createElement("li");
  li.dataset.label = label;
  li.textContent = `${human(label)} — score ${api.percent(score)}`;
  return li;
}

const SCOPE_REASONS = {
  grey: "it is black and white (an X-ray or a grey photo?)",
  near_black: "it is almost black",
  unfamiliar: "it looks unlike the photos the model learned from",
};

/** An out-of-scope photo gets no diseases: say why and what to send instead. */
function showScope(scope) {
  const refused = Boolean(scope && !scope.in_scope);
  $("out-of-scope").hidden = !refused;
  if (refused) {
    const why = scope.reasons.map((r) => SCOPE_REASONS[r] || r).join("; ");
    $("out-of-scope").textContent =
      `No result: this photo cannot be assessed by the model because ${why}. ` +
      "Please upload a sharp colour photo of the skin lesion.";
  }
}

function showResult(answer) {
  last = answer;
  const classify = answer.kind === "classify";
  $("model-version").textContent = `${answer.model.name} version ${answer.model.version}`;
  $("top").hidden = !classify;
  $("top").replaceChildren(...(classify ? answer.top.map(barItem) : []));
  showScope(answer.scope);
  $("annotated-figure").hidden = classify || !answer.annotated_png;
  if (!classify && answer.annotated_png) $("annotated").src = answer.annotated_png;
  const found = classify ? [] : [...answer.detections].sort((a, b) => b.score - a.score);
  $("detections").hidden = classify;
  $("detections").replaceChildren(...found.slice(0, MAX_LISTED).map(detectionItem));
  const more = found.length - MAX_LISTED;
  if (!classify && (!found.length || more > 0)) {
    const li = document.createElement("li");
    li.className = "muted";
    li.hidden = Boolean(answer.scope && !answer.scope.in_scope); // the notice above says why
    li.textContent = found.length
      ? `…and ${more} more with lower scores (all drawn on the photo).`
      : "No lesion found above the detector's score threshold.";
    $("detections").append(li);
  }
  resetFeedback(classify ? answer.top.map((t) => t.label) : found.map((d) => d.label));
  $("wrong").hidden = !answer.prediction_id; // a kiosk answer was not stored: nothing to report on
  $("not-stored").hidden = Boolean(answer.prediction_id);
  $("result").hidden = false;
  $("result-title").focus({ preventScroll: true }); // announced by screen readers
  $("result").scrollIntoView({ block: "nearest" }); // on a phone the result is below the form
}

/**
 * Labels the reporter can suggest: the labels in the answer first, then the task's other classes
 * when the app lists them (GET /health `classes`), then "other".
 */
function resetFeedback(labels) {
  const options = [...new Set([...labels, ...(health?.classes ?? [])]), "other"];
  const select = $("suggested");
  const prompt = new Option("Choose a label…", "");
  prompt.disabled = true;
  select.replaceChildren(prompt, ...options.map((l) => new Option(human(l), l)));
  select.value = "";
  $("note").value = "";
  $("wrong").open = false;
  $("send-feedback").disabled = false;
  api.say($("feedback-status"), "");
}

async function report(event) {
  event.preventDefault();
  const status = $("feedback-status");
  if (!last) return;
  if (!$("suggested").value) {
    api.say(status, "Choose what the result should be.", "error");
    $("suggested").focus();
    return;
  }
  if (!account.user) {
    api.say(status, "Sign in (above) to send a report: it records who reported it.", "error");
    $("token").focus();
    return;
  }
  $("send-feedback").disabled = true;
  try {
    const receipt = await api.sendFeedback({
      predictionId: last.prediction_id,
      suggestedLabel: $("suggested").value,
      note: $("note").value.trim(),
      box: last.kind === "classify" ? last.box : null,
    });
    api.say(status, `Thank you — report ${receipt.feedback_id} received. An expert will review it.`, "ok");
  } catch (err) {
    api.say(status, err.message, "error");
    $("send-feedback").disabled = false;
  }
}

$("photo").addEventListener("load", () => {
  $("stage").hidden = false;
  $("no-preview").hidden = true;
});
$("photo").addEventListener("error", () => {
  $("stage").hidden = true;
  $("no-preview").hidden = !photo;
});
for (const radio of document.querySelectorAll("input[name=task]")) radio.addEventListener("change", showTask);
for (const id of ["camera", "file"]) $(id).addEventListener("change", (e) => choosePhoto(e.target));
$("whole").addEventListener("click", () => stage.set(null));
$("ask").addEventListener("submit", analyse);
$("feedback").addEventListener("submit", report);
showTask();
checkService();
account.restore();
