// Admin: ingestion jobs with progress, per-file items and errors; submit, cancel, retry.
// Health, uploads, documents, sources, people and evaluation have modules of their own.

import { call, query } from "./api.js";
import { $, clear, h, short, status, when } from "./dom.js";
import { initEvaluation, refreshEvaluation, resetEvaluation } from "./evaluation.js";
import { initDocuments, refreshDocuments, resetDocuments } from "./documents.js";
import { resetHealth, startHealth, stopHealth } from "./health.js";
import { initPeople, refreshPeople, resetPeople } from "./people.js";
import { refreshSources, resetSources } from "./sources.js";
import { Poller, retrying } from "./poll.js";
import { initUploads, resetUploads } from "./uploads.js";

let openJob = null;
// While a job runs, a tick reads the jobs, the sources and the open job: 3 reads every 5 s,
// 36 a minute, and the health view 6 more, inside the key's 60 with room for the admin's own.
const EVERY_MS = 5_000;
const poller = new Poller(EVERY_MS, () => refresh(), (e, wait) => status(retrying(e, wait)));

const RUNNING = new Set(["planning", "running"]);

export function initAdmin(onError) {
  $("job-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit().catch(onError);
  });
  $("jobs-refresh").addEventListener("click", () => poller.tick().catch(onError));
  $("job-cancel").addEventListener("click", () => act("cancel").catch(onError));
  $("job-retry").addEventListener("click", () => act("retry").catch(onError));
  initEvaluation(onError);
  initPeople(onError);
  initDocuments(onError);
  initUploads((id) => {
    openJob = id;
    poller.tick().catch(onError);
  });
}

export async function showAdmin() {
  await startHealth();
  await poller.start();
  await refreshDocuments();  // not polled either
  await refreshPeople();  // not polled: an admin's prompt would lose its row
  await refreshEvaluation();  // not polled with the jobs: it would clear the selection
}

export function hideAdmin() {
  stopHealth();
  poller.stop();
}

function progress(job) {
  const c = job.counts || {};
  const finished = (c.done || 0) + (c.unchanged || 0) + (c.failed || 0) + (c.cancelled || 0)
    + (c.deleted || 0);
  const parts = [`${finished}/${job.total}`];
  for (const [k, v] of Object.entries(c)) if (v) parts.push(`${k} ${v}`);
  return parts.join(" · ");
}

// Reads and shows the jobs, the sources and the open job; returns whether any still runs.
async function refresh() {
  const found = await call(`/v1/admin/jobs${query({ limit: 50 })}`);
  const body = clear($("jobs-table").tBodies[0]);
  for (const job of found.jobs) {
    const c = job.counts || {};
    const finished = (c.done || 0) + (c.unchanged || 0) + (c.failed || 0);
    body.append(h("tr", { class: `job ${job.status}` },
      h("td", { class: "mono", text: short(job.job_id) }),
      h("td", { class: "job-status", text: job.status + (c.failed ? " (with errors)" : "") }),
      h("td", {}, h("progress", { max: Math.max(job.total, 1), value: finished,
        "aria-label": `Job ${short(job.job_id)} progress` }), " ", progress(job)),
      h("td", { class: "clip", text: job.sources.join(", ") }),
      h("td", { text: when(job.created_at) }),
      h("td", {}, h("button", { type: "button", "aria-label": `Open job ${short(job.job_id)}`,
        onclick: () => openDetail(job.job_id).catch((e) => status(e.message)) }, "Open"))));
  }
  if (!found.jobs.length) body.append(h("tr", {}, h("td", { colspan: 6, text: "No jobs yet." })));
  let running = found.jobs.some((j) => RUNNING.has(j.status));
  running = (await refreshSources(async (id) => { openJob = id; await poller.tick(); })) || running;
  if (openJob) running = (await openDetail(openJob, false)) || running;
  return running;
}

async function submit() {
  const paths = $("job-paths").value.split("\n").map((s) => s.trim()).filter(Boolean);
  const groups = $("job-groups").value.split(",").map((s) => s.trim()).filter(Boolean);
  const where = groups.length ? `readable by ${groups.join(", ")}` : "public (readable by everyone)";
  const count = `${paths.length} path${paths.length === 1 ? "" : "s"}`;
  if (!window.confirm(`Ingest ${count} (${paths.join(", ")}), ${where}?`)) return;
  const job = await call("/v1/admin/jobs", { method: "POST", body: { paths, groups } });
  status(`Job ${short(job.job_id)} submitted (${job.status}).`);
  openJob = job.job_id;
  await poller.tick();
}

async function act(what) {
  if (!openJob) return;
  const asking = what === "cancel" ? `Cancel job ${short(openJob)}? What has not started will not run.`
    : `Run the failed items of job ${short(openJob)} again?`;
  if (!window.confirm(asking)) return;
  const job = await call(`/v1/admin/jobs/${encodeURIComponent(openJob)}/${what}`, { method: "POST" });
  status(`Job ${short(job.job_id)}: ${what === "cancel" ? "cancelled" : "retrying failed items"} (${job.status}).`);
  await poller.tick();
}

// Show a job's detail; returns whether it is still running.
async function openDetail(id, announce = true) {
  const job = await call(`/v1/admin/jobs/${encodeURIComponent(id)}`);
  openJob = job.job_id;
  $("job-detail").hidden = false;
  $("job-detail-title").textContent = `Job ${short(job.job_id)}: ${job.status}`;
  const running = RUNNING.has(job.status);
  $("job-cancel").disabled = !running;
  $("job-retry").disabled = running || !(job.counts?.failed > 0);
  const out = clear($("job-detail-body"));
  const meta = h("dl", { class: "meta" });
  const add = (t, v) => meta.append(h("dt", { text: t }), h("dd", { text: v }));
  add("Job id", job.job_id);
  add("Status", job.status);
  add("Progress", progress(job));
  add("Sources", job.sources.join(", "));
  add("Groups", job.groups.length ? job.groups.join(", ") : "public");
  add("Owner", job.owner);
  add("Created", when(job.created_at));
  if (job.finished_at) add("Finished", when(job.finished_at));
  if (job.eta_s !== null && running) add("ETA", `${Math.round(job.eta_s)} s`);
  if (job.error) add("Error", job.error);
  out.append(meta);
  const table = h("table", { class: "list items" },
    h("caption", { text: "Files" }),
    h("thead", {}, h("tr", {}, ...["File", "Status", "Error", "Chunks", "Attempts"]
      .map((t) => h("th", { scope: "col", text: t })))));
  const body = h("tbody");
  for (const item of job.items) {
    body.append(h("tr", { class: `item ${item.status}` },
      h("td", { class: "clip", text: item.source }),
      h("td", { class: "item-status", text: item.status }),
      h("td", { class: "item-error", text: item.reason ?? lowConfidence(item) }),
      h("td", { text: item.chunks }), h("td", { text: item.attempts })));
  }
  table.append(body);
  out.append(h("div", { class: "table-wrap" }, table));
  if (job.dead_letters.length) {
    out.append(h("h3", { text: "Dead letters (gave up)" }), h("ul", {},
      job.dead_letters.map((d) => h("li", { text: `${d.source}: ${d.reason} (${d.attempts} attempts)` }))));
  }
  if (announce) {
    status(`Opened job ${short(job.job_id)} (${job.status}).`);
    if (running) poller.follow();
  }
  return running;
}

// Ingested, but OCR read these pages with little confidence (or not at all): worth a look.
function lowConfidence(item) {
  const pages = item.low_confidence_pages ?? [];
  if (!pages.length) return "";
  return "low-confidence OCR: " + pages.map((p) => p.error
    ? `page ${p.page} (${p.error})` : `page ${p.page} (${Math.round(p.confidence)}%)`).join(", ");
}

// Signing out leaves no job on the page.
export function resetAdmin() {
  hideAdmin();
  openJob = null;
  clear($("jobs-table").tBodies[0]);
  resetSources();
  resetPeople();
  resetHealth();
  resetUploads();
  resetDocuments();
  resetEvaluation();
  clear($("job-detail-body"));
  $("job-detail").hidden = true;
  $("job-form").reset();
}
