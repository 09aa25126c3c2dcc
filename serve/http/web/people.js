// Admin: people. Users with their groups, roles and keys; issue a key (shown once, with a
// copy button), revoke one, change groups and roles, revoke a user. Every change asks for
// confirmation first; a refused one shows the server's message and leaves the page as it was.

import { call } from "./api.js";
import { $, clear, h, status, when } from "./dom.js";

const ROLES = ["employee", "auditor", "admin"];

function split(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function path(user) {
  return `/v1/admin/users/${encodeURIComponent(user)}`;
}

// Runs one change; a refusal (403, 409 last admin, 400) is shown, not thrown.
async function change(what, request) {
  $("people-error").textContent = "";
  try {
    const result = await request();
    status(what);
    await refreshPeople();
    return result;
  } catch (error) {
    if (error.status === 401) throw error;  // signed out: the app handles it
    $("people-error").textContent = `${what.replace(/\.$/, "")} failed: ${error.message}`;
    return null;
  }
}

function issued(reply) {
  $("issued-user").textContent = reply.user_id;
  $("issued-value").textContent = reply.key;
  $("issued-copied").textContent = "";
  $("issued-key").hidden = false;
}

async function issue(event) {
  event.preventDefault();
  const user = $("person-id").value.trim();
  const groups = split($("person-groups").value);
  const roles = ROLES.filter((r) => $(`person-role-${r}`).checked);
  if (!user) return;
  const who = `${user} (groups: ${groups.join(", ") || "none"}; roles: ${roles.join(", ") || "employee"})`;
  if (!window.confirm(`Issue a new API key for ${who}? An existing user's groups and roles are set to these.`)) return;
  const reply = await change(`Issued a key for ${user}.`,
    () => call("/v1/admin/users", { method: "POST", body: { user_id: user, groups, roles } }));
  if (reply) {
    issued(reply);
    $("person-form").reset();
  }
}

// Groups or roles, edited as a comma-separated list; empty: public only, or employee.
const FIELDS = {
  groups: { prompt: "Groups", hint: "comma-separated; empty: public documents only", none: "none" },
  roles: { prompt: "Roles", hint: `comma-separated: ${ROLES.join(", ")}`, none: "employee" },
};

async function edit(user, field) {
  const f = FIELDS[field];
  const text = window.prompt(`${f.prompt} of ${user.user_id} (${f.hint})`, user[field].join(", "));
  if (text === null) return;
  const values = split(text);
  if (!window.confirm(`Set the ${field} of ${user.user_id} to: ${values.join(", ") || f.none}?`)) return;
  await change(`${f.prompt} of ${user.user_id} changed.`,
    () => call(path(user.user_id), { method: "PATCH", body: { [field]: values } }));
}

async function revokeKey(user, key) {
  if (!window.confirm(`Revoke the key ${key.shown}… of ${user.user_id}? It stops working at once.`)) return;
  await change(`Key ${key.shown}… of ${user.user_id} revoked.`,
    () => call(`${path(user.user_id)}/keys/${key.key_id}`, { method: "DELETE" }));
}

async function revokeUser(user) {
  if (!window.confirm(`Revoke ${user.user_id} and every key of theirs?`)) return;
  await change(`${user.user_id} revoked.`,
    () => call(`${path(user.user_id)}/revoke`, { method: "POST" }));
}

function row(user) {
  const keys = user.keys.map((key) => h("li", {},
    h("code", { text: `${key.shown}…` }), ` ${when(key.created_at)} `,
    h("button", { type: "button", "aria-label": `Revoke key ${key.shown} of ${user.user_id}`,
      onclick: () => revokeKey(user, key) }, "Revoke")));
  const actions = user.revoked ? [] : [
    h("button", { type: "button", "aria-label": `Change groups of ${user.user_id}`,
      onclick: () => edit(user, "groups") }, "Groups…"),
    h("button", { type: "button", "aria-label": `Change roles of ${user.user_id}`,
      onclick: () => edit(user, "roles") }, "Roles…"),
    h("button", { type: "button", "aria-label": `Revoke ${user.user_id}`,
      onclick: () => revokeUser(user) }, "Revoke user"),
  ];
  return h("tr", { class: user.revoked ? "person revoked" : "person", "data-user": user.user_id },
    h("td", { text: user.user_id + (user.revoked ? " (revoked)" : "") }),
    h("td", { text: user.groups.join(", ") || "none" }),
    h("td", { text: user.roles.join(", ") }),
    h("td", {}, keys.length ? h("ul", { class: "keys" }, keys) : "none"),
    h("td", { class: "actions" }, actions));
}

export async function refreshPeople() {
  const found = await call("/v1/admin/users");
  const body = clear($("people-table").tBodies[0]);
  for (const user of found.users) body.append(row(user));
}

async function copy() {
  try {
    await navigator.clipboard.writeText($("issued-value").textContent);
    $("issued-copied").textContent = "Copied.";
  } catch {
    $("issued-copied").textContent = "The browser refused to copy: select the key and copy it.";
  }
}

export function initPeople(onError) {
  $("person-form").addEventListener("submit", (event) => issue(event).catch(onError));
  $("issued-copy").addEventListener("click", () => copy());
  $("issued-done").addEventListener("click", () => {
    $("issued-value").textContent = "";
    $("issued-key").hidden = true;
  });
}

// Signing out leaves no key and no list on the page.
export function resetPeople() {
  clear($("people-table").tBodies[0]);
  $("issued-value").textContent = "";
  $("issued-key").hidden = true;
  $("people-error").textContent = "";
  $("person-form").reset();
}
