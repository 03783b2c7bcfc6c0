// fusionrec web page: plain JS over the service's public API (no framework, no external URL).
// Reads send the read key, writes (events, new items) the write key, in the API's key header.
"use strict";

const $ = (sel) => document.querySelector(sel);
const BASE = new URL(".", location.href);          // the service root (the page is at <root>/ui)
const state = { keyHeader: "X-API-Key", user: null, images: new Map(), recsShown: 0 };
const MODALITY_COLOURS = { text: "#4e79a7", image: "#f28e2b", audio: "#59a14f", attributes: "#b07aa1",
  attribute: "#b07aa1", collaborative: "#9c9c9c" };

// ------------------------------------------------------------------ HTTP
class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, { method = "GET", body = null, write = false } = {}) {
  const headers = { Accept: "application/json" };
  const key = write ? writeKey() : readKey();
  if (key) headers[state.keyHeader] = key;
  if (body !== null) headers["Content-Type"] = "application/json";
  const resp = await fetch(new URL(path, BASE), { method, headers, body: body === null ? null : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

const enc = encodeURIComponent;
const writeKey = () => $("#write-key").value.trim();
// a write key's role covers reads too, so it stands in when no read key is given
const readKey = () => $("#read-key").value.trim() || writeKey();

function showError(err, what) {
  let msg = `${what}: ${err.message}`;
  if (err.body && err.body.fix) msg += ` (${err.body.fix})`;
  if (err.status === 401 || err.status === 403) {
    msg += err.status === 401 ? ". Enter a key under Keys." : ". Use a key with that role under Keys.";
    $("#keys").open = true;
  }
  toast(msg, true);
}

function toast(msg, bad = false) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = bad ? "toast bad" : "toast";
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 9000 : 3500);
}

// ------------------------------------------------------------------ pieces of page
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

// Images come through fetch (not <img src>) so that the read key travels with them.
async function imageUrl(itemId) {
  if (!state.images.has(itemId)) {
    state.images.set(itemId, (async () => {
      const headers = {};
      const key = readKey();
      if (key) headers[state.keyHeader] = key;
      const resp = await fetch(new URL(`ui/api/items/${enc(itemId)}/image`, BASE), { headers });
      if (resp.status !== 200) return null;   // 204: the item has no picture
      return URL.createObjectURL(await resp.blob());
    })().catch(() => null));
  }
  return state.images.get(itemId);
}

function thumb(itemId, title, size = "") {
  const box = el("div", { class: `thumb ${size}`, "data-initials": initials(title || itemId) });
  imageUrl(itemId).then((url) => {
    if (url) box.append(el("img", { src: url, alt: title || itemId, loading: "lazy" }));
    else box.classList.add("none");
  });
  return box;
}

function initials(text) {
  return String(text).split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join("");
}

function itemLink(itemId, title) {
  return el("a", { href: `#/item/${enc(itemId)}`, class: "title", text: title || itemId });
}

function interactButton(itemId) {
  return el("button", {
    type: "button", class: "interact", "data-item": itemId, title: "record this interaction for the user",
    text: `+ ${$("#event-type").value}`, onclick: (ev) => recordInteraction(itemId, ev.currentTarget),
  });
}

function shareBar(contrib) {
  const share = contrib && contrib.share;
  if (!share) return el("p", { class: "muted small", text: "no modality breakdown for this model" });
  const bar = el("div", { class: "shares", role: "img" });
  const legend = el("div", { class: "legend small" });
  const parts = Object.entries(share).sort((a, b) => b[1] - a[1]);
  bar.setAttribute("aria-label", parts.map(([k, v]) => `${k} ${Math.round(v * 100)}%`).join(", "));
  for (const [name, value] of parts) {
    const colour = MODALITY_COLOURS[name] || "#76b7b2";
    const signed = contrib[name];
    const tip = `${name}: ${Math.round(value * 100)}% of the score's parts (${signed >= 0 ? "+" : ""}${Number(signed).toFixed(3)})`;
    bar.append(el("span", { class: `share share-${name}`, style: `width:${(value * 100).toFixed(1)}%;background:${colour}`, title: tip }));
    legend.append(el("span", {}, el("i", { style: `background:${colour}` }), ` ${name} ${Math.round(value * 100)}%`));
  }
  return el("div", { class: "explain" }, bar, legend);
}

function becauseOf(items) {
  if (!items || !items.length) return el("p", { class: "muted small", text: "no past item close to it" });
  const row = el("div", { class: "because small" }, el("span", { class: "muted", text: "because of " }));
  for (const it of items.slice(0, 4)) {
    row.append(el("a", { href: `#/item/${enc(it.item_id)}`, class: "past", title: `similarity ${it.similarity}` },
      thumb(it.item_id, it.title, "tiny"), el("span", { text: it.title || it.item_id })));
  }
  return row;
}

// ------------------------------------------------------------------ user view
async function showUser(userId) {
  state.user = userId;
  $("#user-input").value = userId;
  $("#user-id").textContent = userId;
  $("#recs").replaceChildren();
  $("#recent").replaceChildren();
  state.recsShown = 0;
  await Promise.all([loadRecent(userId), loadRecs(userId)]);
}

async function loadRecent(userId) {
  try {
    const data = await api(`ui/api/users/${enc(userId)}/recent?limit=12`);
    const strip = $("#recent");
    strip.replaceChildren(...data.items.map((it) => el("div", { class: `card small ${it.source}`, "data-item": it.item_id },
      thumb(it.item_id, it.title), itemLink(it.item_id, it.title),
      it.source === "online" ? el("span", { class: "badge", text: "just now" }) : null)));
    if (!data.items.length) strip.append(el("p", { class: "muted", text: "no history" }));
  } catch (err) {
    showError(err, `recent items of ${userId}`);
  }
}

async function loadRecs(userId) {
  let data;
  try {
    data = await api(`recommendations/${enc(userId)}?k=10`);
  } catch (err) {
    showError(err, `recommendations for ${userId}`);
    return;
  }
  $("#user-state").textContent = `${data.user_state || ""} · model v${data.model_version}`;
  const explains = await Promise.all(data.items.map((it) =>
    api(`explain/${enc(userId)}/${enc(it.item_id)}`).catch(() => null)));
  renderRecs(data.items, explains);
}

// Re-render with a FLIP animation: each kept card slides from its old slot to its new one,
// so the effect of an interaction is visible, and moved cards show how far they moved.
function renderRecs(items, explains) {
  const list = $("#recs");
  const before = new Map();
  const oldRank = new Map();
  list.querySelectorAll("li.rec").forEach((li, i) => {
    before.set(li.dataset.item, li.getBoundingClientRect().top);
    oldRank.set(li.dataset.item, i);
  });
  const first = state.recsShown === 0;
  const cards = items.map((it, i) => {
    const ex = explains[i];
    const moved = first ? null : (oldRank.has(it.item_id) ? oldRank.get(it.item_id) - i : "new");
    const delta = moved === null || moved === 0 ? null
      : el("span", { class: `delta ${moved === "new" ? "new" : moved > 0 ? "up" : "down"}`,
        text: moved === "new" ? "new" : moved > 0 ? `▲${moved}` : `▼${-moved}` });
    return el("li", { class: "rec", "data-item": it.item_id },
      el("div", { class: "rank" }, el("b", { text: String(i + 1) }), delta),
      thumb(it.item_id, it.title),
      el("div", { class: "body" },
        el("div", { class: "line" }, itemLink(it.item_id, it.title),
          it.cold ? el("span", { class: "badge", text: "new item" }) : null,
          el("span", { class: "score", title: "model score", text: Number(it.score).toFixed(3) })),
        ex ? shareBar(ex.modality_contributions) : el("p", { class: "muted small", text: "no explanation" }),
        ex ? becauseOf(ex.because_of) : null),
      interactButton(it.item_id));
  });
  list.replaceChildren(...cards);
  state.recsShown += 1;
  list.dataset.refresh = String(state.recsShown);
  list.querySelectorAll("li.rec").forEach((li) => {
    if (!before.has(li.dataset.item)) {
      if (!first) li.classList.add("entered");
      return;
    }
    const dy = before.get(li.dataset.item) - li.getBoundingClientRect().top;
    if (!dy) return;
    li.animate([{ transform: `translateY(${dy}px)` }, { transform: "translateY(0)" }],
      { duration: 700, easing: "cubic-bezier(.2,.7,.2,1)" });
  });
}

async function recordInteraction(itemId, button) {
  if (!state.user) {
    toast("pick a user first", true);
    return;
  }
  const type = $("#event-type").value;
  $("#toast").hidden = true;   // a new attempt: the last message no longer applies
  if (button) button.disabled = true;
  try {
    const eventId = `ui-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
    await api("events", { method: "POST", write: true,
      body: { events: [{ user_id: state.user, item_id: itemId, type, event_id: eventId }] } });
    toast(`${type} on ${itemId} recorded for ${state.user}`);
    if (location.hash.startsWith("#/user/")) {
      await Promise.all([loadRecent(state.user), loadRecs(state.user)]);
    } else {
      location.hash = `#/user/${enc(state.user)}`;
    }
  } catch (err) {
    showError(err, "recording the interaction");
  } finally {
    if (button) button.disabled = false;
  }
}

// ------------------------------------------------------------------ item view
async function showItem(itemId, added) {
  $("#item-id").textContent = itemId;
  $("#item-title").textContent = itemId;
  $("#similar").replaceChildren();
  $("#appears").hidden = true;
  $("#item-added").hidden = !added;
  let prof;
  try {
    prof = await api(`items/${enc(itemId)}`);
  } catch (err) {
    showError(err, `item ${itemId}`);
    return;
  }
  $("#item-title").textContent = prof.title || itemId;
  $("#item-image").replaceWith(Object.assign(thumb(itemId, prof.title, "big"), { id: "item-image" }));
  const badges = [`${prof.popularity} interactions in training`];
  if (prof.cold) badges.push("placed by content");
  const mods = Object.entries(prof.modalities || {}).filter(([, on]) => on).map(([m]) => m);
  if (mods.length) badges.push(`content: ${mods.join(", ")}`);
  $("#item-badges").textContent = "· " + badges.join(" · ");
  $("#item-attrs").replaceChildren(...Object.entries(prof.attributes || {})
    .filter(([k]) => !/(_path|^image|^audio)/.test(k))
    .map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: String(v) }))));
  const btn = $("#item-interact");
  btn.hidden = !state.user;
  if (state.user) btn.textContent = `+ ${$("#event-type").value} as ${state.user}`;
  btn.onclick = () => recordInteraction(itemId, btn);
  await loadSimilar(itemId, added);
}

function gridCard(it, highlight, note = null) {
  return el("li", { class: `card${highlight ? " highlight" : ""}`, "data-item": it.item_id },
    thumb(it.item_id, it.title), itemLink(it.item_id, it.title),
    el("span", { class: "score", title: "cosine similarity", text: Number(it.score).toFixed(3) }),
    it.cold ? el("span", { class: "badge", text: "new item" }) : null,
    note ? el("span", { class: "muted small", text: note }) : null);
}

async function loadSimilar(itemId, added) {
  let sim;
  try {
    sim = await api(`items/${enc(itemId)}/similar?k=12`);
  } catch (err) {
    showError(err, `similar items of ${itemId}`);
    return;
  }
  $("#similar").replaceChildren(...sim.items.map((it) => gridCard(it, it.item_id === state.lastAdded)));
  if (!added) return;
  // the new item is recommendable now: show the neighbours whose own similar items list it
  const neighbours = sim.items.slice(0, 6);
  const lists = await Promise.all(neighbours.map((n) =>
    api(`items/${enc(n.item_id)}/similar?k=12`).catch(() => ({ items: [] }))));
  const ranks = lists.map((l) => l.items.findIndex((x) => x.item_id === itemId));
  const hosts = neighbours.map((n, i) => [n, ranks[i]]).filter(([, r]) => r >= 0);
  $("#appears-list").replaceChildren(...hosts.map(([n, r]) => gridCard(n, false, `lists it #${r + 1}`)));
  $("#appears").hidden = !hosts.length;
}

// ------------------------------------------------------------------ add an item
function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function addItem(ev) {
  ev.preventDefault();
  const itemId = $("#add-id").value.trim();
  const title = $("#add-title").value.trim();
  const text = $("#add-text").value.trim();
  const file = $("#add-image").files[0];
  if (file && file.size > 5 * 1024 * 1024) {
    toast(`the image is ${(file.size / 1048576).toFixed(1)} MB; send one under 5 MB`, true);
    return;
  }
  const item = { item_id: itemId, attributes: {} };
  if (title) item.attributes.title = title;
  if (text) item.text = text;
  if (file) item.image_base64 = await readFile(file);
  $("#toast").hidden = true;
  $("#add-submit").disabled = true;
  try {
    const res = await api("items", { method: "POST", write: true, body: { items: [item] } });
    state.lastAdded = itemId;
    state.images.delete(itemId);
    const r = res.items[0];
    toast(`${itemId} ${r.created ? "added" : "updated"}; ${res.n_items} items served`);
    $("#item-added").textContent = `Added just now and indexed: ${res.n_items} items are served. ` +
      "Its similar items below come from its text and image.";
    location.hash = `#/item/${enc(itemId)}?added=1`;
  } catch (err) {
    showError(err, "adding the item");
  } finally {
    $("#add-submit").disabled = false;
  }
}

function previewImage() {
  const file = $("#add-image").files[0];
  const box = $("#add-preview");
  box.replaceChildren();
  box.hidden = !file;
  if (file) box.append(el("img", { src: URL.createObjectURL(file), alt: "preview" }));
}

// ------------------------------------------------------------------ routing and start
async function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  if (parts[0] === "user" && parts[1]) {
    $("#view-user").hidden = false;
    await showUser(parts[1]);
  } else if (parts[0] === "item" && parts[1]) {
    $("#view-item").hidden = false;
    await showItem(parts[1], new URLSearchParams(query || "").has("added"));
  } else if (parts[0] === "add") {
    $("#view-add").hidden = false;
    if (!$("#add-id").value) $("#add-id").value = `new-${Date.now().toString(36)}`;
  } else {
    $("#view-home").hidden = false;
  }
  document.body.dataset.view = parts[0] || "home";
}

async function suggestUsers(q) {
  try {
    const data = await api(`ui/api/users?limit=20&q=${enc(q)}`);
    $("#user-list").replaceChildren(...data.users.map((u) =>
      el("option", { value: u.user_id, label: `${u.user_id} (${u.n_items} items)` })));
    return data.users;
  } catch (err) {
    if (err.status === 401 || err.status === 403) showError(err, "listing users");
    return [];
  }
}

async function readKeyHeader() {
  // the header name is part of the API's own description (its security scheme)
  try {
    const spec = await api("openapi.json");
    const schemes = Object.values((spec.components || {}).securitySchemes || {});
    const found = schemes.find((s) => s.type === "apiKey" && s.in === "header");
    if (found) state.keyHeader = found.name;
  } catch (_) { /* keep the default header */ }
  $("#key-header").textContent = state.keyHeader;
}

async function start() {
  for (const id of ["read-key", "write-key", "event-type"]) {
    const input = $(`#${id}`);
    const saved = sessionStorage.getItem(`fusionrec-${id}`);
    if (saved) input.value = saved;
    input.addEventListener("change", () => {
      sessionStorage.setItem(`fusionrec-${id}`, input.value);
      if (id !== "event-type" && readKey() !== state.shownWithKey) {
        state.images.clear();   // loaded with the old key (or refused without one)
        refresh();
      }
      if (id === "event-type") document.querySelectorAll("button.interact").forEach((b) => { b.textContent = `+ ${input.value}`; });
    });
  }
  $("#user-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const user = $("#user-input").value.trim();
    if (user) location.hash = `#/user/${enc(user)}`;
  });
  $("#user-input").addEventListener("input", (ev) => suggestUsers(ev.target.value.trim()));
  $("#add-form").addEventListener("submit", addItem);
  $("#add-image").addEventListener("change", previewImage);
  window.addEventListener("hashchange", route);
  await readKeyHeader();
  await refresh();
  document.body.dataset.ready = "1";
}

// (re)load everything that depends on the keys: the model line, the user suggestions, the view
async function refresh() {
  state.shownWithKey = readKey();
  try {
    const h = await api("health");
    $("#model-info").textContent = `${h.model} · ${h.n_users} users · ${h.n_items} items · ${h.index} index · v${h.model_version}`;
  } catch (err) {
    showError(err, "health");
  }
  const users = await suggestUsers("");
  $("#suggested").replaceChildren(...users.slice(0, 12).map((u) =>
    el("li", {}, el("a", { href: `#/user/${enc(u.user_id)}`, text: u.user_id }))));
  await route();
}

start();
