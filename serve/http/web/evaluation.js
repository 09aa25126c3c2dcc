// Admin: evaluation runs with their key figures, their HTML report in a sandboxed frame, and
// the golden sets (downloadable as the JSONL files `enclave eval golden` reads).

import { call, callText, download, query } from "./api.js";
import { $, clear, h, short, status, when } from "./dom.js";

const MAX_REPORT = 6;  // the server's limit (serve/http/routes/evaluation.py)
const DASH = "–";
let runs = [];
const selected = new Set();
let viewer = null;  // report-frame.html's <iframe>, once it has loaded
let onError = () => {};

export function initEvaluation(pageError) {
  onError = pageError;
  $("eval-refresh").addEventListener("click", () => refreshEvaluation());
  $("eval-report").addEventListener("click", () => report(false));
  $("eval-compare").addEventListener("click", () => report(true));
}

// A failed request is shown in the section; the rest of the admin page goes on working.
function failed(error) {
  if (error.status === 401) {
    onError(error);
    return;
  }
  $("eval-error").textContent = `Evaluation: ${error.message}`;
  status(`Error: ${error.message}`);
}

const pct = (v) => (typeof v === "number" ? `${(v * 100).toFixed(1)}%` : DASH);
const secs = (v) => (typeof v === "number" ? `${v.toFixed(2)} s` : DASH);

export async function refreshEvaluation() {
  $("eval-error").textContent = "";
  try {
    const [found, golden] = await Promise.all([
      call(`/v1/eval/runs${query({ limit: 50 })}`), call("/v1/golden/sets")]);
    runs = found.runs;
    showRuns();
    showSets(golden.sets);
  } catch (error) {
    failed(error);
  }
}

function showRuns() {
  const known = new Set(runs.map((r) => r.run_id));
  for (const id of [...selected]) if (!known.has(id)) selected.delete(id);
  const body = clear($("eval-runs").tBodies[0]);
  for (const run of runs) {
    // A run that failed or is still running has measured nothing, whatever it holds.
    const f = run.status === "done" ? run.figures : {};
    const name = `${run.config} ${short(run.run_id)}`;
    body.append(h("tr", { class: `eval-run ${run.status}` },
      h("td", {}, h("input", {
        type: "checkbox", "aria-label": `Select run ${name}`, checked: selected.has(run.run_id),
        onchange: (event) => {
          if (event.target.checked) selected.add(run.run_id);
          else selected.delete(run.run_id);
          buttons();
        },
      })),
      h("td", {}, run.config, " ", h("span", { class: "mono hint", text: short(run.run_id) })),
      h("td", { class: "clip", text: run.golden }),
      h("td", { class: `eval-status ${run.status}`,
        text: run.reason ? `${run.status}: ${run.reason}` : run.status }),
      h("td", { text: pct(f.answerable_answered) }),
      h("td", { text: pct(f.citation_precision) }),
      h("td", { text: pct(f.citation_recall) }),
      h("td", { text: secs(f.latency_p95_s) }),
      h("td", { text: when(run.started_at) })));
  }
  if (!runs.length) {
    body.append(h("tr", {}, h("td", { colspan: 9,
      text: "No evaluation runs yet (enclave eval golden records them)." })));
  }
  buttons();
}

function buttons() {
  $("eval-report").disabled = selected.size < 1 || selected.size > MAX_REPORT;
  $("eval-compare").disabled = selected.size !== 2;
}

function showSets(sets) {
  const body = clear($("golden-sets").tBodies[0]);
  for (const set of sets) {
    body.append(h("tr", {},
      h("td", { text: set.name }), h("td", { text: set.questions }),
      h("td", { text: when(set.updated_at) }),
      h("td", {}, h("button", {
        type: "button", "aria-label": `Download golden set ${set.name} as JSONL`,
        onclick: () => download(`/v1/golden/sets/${encodeURIComponent(set.name)}${
          query({ format: "jsonl" })}`, `${set.name}.jsonl`)
          .then((file) => status(`Downloaded ${file}.`)).catch(failed),
      }, "Download JSONL"))));
  }
  if (!sets.length) {
    body.append(h("tr", {}, h("td", { colspan: 4,
      text: "No golden sets yet: add answers to one from the audit page." })));
  }
}

// The selected runs side by side (oldest first) or, with exactly two, the newer one against
// the older as its baseline.
async function report(compare) {
  const chosen = runs.filter((r) => selected.has(r.run_id))
    .sort((a, b) => a.started_at.localeCompare(b.started_at));
  const params = new URLSearchParams();
  let title;
  if (compare) {
    const [older, newer] = chosen;
    params.append("run", newer.run_id);
    params.append("baseline", older.run_id);
    title = `${newer.config} (${short(newer.run_id)}) against the baseline ${older.config} (${
      short(older.run_id)})`;
  } else {
    for (const r of chosen) params.append("run", r.run_id);
    title = chosen.map((r) => `${r.config} (${short(r.run_id)})`).join(", ");
  }
  $("eval-error").textContent = "";
  status("Drawing the report…");
  try {
    const html = await callText(`/v1/eval/report?${params}`);
    await show(html);
    $("eval-report-title").textContent = `Report: ${title}`;
    $("eval-report-box").hidden = false;
    status("Report ready.");
  } catch (error) {
    failed(error);
  }
}

// The report goes to report-frame.html (its own, looser style policy: a srcdoc frame would
// inherit this page's, which forbids the report's inline styles), which shows it sandboxed.
async function show(html) {
  const frame = $("eval-report-frame");
  if (!viewer) {
    viewer = new Promise((resolve) => {
      frame.addEventListener("load", () => resolve(frame), { once: true });
      frame.src = "report-frame.html";
    });
  }
  // "*": the frame is sandboxed, so its origin is opaque and cannot be named; it is ours.
  (await viewer).contentWindow.postMessage({ type: "enclave-report", html }, "*");
}

// Signing out leaves no run, set or report on the page.
export function resetEvaluation() {
  runs = [];
  selected.clear();
  clear($("eval-runs").tBodies[0]);
  clear($("golden-sets").tBodies[0]);
  $("eval-error").textContent = "";
  $("eval-report-box").hidden = true;
  if (viewer) show("").catch(() => {});
  buttons();
}
