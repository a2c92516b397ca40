// The dashboard's behaviour: plain fetch() calls to the demo's own API, no build step.
"use strict";

// fetch() with cache "no-store" skips the browser's own cache (we want to see the shared
// cache's answer), but would also send "Cache-Control: no-cache", which makes the shared
// cache go to the origin. A request Cache-Control of our own replaces it; a max-age this
// large never rejects a stored response.
const SHARED_CACHE_ONLY = { cache: "no-store", headers: { "Cache-Control": "max-age=86400" } };
const $ = (id) => document.getElementById(id);

// RFC 9211 Cache-Status: "hit", or "fwd=<why it went to the app>". "collapsed" means the
// request waited for another request's fill (e.g. our first fetch, whose entry is written
// just after its body went out) and got that stored response: the app did not run for it.
function outcome(response) {
  const status = response.headers.get("Cache-Status") || "";
  if (/;\s*hit\b/.test(status) || /;\s*collapsed\b/.test(status)) return "HIT";
  if (/fwd=stale/.test(status)) return "STALE";
  if (/fwd=bypass/.test(status)) return "BYPASS";
  return status ? "MISS" : "NONE";
}

function addLine(list, html, className) {
  const item = document.createElement("li");
  item.innerHTML = html;
  if (className) item.className = className;
  list.appendChild(item);
  return item;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

async function timedFetch(url, options) {
  const started = performance.now();
  const response = await fetch(url, options);
  const body = await response.text();
  return { response, body, ms: performance.now() - started };
}

async function fetchProduct() {
  const id = $("product-id").value;
  const { response, body, ms } = await timedFetch(`/products/${id}`, SHARED_CACHE_ONLY);
  const kind = outcome(response);
  const product = response.ok ? JSON.parse(body) : null;
  const age = response.headers.get("Age");
  const collapsed = /collapsed/.test(response.headers.get("Cache-Status") || "");
  addLine(
    $("fetch-log"),
    `GET /products/${id} → ${response.status} <span class="${kind}">${kind}</span>` +
      (collapsed ? " (collapsed)" : "") + " " +
      `${ms.toFixed(1)} ms` + (age !== null ? `, Age ${escapeHtml(age)}` : "") +
      (product ? ` — ${escapeHtml(product.name)}, ${escapeHtml(product.price)}` : ""),
  ).dataset.outcome = kind;
  return response;
}

async function fetchTwice() {
  $("fetch-log").replaceChildren();
  await fetchProduct();
  await fetchProduct();
}

async function stampede() {
  // Twenty concurrent requests for one product: on a cold (or just updated) product one of
  // them runs the ~30 ms query and the others wait for its entry (Cache-Status "collapsed").
  const id = $("product-id").value;
  const responses = await Promise.all(
    Array.from({ length: 20 }, () => fetch(`/products/${id}`, SHARED_CACHE_ONLY)),
  );
  const counts = {};
  for (const response of responses) {
    const status = response.headers.get("Cache-Status") || "";
    const kind = /collapsed/.test(status) ? "COLLAPSED" : outcome(response);
    counts[kind] = (counts[kind] || 0) + 1;
  }
  $("stampede-result").textContent = Object.entries(counts)
    .map(([kind, count]) => `${count} × ${kind}`)
    .join(", ");
  await refreshStats();
}

async function updateProduct() {
  const id = $("product-id").value;
  const current = await fetch(`/products/${id}`, SHARED_CACHE_ONLY);
  const etag = current.headers.get("ETag");
  const price = Number($("new-price").value);
  const response = await fetch(`/products/${id}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json", "If-Match": etag || "" },
    body: JSON.stringify({ price }),
  });
  $("update-result").textContent = response.ok
    ? `PUT with If-Match ${etag} → ${response.status}, new ETag ${response.headers.get("ETag")}. ` +
      "The tag product:" + id + " was invalidated: fetch twice (or stampede) to see it refilled."
    : `PUT → ${response.status}`;
}

let meGeneration = 0;

async function refreshMe() {
  // Only the latest call may paint: an older, slower answer (the one sent when the page
  // loaded, say) must not overwrite what a login just showed.
  meGeneration += 1;
  const generation = meGeneration;
  const response = await fetch("/me", { cache: "no-store" });
  const me = response.status === 401 ? null : await response.json();
  if (generation !== meGeneration) return;
  const cart = $("cart");
  cart.replaceChildren();
  if (me === null) {
    $("me-user").textContent = "nobody";
    addLine(cart, "empty");
    return;
  }
  $("me-user").textContent = me.username;
  const items = Object.entries(me.cart);
  if (!items.length) addLine(cart, "empty");
  for (const [sku, qty] of items) {
    addLine(cart, `${escapeHtml(sku)} × ${escapeHtml(qty)}`).dataset.sku = sku;
  }
}

async function postJson(url, payload) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload || {}),
  });
  $("session-result").textContent = `POST ${url} → ${response.status}`;
  return response;
}

async function login() {
  await postJson("/login", { username: $("username").value });
  await refreshMe();
}

async function addToCart() {
  await postJson("/cart/items", { sku: $("sku").value, qty: Number($("qty").value) });
  await refreshMe();
}

async function logout(url) {
  await postJson(url);
  await refreshMe();
}

async function hammerSearch() {
  const log = $("search-log");
  log.replaceChildren();
  for (let i = 1; i <= 30; i += 1) {
    const { response } = await timedFetch("/api/search?q=a", { cache: "no-store" });
    const limit = response.headers.get("RateLimit") || "";
    if (response.status === 429) {
      addLine(
        log,
        `#${i} → 429, Retry-After ${escapeHtml(response.headers.get("Retry-After"))} s, ` +
          `RateLimit ${escapeHtml(limit)}`,
        "limited",
      );
      break;
    }
    addLine(log, `#${i} → ${response.status}, RateLimit ${escapeHtml(limit)}`);
  }
}

function show(id, value) {
  $(id).textContent = value === null || value === undefined ? "-" : String(value);
}

async function refreshStats() {
  try {
    const stats = await (await fetch("/api/stats", { cache: "no-store" })).json();
    const ratio = stats.cache.hit_ratio;
    show("stat-hit-ratio", ratio === null ? null : `${Math.round(ratio * 100)}%`);
    show("stat-coalesced", stats.cache.coalesced);
    show("stat-limited", stats.rate_limits.limited);
    show("stat-sessions", stats.sessions.active);
    show("stat-breaker", stats.valkey.breaker);
  } catch (error) {
    show("stat-breaker", "unreachable");
  }
}

function on(id, handler) {
  $(id).addEventListener("click", () => {
    handler().catch((error) => { $("session-result").textContent = `error: ${error}`; });
  });
}

on("fetch-twice", fetchTwice);
on("stampede", stampede);
on("update-product", updateProduct);
on("login", login);
on("add-to-cart", addToCart);
on("logout", () => logout("/logout"));
on("logout-everywhere", () => logout("/logout-everywhere"));
on("hammer-search", hammerSearch);
refreshMe();
refreshStats();
setInterval(refreshStats, 2000);
