// Sign-in, tabs, and wiring of the three pages.

import { call, forgetKey, getKey, setKey } from "./api.js";
import { $, status } from "./dom.js";
import { initChat, loadConversations, resetChat } from "./chat.js";
import { initAudit, resetAudit, showAudit } from "./audit.js";
import { hideAdmin, initAdmin, resetAdmin, showAdmin } from "./admin.js";
import { finishLogin, loginConfig, startLogin } from "./oidc.js";

const TABS = ["chat", "audit", "admin"];
const NEEDS = { audit: "auditor", admin: "admin" };
let current = "chat";
// The pages the signed-in user's roles open (GET /v1/me); the others' tabs are hidden.
let open = ["chat"];

function shown() {
  return TABS.filter((tab) => open.includes(tab));
}

function signedOut(message) {
  forgetKey();
  resetChat();
  resetAudit();
  resetAdmin();
  $("citation-panel").close();
  current = "chat";
  open = ["chat"];
  $("app").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("api-key").value = "";
  $("api-key").focus();
}

async function signIn(key) {
  setKey(key);
  try {
    const [me, models] = await Promise.all([call("/v1/me"), call("/v1/models")]);
    const model = models.data?.[0]?.id;
    open = me.pages;
    for (const tab of TABS) $(`tab-${tab}`).hidden = !open.includes(tab);
    if (!open.includes(current)) current = "chat";
    $("signin").hidden = true;
    $("signin-error").textContent = "";
    $("app").hidden = false;
    $("who").hidden = false;
    const roles = me.roles.length ? ` (${me.roles.join(", ")})` : "";
    $("who-text").textContent = `Signed in as ${me.user_id}${roles}${model ? ` · model ${model}` : ""}`;
    status(`Signed in as ${me.user_id}.`);
    await select(current, false);
  } catch (error) {
    const message = error.status === 401 ? "Sign-in failed: unknown or revoked API key."
      : `Sign-in failed: ${error.message}`;
    signedOut(message);
    status(message);
  }
}

function pageError(error) {
  if (error.status === 401) {
    signedOut("Your key is no longer accepted; sign in again.");
    return;
  }
  const tab = NEEDS[current];
  if (error.status === 403 && tab) {
    const denied = $(`${current}-denied`);
    denied.textContent = `This page needs the ${tab} role (${error.message}).`;
    denied.hidden = false;
    $(`${current}-body`).hidden = true;
    status("");
    return;
  }
  status(`Error: ${error.message}`);
}

async function select(name, focus = true) {
  current = name;
  for (const tab of TABS) {
    const on = tab === name;
    const button = $(`tab-${tab}`);
    button.setAttribute("aria-selected", String(on));
    button.tabIndex = on ? 0 : -1;
    $(`page-${tab}`).hidden = !on;
  }
  if (focus) $(`tab-${name}`).focus();
  if (name !== "admin") hideAdmin();
  try {
    if (name === "chat") await loadConversations();
    else {
      $(`${name}-denied`).hidden = true;
      $(`${name}-body`).hidden = false;
      if (name === "audit") await showAudit();
      else await showAdmin();
    }
  } catch (error) {
    pageError(error);
  }
}

function initTabs() {
  for (const name of TABS) {
    const tab = $(`tab-${name}`);
    tab.addEventListener("click", () => select(name));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) {
        event.preventDefault();
        const tabs = shown();
        const at = tabs.indexOf(name);
        select(tabs[(at + step + tabs.length) % tabs.length]);
      }
    });
  }
}

async function init() {
  initTabs();
  initChat(pageError);
  initAudit(pageError);
  initAdmin(pageError);
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) signIn(key);
  });
  $("sign-out").addEventListener("click", () => {
    signedOut("");
    status("Signed out.");
  });
  const config = await loginConfig();
  if (config) {
    $("oidc-signin").hidden = false;
    $("oidc-button").addEventListener("click", () => {
      startLogin(config).catch((error) => signedOut(`Sign-in failed: ${error.message}`));
    });
  }
  let token = null;
  try {
    token = await finishLogin(config);
  } catch (error) {
    signedOut(`Sign-in failed: ${error.message}`);
    return;
  }
  const key = token || getKey();
  if (key) signIn(key);
  else $("api-key").focus();
}

init();
