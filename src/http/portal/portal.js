// portal.js — the search portal's behaviour: text and image queries to POST /search, results as a
// thumbnail grid (images) or a ranked list (captions), the daemon's JSON errors shown as they are.
// Everything the daemon returns is put on the page as text (textContent), never as markup.
"use strict";

const KEY_STORAGE = "medvlp.apiKey";
const $ = (id) => document.getElementById(id);

// ---- talking to the daemon ----

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: "Bearer " + key } : {};
}

// Fetches url; resolves to the parsed JSON, or throws an Error whose message is the daemon's
// {"error": {"status", "code", "message"}} (or what the network said).
async function callJson(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    throw new Error("cannot reach the daemon: " + e.message);
  }
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const error = body && body.error;
    if (error && error.message)
      throw new Error(`${error.status || response.status} ${error.code || ""}: ${error.message}`);
    throw new Error(`${response.status} ${response.statusText}`);
  }
  if (body === null)
    throw new Error("the daemon answered something that is not JSON");
  return body;
}

function options() {
  const target = document.querySelector('input[name="target"]:checked').value;
  return { k: $("k").value.trim(), target };
}

// The k field is sent as typed (a number when it is one) so the daemon judges it.
function kValue(text) {
  return /^-?[0-9]+$/.test(text) ? Number(text) : text;
}

function searchText(query) {
  const { k, target } = options();
  const request = { text: query, k: kValue(k) };
  if (target)
    request.target = target;
  return callJson("/search", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(request),
  });
}

// An image goes as a raw body (its own type) with k and target in the query string.
function searchImage(file) {
  const { k, target } = options();
  const params = new URLSearchParams({ k });
  if (target)
    params.set("target", target);
  return callJson("/search?" + params.toString(), {
    method: "POST",
    headers: { "Content-Type": file.type || "application/octet-stream", ...authHeaders() },
    body: file,
  });
}

// Thumbnails need the API key too, so they are fetched and shown from a blob: URL.
const thumbnailUrls = [];

async function loadThumbnail(id, holder, description) {
  try {
    const response = await fetch(`/index/images/${id}/thumbnail`, { headers: authHeaders() });
    if (!response.ok)
      throw new Error(String(response.status));
    const url = URL.createObjectURL(await response.blob());
    thumbnailUrls.push(url);
    const img = document.createElement("img");
    img.alt = description;
    img.src = url;
    holder.replaceChildren(img);
  } catch (e) {
    holder.textContent = "no thumbnail";
  }
}

// ---- showing results ----

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearResults() {
  $("error").hidden = true;
  $("error").textContent = "";
  for (const url of thumbnailUrls.splice(0))
    URL.revokeObjectURL(url);
  for (const id of ["image-results", "caption-results"]) {
    $(id).replaceChildren();
    $(id).hidden = true;
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className)
    node.className = className;
  if (text !== undefined)
    node.textContent = text;
  return node;
}

// The metadata as "key: value" lines, caption first (it is what a person reads).
function metadataLines(metadata) {
  const lines = [];
  if (typeof metadata.caption === "string")
    lines.push(metadata.caption);
  for (const [key, value] of Object.entries(metadata)) {
    if (key === "caption")
      continue;
    lines.push(`${key}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
  }
  return lines;
}

// One result: an <li> carrying its id and score (data-id, data-score) and its header line.
function resultItem(rank, hit) {
  const item = element("li");
  item.dataset.id = String(hit.id);
  item.dataset.score = String(hit.score);
  const header = element("div");
  header.append(element("span", "rank", `#${rank}`), element("span", "score", hit.score.toFixed(4)), " ",
                element("span", "id", `id ${hit.id}`));
  return { item, header };
}

function showImages(hits) {
  const list = $("image-results");
  hits.forEach((hit, i) => {
    const { item, header } = resultItem(i + 1, hit);
    const lines = metadataLines(hit.metadata || {});
    const holder = element("div", "thumb", "loading…");
    const meta = element("div", "meta");
    meta.append(header);
    for (const line of lines)
      meta.append(element("div", "", line));
    item.append(holder, meta);
    list.append(item);
    loadThumbnail(hit.id, holder, lines[0] || `image ${hit.id}`);
  });
  list.hidden = false;
}

function showCaptions(hits) {
  const list = $("caption-results");
  hits.forEach((hit, i) => {
    const { item, header } = resultItem(i + 1, hit);
    item.append(header);
    for (const line of metadataLines(hit.metadata || {}))
      item.append(element("div", "", line));
    list.append(item);
  });
  list.hidden = false;
}

async function run(what, search) {
  clearResults();
  $("status").textContent = `Searching ${what}…`;
  try {
    const answer = await search();
    const hits = answer.results || [];
    (answer.target === "images" ? showImages : showCaptions)(hits);
    $("status").textContent = `${hits.length} ${answer.target} for ${what} in ${Number(answer.took_ms).toFixed(1)} ms`;
  } catch (e) {
    $("status").textContent = "";
    showError(e.message);
  }
}

// ---- wiring ----

function searchWithFile(file) {
  if (!file)
    return;
  $("dropped-name").textContent = file.name;
  run(`image ${file.name}`, () => searchImage(file));
}

async function describeIndex() {
  try {
    const stats = await callJson("/index", { headers: authHeaders() });
    $("index-summary").textContent =
      `${stats.images.count} images and ${stats.captions.count} captions indexed (dim ${stats.dim})`;
  } catch (e) {
    $("index-summary").textContent = `Index: ${e.message}`;
  }
}

function wire() {
  $("api-key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key)
      sessionStorage.setItem(KEY_STORAGE, key);
    else
      sessionStorage.removeItem(KEY_STORAGE);
    describeIndex();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    describeIndex();
  });

  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("query").value.trim();
    if (!query) {
      clearResults();
      showError("Type a finding to search for.");
      $("query").focus();
      return;
    }
    run(`"${query}"`, () => searchText(query));
  });

  $("pick-file").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => {
    searchWithFile(event.target.files[0]);
    event.target.value = ""; // choosing the same file again searches again
  });
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    searchWithFile(event.dataTransfer.files[0]);
  });

  describeIndex();
}

document.addEventListener("DOMContentLoaded", wire);
