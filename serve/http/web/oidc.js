// "Sign in with your organisation": the authorization code flow with PKCE (a public client),
// against the identity provider named in /ui/config.json. The token the provider returns is
// the bearer the API verifies (ENCLAVE_SERVE__OIDC__*), kept like an API key.

const PENDING = "enclave.oidcPending";

function base64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(length) {
  const bytes = new Uint8Array(length);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

function redirectUri() {
  return `${location.origin}/ui/`;
}

function isJwt(token) {
  return typeof token === "string" && token.split(".").length === 3;
}

export async function loginConfig() {
  try {
    const response = await fetch("/ui/config.json");
    return response.ok ? (await response.json()).oidc : null;
  } catch {
    return null;
  }
}

export async function startLogin(config) {
  const verifier = random(48);
  const state = random(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const url = new URL(config.authorization_endpoint);
  for (const [name, value] of Object.entries({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scope,
    state,
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
  })) url.searchParams.set(name, value);
  location.assign(url.toString());
}

// On the provider's redirect back: the token; null when this page load is not such a return.
export async function finishLogin(config) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  // The code must not stay in the address bar, the history or a bookmark.
  history.replaceState(null, "", location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (params.has("error")) {
    throw new Error(params.get("error_description") || params.get("error"));
  }
  if (!config || !pending || params.get("state") !== pending.state) {
    throw new Error("the answer from the identity provider does not match a sign-in begun here");
  }
  const response = await fetch(config.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: params.get("code"),
      redirect_uri: redirectUri(),
      client_id: config.client_id,
      code_verifier: pending.verifier,
    }),
  });
  if (!response.ok) throw new Error(`the identity provider refused (HTTP ${response.status})`);
  const body = await response.json();
  // The API verifies a JWT: the access token when the provider issues JWTs, else the ID token.
  const token = isJwt(body.access_token) ? body.access_token : body.id_token;
  if (!isJwt(token)) throw new Error("the identity provider sent no token the API can verify");
  return token;
}
