// Admin: the sources synced from shares, mailboxes and sites; their last sync; sync now.

import { call } from "./api.js";
import { $, clear, h, status, when } from "./dom.js";

function every(seconds) {
  if (!seconds) return "by hand";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (seconds % size === 0) return `every ${seconds / size}${unit}`;
  }
  return `every ${seconds}s`;
}

function lastSync(source) {
  const job = source.last_job;
  if (!job) return "never";
  const counts = Object.entries(job.counts || {}).filter(([, v]) => v)
    .map(([k, v]) => `${k} ${v}`).join(" · ");
  return `${job.status}${counts ? ` (${counts})` : ""}, ${when(job.created_at)}`
    + (job.error ? ` — ${job.error}` : "");
}

// Lists the sources; `onSynced(jobId)` opens the job a "Sync now" started.
export async function refreshSources(onSynced) {
  const found = await call("/v1/admin/sources");
  const body = clear($("sources-table").tBodies[0]);
  for (const source of found.sources) {
    body.append(h("tr", { class: "source" },
      h("td", { text: source.name }),
      h("td", { text: source.kind }),
      h("td", { class: "clip", text: source.location }),
      h("td", { text: every(source.every_s) }),
      h("td", { class: "source-last", text: lastSync(source) }),
      h("td", {}, h("button", { type: "button", "aria-label": `Sync ${source.name} now`,
        onclick: () => syncNow(source.name, onSynced).catch((e) => status(e.message)) },
        "Sync now"))));
  }
  if (!found.sources.length) {
    body.append(h("tr", {}, h("td", { colspan: 6, text: "No sources yet." })));
  }
  return found.sources.some((s) => s.last_job && ["planning", "running"].includes(s.last_job.status));
}

async function syncNow(name, onSynced) {
  if (!window.confirm(`Sync ${name} now?`)) return;
  const job = await call(`/v1/admin/sources/${encodeURIComponent(name)}/sync`, { method: "POST" });
  status(`Sync of ${name} started: job ${job.job_id.slice(0, 8)} (${job.status}).`);
  await onSynced(job.job_id);
}

export function resetSources() {
  clear($("sources-table").tBodies[0]);
}
