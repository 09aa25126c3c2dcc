// Admin: the service's health (GET /v1/admin/health): readiness checks, counts, disk used
// and models. Refreshed every few seconds while the Admin page is open.

import { call } from "./api.js";
import { $, clear, h, when } from "./dom.js";
import { Poller, retrying } from "./poll.js";

// Every 10 s: the page's reads count against its key's rate limit like any request.
const EVERY_MS = 10_000;

function size(bytes) {
  if (bytes === null || bytes === undefined) return "n/a";
  for (const [unit, scale] of [["GB", 2 ** 30], ["MB", 2 ** 20], ["KB", 2 ** 10]]) {
    if (bytes >= scale) return `${(bytes / scale).toFixed(1)} ${unit}`;
  }
  return `${bytes} B`;
}

function figure(value) {
  return value === null || value === undefined ? "n/a" : String(value);
}

function pairs(list, rows) {
  clear(list);
  for (const [name, value, bad] of rows) {
    list.append(h("dt", { text: name }), h("dd", { class: bad ? "bad" : "", text: value }));
  }
}

function render(health) {
  $("health-state").textContent = health.ready ? "Ready" : "Not ready";
  $("health-state").className = health.ready ? "state ok" : "state bad";
  pairs($("health-checks"), Object.entries(health.checks).map(([k, v]) => [k, v, v !== "ok"]));
  const c = health.counts;
  pairs($("health-counts"), [
    ["documents", figure(c.documents)],
    ["chunks", `${figure(c.chunks)} (in the store: ${figure(c.stored_chunks)})`,
      c.chunks !== c.stored_chunks],
    ["failed documents", figure(c.failed_documents), c.failed_documents > 0],
    ["failed job items", figure(c.failed_items), c.failed_items > 0],
    ["open job items", figure(c.open_items)],
    ["queue depth", figure(c.queue_depth)],
  ]);
  pairs($("health-disk"), Object.entries(health.disk_bytes).map(([k, v]) => [k, size(v)]));
  pairs($("health-models"), Object.entries(health.models));
  const notes = clear($("health-notes"));
  for (const line of health.disagreements) notes.append(h("li", { text: `Disagreement: ${line}` }));
  for (const [name, why] of Object.entries(health.problems)) notes.append(h("li", { text: `${name}: ${why}` }));
  $("health-checked").textContent = `Checked ${when(health.checked_at)}`;
}

const poller = new Poller(EVERY_MS, async () => {
  render(await call("/v1/admin/health"));
  $("health-error").textContent = "";
  return true;
}, (error, wait) => {
  $("health-error").textContent = `The health check failed: ${retrying(error, wait)}`;
});

// Shows the health now and again every few seconds, until stopHealth().
export function startHealth() {
  return poller.start();
}

export function stopHealth() {
  poller.stop();
}

export function resetHealth() {
  stopHealth();
  for (const id of ["health-checks", "health-counts", "health-disk", "health-models", "health-notes"]) {
    clear($(id));
  }
  $("health-state").textContent = "";
  $("health-checked").textContent = "";
  $("health-error").textContent = "";
}
