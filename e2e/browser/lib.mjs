// Shared helpers of Darkroom's browser tests: launch Debian's Chromium through playwright-core,
// take screenshots, ask the Rust harness (e2e/tests/browser.rs) to act on processes.
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import readline from "node:readline";

export const BASE = (process.env.DARKROOM_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
export const SHOTS = process.env.DARKROOM_SCREENSHOTS || path.resolve("../../target/browser-screenshots/manual");
export const CORPUS = process.env.DARKROOM_CORPUS || path.resolve("../../../shared/corpus");
export const ADMIN_TOKEN = process.env.DARKROOM_ADMIN_TOKEN || "";
export const CHROMIUM = process.env.DARKROOM_CHROMIUM || "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

export const corpus = (name) => path.join(CORPUS, name);
export const corpusBytes = (name) => readFileSync(corpus(name));

/// Headless Chromium. playwright-core's launch() gives the browser a fresh temporary
/// --user-data-dir (and removes it on close), so no state leaks between runs.
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/// A new context ("another person": own cookies), with console errors echoed.
export async function newContext(browser, options = {}) {
  const ctx = await browser.newContext({ baseURL: BASE, acceptDownloads: true, viewport: { width: 1280, height: 900 }, ...options });
  ctx.on("page", (p) => watchPage(p));
  return ctx;
}

/// What the pages' Content-Security-Policy blocked (Chromium reports it on the console); a
/// suite's last test asserts it stayed empty.
export const cspViolations = [];

export function watchPage(page) {
  page.on("pageerror", (e) => console.log(`    [page error] ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    console.log(`    [console error] ${m.text()}`);
    if (m.text().includes("Content Security Policy")) cspViolations.push(m.text());
  });
}

/// Full-page screenshot under SHOTS; prints the path.
export async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`    screenshot: ${file}`);
  return file;
}

let lines = null;
/// Ask the Rust harness to do something; resolves with its JSON answer.
export async function harness(request) {
  if (!lines) lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  process.stdout.write(`@@harness ${JSON.stringify(request)}\n`);
  const { value, done } = await lines.next();
  if (done) throw new Error("the harness closed stdin (not run from cargo test?)");
  const answer = JSON.parse(value);
  if (answer.error) throw new Error(`harness: ${answer.error}`);
  return answer;
}

/// Let the process end once the tests are over (stdin would keep it alive).
export function releaseStdin() {
  if (lines) { lines.return?.(); lines = null; }
  process.stdin.destroy();
}

/// Width and height of PNG, JPEG or WebP bytes, read from their headers (the format's magic
/// bytes first); throws when the bytes are none of them.
export function imageSize(buf) {
  if (buf.length > 24 && buf.readUInt32BE(0) === 0x89504e47) {
    return { format: "png", width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf.length > 4 && buf[0] === 0xff && buf[1] === 0xd8) {
    let i = 2;
    while (i + 9 < buf.length) {
      if (buf[i] !== 0xff) { i++; continue; }
      const marker = buf[i + 1];
      if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { i += 2; continue; }
      const len = buf.readUInt16BE(i + 2);
      if ((marker >= 0xc0 && marker <= 0xcf) && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return { format: "jpeg", height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) };
      }
      i += 2 + len;
    }
    throw new Error("JPEG without a frame header");
  }
  if (buf.length > 30 && buf.toString("ascii", 0, 4) === "RIFF" && buf.toString("ascii", 8, 12) === "WEBP") {
    const kind = buf.toString("ascii", 12, 16);
    if (kind === "VP8X") return { format: "webp", width: 1 + buf.readUIntLE(24, 3), height: 1 + buf.readUIntLE(27, 3) };
    if (kind === "VP8 ") return { format: "webp", width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
    if (kind === "VP8L") {
      const b = buf.readUInt32LE(21);
      return { format: "webp", width: 1 + (b & 0x3fff), height: 1 + ((b >> 14) & 0x3fff) };
    }
  }
  throw new Error(`not a PNG, JPEG or WebP (starts ${buf.subarray(0, 8).toString("hex")})`);
}

/// Entries of a ZIP file (stored or deflated), from its central directory.
export function zipEntries(buf) {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error("not a zip (no end of central directory)");
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error("bad central directory entry");
    const method = buf.readUInt16LE(p + 10), size = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28), extraLen = buf.readUInt16LE(p + 30), commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString("utf8", p + 46, p + 46 + nameLen);
    const lNameLen = buf.readUInt16LE(local + 26), lExtraLen = buf.readUInt16LE(local + 28);
    const start = local + 30 + lNameLen + lExtraLen;
    out.push({ name, method, data: buf.subarray(start, start + size) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}
