// The expert review page: sign in, load the pending queue, look at each report, set the true label
// (and fix the box), accept or reject; the signed-in reviewer is recorded with each decision.
// Images are fetched with the token and shown as blob URLs.
import * as api from "./api.js";
import { BoxStage, boxText } from "./box.js";
import { Account } from "./signin.js";

const $ = (id) => document.getElementById(id);
const human = (label) => label.replaceAll("_", " ");

function answerText(prediction) {
  if (!prediction) return "none (the photo was reported without a prediction)";
  if (prediction.kind === "classify") {
    return prediction.top.map((t) => `${human(t.label)} ${api.percent(t.confidence)}`).join(", ");
  }
  const found = prediction.detections || [];
  if (!found.length) return "no lesion detected";
  return found.map((d) => `${human(d.label)} ${api.percent(d.score)}`).join(", ");
}

function updateCount() {
  const n = $("queue").children.length;
  $("count").textContent = `(${n})`;
  $("empty").hidden = n > 0;
}

function fillClasses(select, classes, suggested) {
  const prompt = new Option("Choose the true label…", "");
  prompt.disabled = true;
  select.replaceChildren(prompt, ...classes.map((c) => new Option(human(c), c)));
  select.value = classes.includes(suggested) ? suggested : "";
}

function renderItem(item, classes) {
  const li = $("item-template").content.firstElementChild.cloneNode(true);
  const id = item.feedback_id;
  li.dataset.feedbackId = id;
  const q = (sel) => li.querySelector(sel);
  const title = q(".title");
  title.id = `title-${id}`;
  title.textContent = `Report ${id}`;
  li.setAttribute("aria-labelledby", title.id);
  q(".created").textContent = new Date(item.created_at).toLocaleString();
  q(".model").textContent = item.prediction
    ? `${item.prediction.model.name} version ${item.prediction.model.version} (${item.prediction.kind})`
    : "—";
  q(".answer").textContent = answerText(item.prediction);
  q(".suggested").textContent = human(item.suggested_label);
  q(".note").textContent = item.note || "—";
  const select = q(".true-label");
  select.id = `true-${id}`;
  q(".true-label-label").htmlFor = select.id;
  fillClasses(select, classes, item.suggested_label);

  const stageEl = q(".stage");
  stageEl.setAttribute("aria-label", `Photo of report ${id}. Drag to fix the lesion box.`);
  const img = q("img");
  let touched = false; // send a box only when the expert changed it; the server keeps the reported one
  const stage = new BoxStage(stageEl, img, (box) => {
    touched = true;
    q(".box-out").value = boxText(box);
  });
  // What the server exports when the expert leaves the box alone: the reporter's box, else the
  // classified region, else the whole image.
  const reported = item.box || item.prediction?.box || null;
  img.addEventListener("load", () => {
    stage.box = reported;
    stage.draw(reported);
    q(".box-out").value = reported ? boxText(reported.map(Math.round)) : "whole image";
    const found = item.prediction?.detections || [];
    stage.setHints(found.map((d) => ({ box: d.box, label: `${human(d.label)} ${api.percent(d.score)}` })));
  });
  api.reviewImageUrl(item.image_url).then(
    (url) => { img.src = url; },
    (err) => api.say(q(".item-status"), `The photo could not be loaded. ${err.message}`, "error"),
  );
  q(".whole").addEventListener("click", () => stage.whole());
  q(".decide").addEventListener("submit", (e) => decide(e, li, stage, () => touched));
  return li;
}

async function decide(event, li, stage, touched) {
  event.preventDefault();
  const action = event.submitter?.value || "accept";
  const status = li.querySelector(".item-status");
  const select = li.querySelector(".true-label");
  if (action === "accept" && !select.value) {
    api.say(status, "Choose the true label before accepting.", "error");
    select.focus();
    return;
  }
  const decision = { action };
  if (action === "accept") decision.true_label = select.value;
  if (touched() && stage.box) decision.box = stage.box;
  for (const b of li.querySelectorAll("button")) b.disabled = true;
  try {
    const done = await api.reviewDecision(li.dataset.feedbackId, decision);
    const saved = done.export ? ` Saved as ${done.export}.` : "";
    api.say($("status"), `Report ${done.feedback_id} ${done.status}.${saved}`, "ok");
    removeItem(li);
  } catch (err) {
    api.say(status, err.message, "error");
    for (const b of li.querySelectorAll("button")) b.disabled = false;
  }
}

function removeItem(li) {
  const next = li.nextElementSibling || li.previousElementSibling;
  const src = li.querySelector("img").src;
  if (src.startsWith("blob:")) URL.revokeObjectURL(src);
  li.remove();
  updateCount();
  (next?.querySelector(".title") || $("queue-title")).focus();
}

function clearQueue() {
  for (const img of $("queue").querySelectorAll("img")) {
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  }
  $("queue").replaceChildren();
  $("count").textContent = "";
  $("empty").hidden = true;
}

async function loadQueue() {
  clearQueue();
  if (!account.user) {
    api.say($("status"), "Sign in with your personal access token to load the queue.", "error");
    return;
  }
  if (!account.can("review")) {
    api.say($("status"), `Signed in as ${account.user.name} (${account.user.role}): only reviewers see the queue.`,
      "error");
    return;
  }
  $("load").disabled = true;
  try {
    const { items, classes } = await api.reviewQueue("pending");
    $("queue").append(...items.map((item) => renderItem(item, classes)));
    updateCount();
    api.say($("status"), "");
  } catch (err) {
    api.say($("status"), err.message, "error");
  } finally {
    $("load").disabled = false;
  }
}

const account = new Account((user) => {
  if (user) loadQueue();
  else {
    clearQueue();
    api.say($("status"), "");
  }
});
$("load").addEventListener("click", loadQueue);
account.restore();
