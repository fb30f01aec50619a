// portal_test.mjs — the search portal as a person uses it, in headless Chromium (playwright-core),
// against a running medvlpd (test_portal.sh starts it with an API key). Every result the page shows
// is checked against the daemon's own POST /search for the same query: ids in the same order,
// scores equal; thumbnails load; errors show the daemon's message; the page breaks no CSP rule.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.MEDVLP_PORTAL_URL;
const key = process.env.MEDVLP_PORTAL_KEY;
const fixtures = process.env.MEDVLP_FIXTURES;
const screenshot = process.env.MEDVLP_PORTAL_SCREENSHOT;

let checks = 0;
let failures = 0;
function check(what, ok, detail = "") {
  checks++;
  if (!ok) {
    failures++;
    console.error(`FAIL: ${what}${detail ? ": " + detail : ""}`);
  }
}

// ---- the daemon, directly ----

async function api(path, body, contentType = "application/json") {
  const response = await fetch(url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "Content-Type": contentType }) },
    body: contentType === "application/json" && body !== undefined ? JSON.stringify(body) : body,
  });
  return { status: response.status, json: await response.json() };
}

const images = [
  ["models/images/rgb_70x52.png", "Right lower lobe consolidation", "CR"],
  ["models/images/gray_61x80.jpg", "No acute cardiopulmonary abnormality", "CR"],
  ["models/images/lowcontrast_66x50.png", "Small left pleural effusion", "CR"],
  ["models/images/rgba_48x64.png", "Cardiomegaly with pulmonary edema", "CR"],
  ["vision/L_200x150.png", "Hypodense lesion in the right hepatic lobe", "CT"],
  ["vision/P_130x90.png", "Displaced fracture of the distal radius", "DX"],
  ["vision/RGBA_150x220.png", "Ground-glass opacities in both lungs", "CT"],
  ["vision/LA_160x120.png", "Enlarged mediastinal lymph nodes", "CT"],
  ["vision/P4_70x110.png", "Pneumothorax on the right", "CR"],
  ["vision/L2_90x70.png", "Normal brain MRI", "MR"],
];
const captions = [
  "Consolidation in the right lower lobe consistent with pneumonia",
  "Moderate cardiomegaly",
  "Bilateral pleural effusions",
  "No fracture or dislocation",
  "Liver lesion, recommend follow-up MRI",
  "Clear lungs, no pneumothorax",
];

async function populate() {
  const items = images.map(([file, caption, modality]) => ({
    image: readFileSync(`${fixtures}/${file}`).toString("base64"),
    metadata: { caption, modality, file: basename(file) },
  }));
  const added = await api("/index/images", { items });
  check("images added", added.status === 200 && added.json.ids.length === images.length, JSON.stringify(added.json));
  const text = await api("/index/captions", { items: captions.map((text) => ({ text, metadata: { report: "r" } })) });
  check("captions added", text.status === 200 && text.json.ids.length === captions.length, JSON.stringify(text.json));
}

// ---- the page ----

// [{id, score}] of the result list the page shows (data-id/data-score on each item).
async function shownResults(page, list) {
  return page.$$eval(`#${list} > li`, (items) => items.map((li) => ({ id: Number(li.dataset.id), score: Number(li.dataset.score) })));
}

function compareResults(what, shown, expected) {
  check(`${what}: ${expected.length} results shown`, shown.length === expected.length,
        `page ${shown.length}, /search ${expected.length}`);
  check(`${what}: ids in /search order`, JSON.stringify(shown.map((r) => r.id)) === JSON.stringify(expected.map((r) => r.id)),
        `page ${shown.map((r) => r.id)} vs /search ${expected.map((r) => r.id)}`);
  const worst = Math.max(0, ...shown.map((r, i) => Math.abs(r.score - (expected[i] ? expected[i].score : Infinity))));
  check(`${what}: scores equal /search (max diff ${worst})`, worst <= 1e-6);
  for (let i = 1; i < shown.length; i++)
    check(`${what}: sorted by score at ${i}`, shown[i - 1].score >= shown[i].score);
}

async function errorText(page) {
  await page.locator("#error").waitFor({ state: "visible" });
  return page.locator("#error").textContent();
}

async function main() {
  await populate();
  const browser = await chromium.launch({ executablePath: process.env.MEDVLP_CHROMIUM, headless: true,
                                          args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.setDefaultTimeout(30000);
  const problems = [];
  // The 4xx answers this test provokes on purpose are logged by Chromium too; anything else counts.
  page.on("console", (m) => { if (m.type() === "error" && !/responded with a status of 4\d\d/.test(m.text())) problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });

  const loaded = await page.goto(url + "/");
  check("GET / loads", loaded.status() === 200);
  check("title", (await page.title()) === "medvlp search");

  // Without the key: the daemon's 401 is shown, as it said it.
  const query = page.getByLabel("Finding"); // also proves the field has a label
  await query.fill("right lower lobe consolidation");
  await query.press("Enter");
  const unauthorized = await errorText(page);
  check("search without the key shows 401", /401 unauthorized: missing or wrong API key/.test(unauthorized), unauthorized);

  // With the key (typed, Enter submits): the index summary and a text search.
  await page.getByLabel(/API key/).fill(key);
  await page.getByLabel(/API key/).press("Enter");
  await page.locator("#index-summary", { hasText: `${images.length} images and ${captions.length} captions` }).waitFor();
  check("the key is kept for this tab only", (await page.evaluate(() => sessionStorage.getItem("medvlp.apiKey"))) === key);

  const k = 8;
  await page.getByLabel("Results (k)").fill(String(k));
  await query.fill("right lower lobe consolidation");
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.locator("#image-results > li").first().waitFor();
  const expected = await api("/search", { text: "right lower lobe consolidation", k });
  compareResults("text → images", await shownResults(page, "image-results"), expected.json.results);
  // every thumbnail arrives (fetched with the key) and shows the image's caption as its alt text
  await page.waitForFunction((n) => document.querySelectorAll("#image-results img").length === n &&
                                    [...document.querySelectorAll("#image-results img")].every((i) => i.complete && i.naturalWidth > 0), k);
  const alts = await page.$$eval("#image-results img", (imgs) => imgs.map((i) => i.alt));
  check("thumbnails carry the captions", JSON.stringify(alts) === JSON.stringify(expected.json.results.map((r) => r.metadata.caption)),
        JSON.stringify(alts));
  const firstCard = await page.locator("#image-results > li").first().textContent();
  check("a card shows score, id, caption and metadata",
        firstCard.includes(expected.json.results[0].score.toFixed(4)) && firstCard.includes(`id ${expected.json.results[0].id}`) &&
        firstCard.includes(expected.json.results[0].metadata.caption) && firstCard.includes("modality: "), firstCard);
  if (screenshot)
    await page.screenshot({ path: screenshot, fullPage: true });

  // Target toggle: the same text against captions.
  await page.getByLabel("Captions", { exact: true }).check();
  await query.press("Enter");
  await page.locator("#caption-results > li").first().waitFor();
  const captionsExpected = await api("/search", { text: "right lower lobe consolidation", k, target: "captions" });
  compareResults("text → captions", await shownResults(page, "caption-results"), captionsExpected.json.results);
  check("image grid hidden for caption results", await page.locator("#image-results").isHidden());
  await page.getByLabel("Auto (text → images, image → captions)").check();

  // An image from the file picker → nearest captions (the default target for an image).
  const picked = `${fixtures}/vision/P_130x90.png`;
  const pickedExpected = await api(`/search?k=${k}`, readFileSync(picked), "image/png");
  await page.locator("#file-input").setInputFiles(picked);
  await page.locator("#caption-results > li").first().waitFor();
  compareResults("picked image → captions", await shownResults(page, "caption-results"), pickedExpected.json.results);
  check("the picker's button is a button", (await page.getByRole("button", { name: "Choose an image…" }).count()) === 1);

  // An image dropped on the zone (a real drop event with a File in its DataTransfer).
  const dropped = `${fixtures}/models/images/gray_61x80.jpg`;
  const droppedExpected = await api(`/search?k=${k}`, readFileSync(dropped), "image/jpeg");
  const bytes = readFileSync(dropped).toString("base64");
  await page.evaluate(async (b64) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([data], "gray_61x80.jpg", { type: "image/jpeg" }));
    document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, bytes);
  await page.locator("#dropped-name", { hasText: "gray_61x80.jpg" }).waitFor();
  await page.locator("#status", { hasText: "gray_61x80.jpg in" }).waitFor();
  compareResults("dropped image → captions", await shownResults(page, "caption-results"), droppedExpected.json.results);

  // k out of range: the daemon's 422 message, shown as it said it.
  const badK = await api("/search", { text: "effusion", k: 5000 });
  check("the API refuses k = 5000 with 422", badK.status === 422);
  await page.getByLabel("Results (k)").fill("5000");
  await query.fill("effusion");
  await query.press("Enter");
  const kError = await errorText(page);
  check("k = 5000 shows the daemon's message", kError.includes(`422 invalid_request: ${badK.json.error.message}`), kError);
  check("no results left from before the error", (await page.locator("#caption-results > li, #image-results > li").count()) === 0);

  // A GIF: 415 from the daemon, shown.
  await page.getByLabel("Results (k)").fill("5");
  const gif = `${fixtures}/vision/bad_format.gif`;
  const gifExpected = await api("/search?k=5", readFileSync(gif), "image/png");
  await page.locator("#file-input").setInputFiles({ name: "scan.png", mimeType: "image/png", buffer: readFileSync(gif) });
  const gifError = await errorText(page);
  check("a GIF shows the daemon's 415", gifExpected.status === 415 && gifError.includes(gifExpected.json.error.message), gifError);

  // Keyboard: focus reaches the controls in order, and focus is visible.
  await page.goto(url + "/");
  const order = [];
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press("Tab");
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.textContent.trim()));
  }
  check("Tab order: key, use, forget, finding, search, k", JSON.stringify(order) ===
        JSON.stringify(["api-key", "Use key", "forget-key", "query", "search-button", "k"]), JSON.stringify(order));
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check("the focused control has a visible outline", outline !== "none", outline);

  check("no console errors or CSP violations", problems.length === 0, problems.join(" | "));
  await browser.close();
  console.log(`portal chromium: ${checks} checks, ${failures} failed${screenshot ? `; screenshot ${screenshot}` : ""}`);
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error("FAIL:", e);
  process.exit(1);
});
