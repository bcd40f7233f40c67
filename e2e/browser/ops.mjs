// The ops page in headless Chromium: the admin token, then a worker killed in the middle of a
// job and the job retried by another worker, then a job the queue gave up on, sent back from
// the dead-letter queue with the page's button. The Rust side (e2e/tests/browser.rs) starts
// with no processor and starts/waits for them when asked (`harness`), so each step waits on
// an event, never on a fixed delay.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, newContext, shot, corpus, harness, ADMIN_TOKEN, releaseStdin, cspViolations } from "./lib.mjs";

const LONG = { timeout: 180_000 };
let browser, ops, user, retried;

before(async () => {
  browser = await launch();
  ops = await (await newContext(browser)).newPage();
  user = await (await newContext(browser)).newPage();
});

after(async () => {
  await browser?.close();
  releaseStdin();
});

/// Upload one photo through the page with a custom recipe whose one output is `name`.
async function upload(file, name) {
  await user.goto("/");
  await user.check('input[name="mode"][value="custom"]');
  await user.fill("#o0-name", name);
  await user.setInputFiles("#files", corpus(file));
  await user.click("#submit");
  await user.locator("#chosen li.queued").waitFor();
  const href = await user.getAttribute("#chosen li.queued a", "href");
  return href.split("/").pop();
}

test("the ops page asks for the admin token", LONG, async () => {
  assert.ok(ADMIN_TOKEN, "DARKROOM_ADMIN_TOKEN is set for the test");
  const r = await ops.goto("/ops");
  assert.equal(r.status(), 403);
  await ops.fill("#token", "not-the-token");
  await ops.click("form.login button");
  assert.match(await ops.textContent(".error"), /not the admin token/);
  await shot(ops, "01-ops-sign-in");
  // A token in the address does not sign in (it would stay in history and logs): the form again.
  const link = await ops.goto(`/ops?token=${encodeURIComponent(ADMIN_TOKEN)}`);
  assert.equal(link.status(), 403);
  assert.match(await ops.textContent("#notice"), /not accepted/);
  // The form posts the token (with the browser's Origin and Sec-Fetch-Site, which the web app
  // checks) and the session cookie opens the page.
  await ops.fill("#token", ADMIN_TOKEN);
  await ops.click("form.login button");
  await ops.locator('#queues tr[data-queue="Jobs"]').waitFor();
  assert.equal(new URL(ops.url()).pathname, "/ops");
  assert.equal(new URL(ops.url()).search, "", "the token is never in the address");
  // Another browser without the cookie is still asked for the token.
  const other = await (await newContext(browser)).newPage();
  assert.equal((await other.goto("/ops")).status(), 403);
  await other.context().close();
});

test("a killed worker's job is retried by another worker, live on the ops page", LONG, async () => {
  // A worker that dies (abort, like kill -9) as soon as it starts a job with an output named "crashme".
  const doomed = await harness({ cmd: "start-processor", env: { DARKROOM_TEST_ABORT_ON_OUTPUT: "crashme", DARKROOM_CONCURRENCY: "1" } });
  const id = await upload("S01_rocket_640x427.jpg", "crashme");
  retried = id;

  // The ops page (refreshing itself) shows worker-0 on the job...
  await ops.locator(`#workers tr[data-worker="${doomed.worker}"] code[data-job="${id}"]`).waitFor(LONG);
  await shot(ops, "02-ops-worker-on-the-job");
  // ...which kills it.
  assert.deepEqual(await harness({ cmd: "wait-processor-exit", index: doomed.index, seconds: 60 }), { exited: true });

  // A sound worker; the queue delivers the job again once its visibility timeout is up.
  const sound = await harness({ cmd: "start-processor" });
  const row = ops.locator(`#retries tr[data-job="${id}"][data-state="processing"]`);
  await row.waitFor(LONG);
  const text = await row.textContent();
  assert.match(text, new RegExp(`attempt 2 on ${sound.worker}`));
  assert.match(text, new RegExp(`was on ${doomed.worker}`));

  // The user's gallery got there live; the job page tells the story.
  await user.waitForFunction((id) => document.querySelector(`#jobs .job[data-id="${id}"]`)?.dataset.state === "done", id, LONG);
  await ops.locator(`#workers tr[data-worker="${sound.worker}"]`).waitFor();
  await ops.waitForFunction((w) => document.querySelector(`#workers tr[data-worker="${w}"] td:nth-of-type(4)`)?.textContent.trim() === "1", sound.worker, LONG);
  const doomedRow = await ops.locator(`#workers tr[data-worker="${doomed.worker}"]`).textContent();
  assert.match(doomedRow, /idle/, "the dead worker no longer holds the job");
  await shot(ops, "03-ops-job-retried-by-another-worker");

  await user.goto(`/jobs/${id}`);
  const steps = await user.$$eval("#timeline li", (lis) => lis.map((l) => l.textContent.replace(/\s+/g, " ").trim()));
  assert.ok(steps.some((s) => /Processing worker worker-0, attempt 1/.test(s)), steps.join("\n"));
  assert.ok(steps.some((s) => /Processing worker worker-1, attempt 2/.test(s)), steps.join("\n"));
  assert.ok(/Done worker worker-1, attempt 2/.test(steps.at(-1)), steps.join("\n"));
  await shot(user, "04-job-timeline-after-a-lost-worker");
});

test("a job the queue gave up on goes back to the job queue with the ops page's button", LONG, async () => {
  // Only crashing workers from here: stop the sound one.
  await harness({ cmd: "kill-processor", index: 1 });
  const id = await upload("S02_chelsea_451x300.png", "poison");
  for (let attempt = 1; attempt <= 3; attempt++) {
    const w = await harness({ cmd: "start-processor", env: { DARKROOM_TEST_ABORT_ON_OUTPUT: "poison", DARKROOM_CONCURRENCY: "1" } });
    assert.deepEqual(await harness({ cmd: "wait-processor-exit", index: w.index, seconds: 60 }), { exited: true }, `attempt ${attempt} kills its worker`);
  }
  // A sound worker's next receive lets the queue move the job to the dead-letter queue; the
  // web app marks it failed (gave_up).
  await harness({ cmd: "start-processor" });
  await ops.locator(`#failures tr[data-job="${id}"]:has-text("gave_up")`).waitFor(LONG);
  await user.goto(`/jobs/${id}`);
  assert.equal(await user.getAttribute(".job-page", "data-state"), "failed");
  await shot(ops, "05-ops-dead-lettered-job");

  await ops.click("#redrive");
  assert.match(await ops.textContent("#flash"), /1 job queued again/);
  await user.goto(`/jobs/${id}`);
  await user.locator('.job-page[data-state="done"]').waitFor(LONG);
  const notes = await user.textContent("#timeline");
  assert.match(notes, /sent back to the job queue from the dead-letter queue by an operator/);
  await shot(ops, "06-ops-after-redrive");
  await shot(user, "07-job-done-after-redrive");
  assert.ok(retried);
});

test("the pages ran without a Content-Security-Policy violation", () => {
  assert.deepEqual(cspViolations, []);
});
