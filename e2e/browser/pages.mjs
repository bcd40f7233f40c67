// The pages as a person uses them, in headless Chromium against the real web app and
// processors (started by e2e/tests/browser.rs; run alone: DARKROOM_URL=http://… node pages.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { launch, newContext, shot, corpus, imageSize, zipEntries, BASE, releaseStdin, cspViolations } from "./lib.mjs";

const LONG = { timeout: 180_000 };
let browser, alice, page;
const jobs = {}; // filename -> job id

before(async () => {
  browser = await launch();
  alice = await newContext(browser);
  page = await alice.newPage();
});

after(async () => {
  await browser?.close();
  releaseStdin();
});

async function jobIdOf(p, filename) {
  return p.locator(`#jobs .job:has(.name:text-is("${filename}"))`).first().getAttribute("data-id");
}

/// Every visible form control has a name a screen reader can say.
async function unlabelled(p) {
  return p.evaluate(() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((e) => e.type !== "hidden" && e.offsetParent !== null)
    .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !(e.tagName === "BUTTON" && e.textContent.trim()))
    .map((e) => e.outerHTML.slice(0, 120)));
}

test("upload two photos with a preset and one with a custom recipe; all reach done live", LONG, async () => {
  await page.goto("/");
  await shot(page, "01-upload-page-empty");
  await page.evaluate(() => { window.__sameDocument = true; });

  // Two photos, one preset click.
  await page.setInputFiles("#files", [corpus("S01_rocket_640x427.jpg"), corpus("S02_chelsea_451x300.png")]);
  await page.locator('#chosen li[data-name="S01_rocket_640x427.jpg"] img.preview').waitFor();
  assert.equal(await page.locator("#chosen li").count(), 2);
  assert.equal(await page.textContent("#submit"), "Upload and process 2 photos");
  await page.click('label.preset:has(input[value="grayscale"])');
  assert.deepEqual(JSON.parse(await page.inputValue("#recipe")), { preset: "grayscale" });
  await page.click("#submit");
  await page.locator("#chosen li.queued").nth(1).waitFor();
  // Each file had its own progress bar, full once uploaded.
  assert.deepEqual(await page.$$eval("#chosen li progress", (bars) => bars.map((b) => b.value)), [100, 100]);

  // A custom recipe, built with the controls; the JSON shown is what the API gets.
  await page.check('input[name="mode"][value="custom"]');
  await page.fill("#o0-op0-width", "800");
  await page.fill("#o0-op0-height", "800");
  await page.selectOption("#o0-add", "rotate");
  await page.click("#o0-add-button");
  await page.fill("#o0-op1-degrees-n", "90");
  await page.selectOption("#o0-add", "watermark");
  await page.click("#o0-add-button");
  await page.fill("#o0-op2-text", "Darkroom test");
  await page.selectOption("#o0-add", "saturation");
  await page.click("#o0-add-button");
  await page.fill("#o0-op3-factor", "1.5"); // the slider
  await page.selectOption("#o0-format", "png");
  await page.click("#add-output");
  await page.fill("#o1-name", "square");
  await page.selectOption("#o1-op0-fit", "cover");
  await page.selectOption("#o1-op0-gravity", "attention");
  await page.fill("#o1-op0-width", "300");
  await page.fill("#o1-op0-height", "300");
  await page.selectOption("#o1-add", "crop");
  await page.click("#o1-add-button");
  await page.selectOption("#o1-op1-aspect", "1:1");
  await page.selectOption("#o1-add", "sepia");
  await page.click("#o1-add-button");
  await page.fill("#o1-quality-n", "70");
  const recipe = JSON.parse(await page.inputValue("#recipe"));
  assert.deepEqual(recipe, {
    outputs: [
      {
        name: "web",
        ops: [
          { op: "resize", width: 800, height: 800, fit: "inside" },
          { op: "rotate", degrees: 90 },
          { op: "watermark", text: "Darkroom test", gravity: "southeast", opacity: 0.5, color: "#ffffff" },
          { op: "saturation", factor: 1.5 },
        ],
        format: "png",
      },
      {
        name: "square",
        ops: [
          { op: "resize", width: 300, height: 300, fit: "cover", gravity: "attention" },
          { op: "crop", aspect: "1:1" },
          { op: "sepia" },
        ],
        format: "webp",
        quality: 70,
      },
    ],
  });
  assert.deepEqual(await unlabelled(page), [], "every control of the builder has a label");
  await shot(page, "02-recipe-builder");

  await page.setInputFiles("#files", [corpus("M02_wood_2560x1920_exif.jpg")]);
  await page.click("#submit");
  await page.locator('#chosen li.queued[data-name="M02_wood_2560x1920_exif.jpg"]').waitFor();

  // All three reach done in the gallery, live (same document: no reload).
  await page.waitForFunction(() => document.querySelectorAll("#jobs .job[data-state=done]").length === 3, null, { timeout: 150_000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "the page was not reloaded");
  // The upload list follows each job too (it used to stay at "queued — open").
  await page.waitForFunction(() => {
    const states = [...document.querySelectorAll("#chosen li.queued .job-state")].map((s) => s.textContent);
    return states.length === 3 && states.every((s) => s === "done");
  }, null, { timeout: 30_000 });
  await shot(page, "03a-upload-list-done");
  // Cards show the small previews (never an output or the original), loaded and at most 320 px.
  await page.waitForFunction(() => [...document.querySelectorAll("#jobs .job .thumb img")].filter((i) => i.complete && i.naturalWidth > 0).length === 3, null, { timeout: 30_000 });
  const thumbs = await page.$$eval("#jobs .job .thumb img", (imgs) => imgs.map((i) => ({ src: i.getAttribute("src"), w: i.naturalWidth, h: i.naturalHeight })));
  for (const t of thumbs) {
    assert.match(t.src, /^\/api\/jobs\/[0-9a-f-]+\/preview$/, JSON.stringify(thumbs));
    assert.ok(t.w <= 320 && t.h <= 320, JSON.stringify(thumbs));
  }
  // Times in the browser's time zone: the page script rewrote each card's <time>.
  assert.ok(await page.$$eval("#jobs .job time.created", (ts) => ts.length === 3 && ts.every((t) => t.dataset.local === "1" && !t.textContent.includes("UTC"))));
  for (const f of ["S01_rocket_640x427.jpg", "S02_chelsea_451x300.png", "M02_wood_2560x1920_exif.jpg"]) {
    jobs[f] = await jobIdOf(page, f);
    assert.ok(jobs[f], `a card for ${f}`);
  }
  await shot(page, "03-gallery-all-done");
});

test("a text file named .jpg is refused, with the error next to it", LONG, async () => {
  await page.check('input[name="mode"][value="preset"]');
  assert.match((await page.textContent("#limits")).replace(/\s+/g, " "), /up to 2\.9 MB and 10 megapixels/);
  await page.setInputFiles("#files", [
    corpus("S03_camera_512x512_gray.png"), corpus("X02_text_named.jpg"), corpus("X03_empty.jpg"),
    corpus("L02_kleiber_6028x3391.jpg"), corpus("L01_painting-colors_6000x4000.jpg"),
  ]);
  // The page's own checks (the server's limits, rendered into it) refuse these before any upload.
  const clientError = (name) => page.locator(`#chosen li[data-name="${name}"] .file-msg.error`);
  assert.match(await clientError("X03_empty.jpg").textContent(), /empty/i);
  assert.match(await clientError("L02_kleiber_6028x3391.jpg").textContent(), /Too large: 4\.2 MB; the limit is 2\.9 MB/);
  assert.match(await clientError("L01_painting-colors_6000x4000.jpg").textContent(), /Too many pixels: 6000×4000; the limit is 10 megapixels/);
  assert.equal(await page.textContent("#submit"), "Upload and process 2 photos");
  await page.click("#submit");
  const err = page.locator('#chosen li[data-name="X02_text_named.jpg"] .file-msg.error');
  await err.waitFor();
  assert.match(await err.textContent(), /not an image/i);
  assert.equal(await err.getAttribute("role"), "alert");
  await page.locator('#chosen li.queued[data-name="S03_camera_512x512_gray.png"]').waitFor();
  assert.match(await page.textContent("#upload-status"), /1 queued, 1 refused/);
  await shot(page, "04-upload-errors-next-to-files");
  await page.click("#clear-chosen");
  assert.equal(await page.locator("#chosen li").count(), 0);
  await page.waitForFunction(() => document.querySelectorAll("#jobs .job[data-state=done]").length === 4, null, LONG);
});

test("job page: before/after slider, download an output and all as zip", LONG, async () => {
  const id = jobs["M02_wood_2560x1920_exif.jpg"];
  await page.click(`#jobs .job[data-id="${id}"] .name`);
  await page.waitForURL(`**/jobs/${id}`);
  await page.locator("#ba img.after").waitFor();
  // Keyboard on the divider moves it.
  await page.focus("#ba-range");
  for (let i = 0; i < 5; i++) await page.keyboard.press("ArrowLeft");
  assert.equal(await page.$eval("#ba", (e) => e.style.getPropertyValue("--pos")), "45%");
  await page.fill("#ba-range", "30");
  assert.equal(await page.$eval("#ba", (e) => e.style.getPropertyValue("--pos")), "30%");
  await page.selectOption("#compare-output", { index: 1 });
  await page.waitForFunction(() => { const i = document.querySelector("#ba img.after"); return i.src.endsWith("/outputs/square") && i.complete && i.naturalWidth === 300; });
  assert.deepEqual(await unlabelled(page), []);
  await shot(page, "05-job-before-after");

  // One output, through the download link.
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click('a.download[data-name="web"]')]);
  const web = imageSize(readFileSync(await dl.path()));
  assert.deepEqual(web, { format: "png", width: 600, height: 800 }, "800 px box, then turned a quarter");
  assert.match(dl.suggestedFilename(), /^M02_wood_2560x1920_exif-web\.png$/);

  // Everything as one zip.
  const [zdl] = await Promise.all([page.waitForEvent("download"), page.click("#zip")]);
  const entries = zipEntries(readFileSync(await zdl.path()));
  assert.deepEqual(entries.map((e) => e.name).sort(), ["M02_wood_2560x1920_exif-square.webp", "M02_wood_2560x1920_exif-web.png"]);
  for (const e of entries) {
    const size = imageSize(e.data);
    assert.ok(size.width > 0 && size.height > 0, `${e.name} decodes`);
  }
  assert.deepEqual(imageSize(entries.find((e) => e.name.endsWith(".webp")).data), { format: "webp", width: 300, height: 300 });
});

test("another browser cannot see the first one's jobs", LONG, async () => {
  const bob = await newContext(browser);
  const p = await bob.newPage();
  await p.goto("/");
  assert.equal(await p.locator("#jobs .job").count(), 0);
  assert.equal(await p.isVisible("#empty"), true);
  const id = jobs["S01_rocket_640x427.jpg"];
  const r = await p.goto(`/jobs/${id}`);
  assert.equal(r.status(), 404);
  await shot(p, "06-other-browser-job-not-found");
  for (const path of [`/api/jobs/${id}`, `/api/jobs/${id}/original`, `/api/jobs/${id}/outputs.zip`]) {
    const res = await p.request.get(path);
    assert.equal(res.status(), 404, path);
  }
  assert.equal((await p.request.delete(`/api/jobs/${id}`)).status(), 404);
  await bob.close();
});

test("gallery across reloads: filter by state, retry a failed job, delete a job", LONG, async () => {
  await page.goto("/");
  await page.setInputFiles("#files", [corpus("X01_truncated_half.jpg")]);
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector("#jobs .job[data-state=failed]"), null, LONG);
  const failed = page.locator("#jobs .job[data-state=failed]");
  const id = await failed.getAttribute("data-id");
  assert.match(await failed.locator(".error").textContent(), /damaged or incomplete/);

  // Filters: by a click (no reload) and by address (after a reload).
  // (a filter is a link: the server pages through the jobs in that state)
  await page.click('.filters a[data-filter="failed"]');
  await page.waitForURL("**/?state=failed");
  await page.locator(`#jobs .job[data-id="${id}"]`).waitFor();
  assert.equal(await page.locator("#jobs .job:visible").count(), 1);
  assert.equal(await page.getAttribute('.filters a[data-filter="failed"]', "aria-current"), "page");
  await page.reload();
  assert.equal(new URL(page.url()).search, "?state=failed");
  await page.locator(`#jobs .job[data-id="${id}"]`).waitFor();
  assert.equal(await page.locator("#jobs .job:visible").count(), 1);
  await shot(page, "07-gallery-filtered-failed");
  await page.click('.filters a[data-filter="done"]');
  await page.waitForURL("**/?state=done");
  assert.equal(await page.locator("#jobs .job:visible").count(), 4);
  await page.click('.filters a[data-filter=""]');
  await page.waitForURL((u) => u.search === "");
  assert.equal(await page.locator("#jobs .job:visible").count(), 5);

  // Retry: queued again (with a timeline entry), processed again, fails again (same bytes).
  // Record the states the card goes through, as they come over the event stream.
  await page.evaluate((id) => {
    const li = document.querySelector(`#jobs .job[data-id="${id}"]`);
    window.__states = [];
    new MutationObserver(() => window.__states.push(li.dataset.state)).observe(li, { attributeFilter: ["data-state"] });
  }, id);
  await page.click(`#jobs .job[data-id="${id}"] form[data-action=retry] button`);
  await page.waitForFunction((id) => {
    const li = document.querySelector(`#jobs .job[data-id="${id}"]`);
    return window.__states.includes("queued") && li.dataset.state === "failed" && li.querySelector("form[data-action=retry]");
  }, id, LONG);
  const job = await (await page.request.get(`/api/jobs/${id}`)).json();
  const notes = job.timeline.map((t) => t.note || "");
  assert.ok(notes.includes("retried by its owner"), JSON.stringify(job.timeline));
  assert.equal(job.timeline.filter((t) => t.state === "failed").length, 2);

  // Delete: asks once more, then the card and the job's objects are gone.
  const del = page.locator(`#jobs .job[data-id="${id}"] form[data-action=delete] button`);
  await del.click();
  assert.equal(await del.textContent(), "Really delete?");
  await del.click();
  await page.locator(`#jobs .job[data-id="${id}"]`).waitFor({ state: "detached" });
  for (const path of [`/api/jobs/${id}`, `/api/jobs/${id}/original`]) {
    assert.equal((await page.request.get(path)).status(), 404, path);
  }
  await page.reload();
  assert.equal(await page.locator(`#jobs .job[data-id="${id}"]`).count(), 0);
  assert.equal(await page.locator("#jobs .job").count(), 4);
  await shot(page, "08-gallery-after-reload");
});

test("without JavaScript: form post, then a job page that refreshes until done", LONG, async () => {
  const ctx = await newContext(browser, { javaScriptEnabled: false });
  const p = await ctx.newPage();
  await p.goto("/");
  await shot(p, "09-nojs-upload-page");
  await p.setInputFiles("#files", corpus("S01_rocket_640x427.jpg"));
  await p.check('input[name="preset"][value="avatar"]');
  await p.click("#submit");
  await p.waitForURL("**/jobs/*");
  const deadline = Date.now() + 120_000;
  for (;;) {
    await p.waitForLoadState();
    const state = await p.getAttribute(".job-page", "data-state").catch(() => null);
    if (state === "done") break;
    assert.ok(Date.now() < deadline, `job still ${state}`);
    await p.waitForEvent("framenavigated", { timeout: 10_000 }).catch(() => {});
  }
  const src = await p.getAttribute("figure.output img", "src");
  const img = await p.request.get(src);
  assert.deepEqual(imageSize(await img.body()), { format: "jpeg", width: 256, height: 256 });
  await shot(p, "10-nojs-job-done");
  // Delete is a plain form too.
  const id = new URL(p.url()).pathname.split("/").pop();
  await p.click('form[action$="/delete"] button');
  await p.waitForURL("**/?deleted=1");
  assert.equal(await p.locator(`#jobs .job[data-id="${id}"]`).count(), 0);
  assert.match(await p.textContent(".notice"), /Deleted/);
  await ctx.close();
});

test("readable on a phone", LONG, async () => {
  const ctx = await newContext(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  // Same person (cookie) as the main browser, so the gallery has photos.
  await ctx.addCookies(await alice.cookies());
  const p = await ctx.newPage();
  await p.goto("/");
  const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 1, `no sideways scrolling (overflow ${overflow}px)`);
  await shot(p, "11-phone-upload-and-gallery");
  await p.check('input[name="mode"][value="custom"]');
  await p.selectOption("#o0-add", "watermark");
  await p.click("#o0-add-button");
  const overflowCustom = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflowCustom <= 1, `recipe builder: no sideways scrolling (overflow ${overflowCustom}px)`);
  await shot(p, "11b-phone-recipe-builder");
  await p.goto(`/jobs/${jobs["M02_wood_2560x1920_exif.jpg"]}`);
  await p.locator("#ba img.after").waitFor();
  const overflow2 = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  const wide = await p.evaluate(() => [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .map((e) => `${e.tagName}.${e.className}#${e.id}`).slice(0, 8));
  assert.ok(overflow2 <= 1, `job page: no sideways scrolling (overflow ${overflow2}px: ${wide.join(", ")})`);
  await shot(p, "12-phone-job-page");
  await ctx.close();
});

console.log(`    testing ${BASE}`);

test("a logo watermark: the PNG goes up from the recipe builder, the recipe names its key", LONG, async () => {
  await page.goto("/");
  await page.check('input[name="mode"][value="custom"]');
  await page.selectOption("#o0-add", "watermark");
  await page.click("#o0-add-button");
  await page.selectOption("#o0-op1-_kind", "logo");
  await page.setInputFiles("#o0-op1-image", corpus("A01_emerald-logo_1689x1800_rgba.png"));
  await page.locator("#o0-op1-image-key", { hasText: "uploaded: logos/" }).waitFor();
  await page.fill("#o0-op1-scale", "0.25");
  const recipe = JSON.parse(await page.inputValue("#recipe"));
  const mark = recipe.outputs[0].ops[1];
  assert.match(mark.image, /^logos\/[^/]+\/[^/]+\.png$/);
  assert.deepEqual({ ...mark, image: "…" }, { op: "watermark", image: "…", gravity: "southeast", opacity: 0.5, scale: 0.25 });
  await shot(page, "13-logo-watermark-builder");
  await page.setInputFiles("#files", corpus("S01_rocket_640x427.jpg"));
  await page.click("#submit");
  await page.locator('#chosen li.queued[data-name="S01_rocket_640x427.jpg"]').waitFor();
  const href = await page.getAttribute('#chosen li.queued[data-name="S01_rocket_640x427.jpg"] a', "href");
  const id = href.split("/").pop();
  await page.waitForFunction((id) => document.querySelector(`#jobs .job[data-id="${id}"]`)?.dataset.state === "done", id, LONG);
  const out = await page.request.get(`/api/jobs/${id}/outputs/web`);
  assert.deepEqual(imageSize(await out.body()), { format: "jpeg", width: 640, height: 427 });
});

test("keyboard only: switch to a custom recipe, add and reorder edits", LONG, async () => {
  await page.goto("/");
  await page.focus('input[name="mode"][value="preset"]');
  await page.keyboard.press("ArrowRight"); // radio group: the next option
  assert.equal(await page.isChecked('input[name="mode"][value="custom"]'), true);
  assert.equal(await page.isVisible("#custom"), true);
  await page.focus("#o0-add");
  await page.keyboard.press("End"); // the last op in the list (flatten)
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "o0-add-button");
  await page.keyboard.press("Enter");
  let ops = JSON.parse(await page.inputValue("#recipe")).outputs[0].ops.map((o) => o.op);
  assert.deepEqual(ops, ["resize", "flatten"]);
  // Move it up with the keyboard: focus stays on the moved edit's button.
  await page.focus("#o0-op1-up");
  await page.keyboard.press("Enter");
  ops = JSON.parse(await page.inputValue("#recipe")).outputs[0].ops.map((o) => o.op);
  assert.deepEqual(ops, ["flatten", "resize"]);
  assert.equal(await page.evaluate(() => document.activeElement.id), "o0-op0-down", "focus stays on the moved edit");
  await page.keyboard.press("Tab"); // ✕ of the same edit
  await page.keyboard.press("Enter");
  ops = JSON.parse(await page.inputValue("#recipe")).outputs[0].ops.map((o) => o.op);
  assert.deepEqual(ops, ["resize"]);
  // Focus is visible.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none");
  await shot(page, "14-keyboard-focus");
});

test("the pages ran without a Content-Security-Policy violation", () => {
  assert.deepEqual(cspViolations, []);
});
