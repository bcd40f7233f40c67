// Darkroom's page script. The pages work without it (a form post, a job page that refreshes,
// forms for delete and retry); this adds: many files with thumbnails, client-side checks and a
// progress bar each; the recipe builder with the JSON it makes; the live gallery (one SSE
// stream for all of this browser's jobs) with filters, delete and retry; the live job page with
// a before/after slider; the ops page refreshing itself.
"use strict";

const FINAL = new Set(["done", "failed", "cancelled"]);
const STATE_LABELS = { queued: "Queued", processing: "Processing", retrying: "Retrying", done: "Done", failed: "Failed", cancelled: "Cancelled" };
const stateLabel = (s) => STATE_LABELS[s] || (s ? s.charAt(0).toUpperCase() + s.slice(1) : "Unknown");

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  const mb = n / 1024 / 1024;
  return Number.isInteger(mb) ? `${mb} MB` : `${mb.toFixed(1)} MB`;
}

function detailOf(job) {
  const w = job.worker;
  switch (job.state) {
    case "queued": return job.attempts ? `waiting for a worker (after attempt ${job.attempts})` : "waiting for a worker";
    case "processing": return w ? `on worker ${w}, attempt ${job.attempts}` : "processing";
    case "retrying": return `attempt ${job.attempts}${w ? ` on ${w}` : ""} ended; the job will be tried again`;
    case "done": return w ? `done by ${w} (attempt ${job.attempts})` : "done";
    case "failed": return w ? `attempt ${job.attempts}, ${w}` : "";
    default: return w ? `worker ${w}, attempt ${job.attempts}` : "";
  }
}

function labelStates(root) {
  for (const s of root.querySelectorAll(".state")) {
    const raw = s.textContent.trim();
    if (raw && raw === raw.toLowerCase()) s.textContent = stateLabel(raw);
  }
}

function setState(el, state) {
  el.className = `state state-${state}`;
  el.textContent = stateLabel(state);
}

// Times in the reader's own time zone: the server writes ISO-8601 in <time datetime> with UTC
// text (what shows without JavaScript); this rewrites the text with Intl.DateTimeFormat.
const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const TIME_ONLY = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const at = new Date(t.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    t.title = at.toISOString();
    t.textContent = (t.closest(".timeline") ? TIME_ONLY : DATE_TIME).format(at);
    t.dataset.local = "1";
  }
}

// ---------------------------------------------------------------- gallery (index page)

const gallery = {
  list: null,
  cards: new Map(),
  filter: "",
  more: null,

  init() {
    this.list = document.getElementById("jobs");
    if (!this.list) return;
    // A preview that cannot be shown (gone, offline): a placeholder instead of a broken image.
    this.list.addEventListener("error", (ev) => {
      const img = ev.target;
      if (img.tagName === "IMG" && !img.dataset.failed) {
        img.dataset.failed = "1";
        img.removeAttribute("src");
        img.classList.add("no-preview-img");
      }
    }, true);
    for (const li of this.list.querySelectorAll(".job")) {
      this.cards.set(li.dataset.id, li);
      li.dataset.updated = Date.parse(li.dataset.updatedAt);
      setState(li.querySelector(".state"), li.dataset.state);
      this.wire(li);
    }
    const params = new URLSearchParams(location.search);
    this.filter = params.get("state") || "";
    // A later page (?cursor=) shows older photos only: new ones arrive on the first page.
    this.paged = params.has("cursor");
    this.more = document.getElementById("more");
    if (this.more) this.more.addEventListener("click", (ev) => { ev.preventDefault(); this.loadMore(); });
    this.follow();
  },

  follow() {
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => this.refresh());
    es.addEventListener("status", (ev) => this.update(JSON.parse(ev.data)));
    es.addEventListener("resync", () => this.refresh());
  },

  query(cursor) {
    const q = new URLSearchParams();
    if (cursor) q.set("cursor", cursor);
    if (this.filter) q.set("state", this.filter);
    const text = q.toString();
    return text ? `/api/jobs?${text}` : "/api/jobs";
  },

  // The first page again (after a reconnect): what changed meanwhile, and what went.
  async refresh() {
    if (this.paged) return;
    try {
      const r = await fetch(this.query(), { headers: { accept: "application/json" } });
      if (!r.ok) return;
      const body = await r.json();
      const seen = new Set();
      for (const job of body.jobs) { seen.add(job.id); this.update(job); }
      // Cards within the first page's range that it no longer lists were deleted.
      const oldest = body.next_cursor && body.jobs.length ? body.jobs[body.jobs.length - 1].id : "";
      for (const [id, li] of this.cards) if (!seen.has(id) && id >= oldest) { li.remove(); this.cards.delete(id); }
      this.setTotal(body.total);
      this.applyFilter();
    } catch (_) { /* offline: the stream reconnects and calls this again */ }
  },

  // "Load more": the next page, below the cards already shown.
  async loadMore() {
    const link = this.more;
    if (!link || link.dataset.busy) return;
    link.dataset.busy = "1";
    try {
      const r = await fetch(this.query(link.dataset.cursor), { headers: { accept: "application/json" } });
      const body = await r.json();
      if (!r.ok) { status((body.error && body.error.message) || `Could not load more photos (HTTP ${r.status}).`); return; }
      for (const job of body.jobs) if (!this.cards.has(job.id)) this.update(job, { append: true });
      if (body.next_cursor) {
        link.dataset.cursor = body.next_cursor;
        link.href = `/?cursor=${encodeURIComponent(body.next_cursor)}${this.filter ? `&state=${this.filter}` : ""}`;
      } else {
        link.parentElement.remove();
        this.more = null;
      }
      status(`${body.jobs.length} more photo${body.jobs.length === 1 ? "" : "s"} shown.`);
    } catch (_) {
      status("Could not load more photos: the server did not answer. Try again.");
    } finally {
      delete link.dataset.busy;
    }
  },

  setTotal(n) {
    const c = document.querySelector('.filters a[data-filter=""] .count');
    if (c && Number.isFinite(n)) c.textContent = n;
  },

  applyFilter() {
    let shown = 0;
    for (const li of this.cards.values()) {
      const show = !this.filter || li.dataset.state === this.filter;
      li.hidden = !show;
      if (show) shown++;
    }
    const empty = document.getElementById("empty");
    if (empty) {
      empty.hidden = shown > 0;
      empty.textContent = this.filter ? `No ${this.filter} photos.` : "No photos yet. Upload some above.";
    }
  },

  // Newest first: a card goes before the first older one. A job older than every card while
  // older pages are not loaded belongs to one of those pages: no card for it here.
  place(li, append) {
    if (append) { this.list.append(li); return true; }
    for (const other of this.list.children) {
      if (other.dataset.id < li.dataset.id) { other.before(li); return true; }
    }
    if (this.more || this.paged) return false;
    this.list.append(li);
    return true;
  },

  update(job, { append = false } = {}) {
    uploader.follow(job);
    if (!this.list) return;
    let li = this.cards.get(job.id);
    if (!li) {
      li = this.card(job);
      if (!this.place(li, append)) return;
      this.cards.set(job.id, li);
      if (!append) {
        const c = document.querySelector('.filters a[data-filter=""] .count');
        if (c) c.textContent = (+c.textContent || 0) + 1;
      }
    }
    this.fill(li, job);
    this.applyFilter();
  },

  card(job) {
    const created = job.created_at || new Date().toISOString();
    const li = h("li", { class: "job", dataset: { id: job.id, state: job.state } },
      h("a", { class: "thumb", href: `/jobs/${job.id}`, tabindex: "-1" },
        h("span", { class: "no-preview-img placeholder", role: "img", "aria-label": `${job.filename}: no preview yet`, text: job.state })),
      h("div", { class: "meta" },
        h("a", { class: "name", href: `/jobs/${job.id}`, text: job.filename }),
        h("time", { class: "created", datetime: created, text: created }),
        h("span", { class: "state" }),
        h("span", { class: "detail" }),
        h("span", { class: "error", hidden: true }),
        h("div", { class: "actions" })));
    localTimes(li);
    return li;
  },

  fill(li, job) {
    // Views of a job can cross (a POST's answer after the stream's newer events): one
    // updated before the card's is older news.
    const updated = job.updated_at ? Date.parse(job.updated_at) : 0;
    if (li.dataset.updated && updated < +li.dataset.updated) return;
    li.dataset.updated = updated;
    const was = li.dataset.state;
    li.dataset.state = job.state;
    setState(li.querySelector(".state"), job.state);
    li.querySelector(".detail").textContent = detailOf(job);
    const err = li.querySelector(".error") || li.querySelector(".meta").appendChild(h("span", { class: "error" }));
    err.hidden = !job.error;
    err.textContent = job.error ? job.error.message : "";
    // The card shows the job's small preview only (never an output or the original).
    const thumb = li.querySelector(".thumb");
    const img = thumb.querySelector("img");
    if (job.preview_url) {
      if (!img || img.getAttribute("src") !== job.preview_url) {
        thumb.replaceChildren(h("img", { src: job.preview_url, alt: `${job.filename}, preview`, loading: "lazy" }));
      }
    } else if (!img) {
      const ph = thumb.querySelector(".placeholder");
      if (ph) ph.textContent = stateLabel(job.state);
    }
    if (was !== job.state || !li.dataset.wired) this.actions(li, job);
  },

  actions(li, job) {
    const box = li.querySelector(".actions");
    box.replaceChildren();
    if (job.outputs && job.outputs.length) {
      box.append(h("a", { class: "button-link", href: `/api/jobs/${job.id}/outputs.zip`, download: true, text: "Download all (zip)" }));
    }
    if (job.state === "queued" || job.state === "retrying") {
      box.append(h("form", { method: "post", action: `/jobs/${job.id}/cancel`, dataset: { action: "cancel" } },
        h("button", { type: "submit", class: "secondary", "aria-label": `Cancel ${job.filename}`, text: "Cancel" })));
    }
    if (job.state === "failed") {
      box.append(h("form", { method: "post", action: `/jobs/${job.id}/retry`, dataset: { action: "retry" } },
        h("button", { type: "submit", class: "secondary", text: "Retry" })));
    }
    if (FINAL.has(job.state)) {
      box.append(h("form", { method: "post", action: `/jobs/${job.id}/delete`, dataset: { action: "delete" } },
        h("button", { type: "submit", class: "danger", "aria-label": `Delete ${job.filename}`, text: "Delete" })));
    }
    this.wire(li);
  },

  wire(li) {
    li.dataset.wired = "1";
    for (const form of li.querySelectorAll("form[data-action]")) {
      form.addEventListener("submit", (ev) => { ev.preventDefault(); this.act(li, form); });
    }
  },

  async act(li, form) {
    const id = li.dataset.id;
    const button = form.querySelector("button");
    const what = form.dataset.action;
    if (what === "delete" && !button.dataset.armed) {
      // Two steps instead of a dialog: the button asks once.
      button.dataset.armed = "1";
      button.textContent = "Really delete?";
      button.focus();
      setTimeout(() => { if (button.isConnected) { delete button.dataset.armed; button.textContent = "Delete"; } }, 6000);
      return;
    }
    button.disabled = true;
    const r = await fetch(what === "delete" ? `/api/jobs/${id}` : `/api/jobs/${id}/${what}`, { method: what === "delete" ? "DELETE" : "POST" });
    if (what === "delete" && r.status === 204) {
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      this.cards.delete(id);
      const count = document.querySelector('.filters a[data-filter=""] .count');
      if (count && +count.textContent > 0) count.textContent = +count.textContent - 1;
      this.applyFilter();
      status(`Deleted ${li.querySelector(".name").textContent}.`);
      if (next) (next.querySelector(".name") || next).focus();
      return;
    }
    let body = {};
    try { body = await r.json(); } catch (_) {}
    if (r.ok && body.id) { this.update(body); return; }
    button.disabled = false;
    const err = li.querySelector(".error");
    err.hidden = false;
    err.textContent = (body.error && body.error.message) || `That did not work (HTTP ${r.status}).`;
  },
};

function status(msg) {
  const s = document.getElementById("upload-status");
  if (s) s.textContent = msg;
}

// ---------------------------------------------------------------- recipe builder

// The edits a recipe may use come from the server (GET /api/ops): the protocol crate's op
// schema, the one definition the server validates with, so no range or default is copied here.
// Each schema field becomes a control description: { k, kind (int, float, number, select,
// check, text, color, logo), min, max (float: the slider's span; hardMax: the exact box's),
// step, int, def, opt (may be empty), skipDef (left out when equal to def), ui (a switch, not
// sent), options/names/help (select), maxlength (text), when(op) (shown only then) }.
let OPS = {};

function opsFromSchema(doc) {
  const table = {};
  for (const op of doc.ops) {
    const defaults = Object.fromEntries(op.fields.map((f) => [f.name, f.default]));
    table[op.op] = { label: op.label, fields: op.fields.map((f) => controlFromSchema(f, defaults)) };
  }
  return table;
}

function controlFromSchema(f, defaults) {
  const c = { k: f.name, kind: f.kind, label: f.label, def: f.default, opt: f.optional, skipDef: f.omit_default, ui: f.ui_only };
  if (f.kind === "float") Object.assign(c, { min: f.min, max: f.slider_max ?? f.max, hardMax: f.max, step: f.step, int: f.integer });
  if (f.kind === "int" || f.kind === "number") Object.assign(c, { min: f.min, max: f.max, step: f.step });
  if (f.kind === "text") c.maxlength = f.max_length;
  if (f.kind === "select") {
    c.options = f.options.map((o) => o.value);
    c.names = Object.fromEntries(f.options.filter((o) => o.label !== o.value).map((o) => [o.value, o.label]));
    c.help = Object.fromEntries(f.options.filter((o) => o.help).map((o) => [o.value, o.help]));
  }
  if (f.when) {
    const { field, one_of: oneOf } = f.when;
    c.when = (o) => oneOf.includes(o[field] ?? defaults[field]);
  }
  return c;
}

// An output's settings; their ranges and defaults come with the op schema (its `output` part).
let OUTPUT_FIELDS = [];
let DEFAULT_QUALITY = {};

function outputFields(n) {
  const num = (k, label, extra) => ({ k, kind: "float", min: n[k].min, max: n[k].max, step: 1, int: true, def: n[k].default, label, ...extra });
  return [
    num("quality", "Quality", { when: (o) => o.format === "jpeg" || (o.format === "webp" && !o.lossless) || o.format === "avif" }),
    num("speed", `Encoder speed (${n.speed.min} smallest – ${n.speed.max} fastest)`, { skipDef: true, when: (o) => o.format === "avif" }),
    { k: "progressive", kind: "check", def: false, skipDef: true, label: "Progressive", when: (o) => o.format === "jpeg" },
    { k: "chroma_subsampling", kind: "select", options: ["4:2:0", "4:2:2", "4:4:4"], def: "4:2:0", skipDef: true, label: "Chroma subsampling", when: (o) => o.format === "jpeg" },
    num("compression_level", `Compression effort (${n.compression_level.min}–${n.compression_level.max})`, { skipDef: true, when: (o) => o.format === "png" }),
    { k: "lossless", kind: "check", def: false, skipDef: true, label: "Lossless", when: (o) => o.format === "webp" },
    { k: "auto_orient", kind: "check", def: true, skipDef: true, label: "Turn upright (EXIF orientation)" },
    { k: "icc", kind: "select", options: ["srgb", "keep"], def: "srgb", skipDef: true, label: "Colour profile", names: { srgb: "convert to sRGB", keep: "keep the original's" } },
  ];
}

function newOp(name) {
  const op = { op: name };
  for (const f of OPS[name].fields) if (f.def !== null && f.def !== undefined) op[f.k] = f.def;
  return op;
}

const builder = {
  outputs: [],
  form: null,
  maxOutputs: 10,
  maxOps: 20,
  formats: ["jpeg", "png", "webp"],

  init(form) {
    this.form = form;
    this.maxOutputs = +form.dataset.maxOutputs || this.maxOutputs;
    this.maxOps = +form.dataset.maxOps || this.maxOps;
    this.formats = (form.dataset.formats || "jpeg,png,webp").split(",");
    this.outputs = [];
    this.root = document.getElementById("outputs");
    this.json = document.getElementById("recipe");
    this.json.readOnly = true;
    document.getElementById("json-box").open = true;
    document.getElementById("add-output").addEventListener("click", () => {
      if (this.outputs.length >= this.maxOutputs) return;
      const n = this.outputs.length + 1;
      this.outputs.push({ name: `output-${n}`, format: "webp", quality: 80, auto_orient: true, ops: [{ op: "resize", width: 400, height: 400, fit: "inside" }] });
      this.render(`o${this.outputs.length - 1}-name`);
    });
    for (const r of document.querySelectorAll('input[name="mode"]')) r.addEventListener("change", () => this.mode());
    for (const r of document.querySelectorAll('input[name="preset"]')) r.addEventListener("change", () => this.show());
    this.mode();
    this.load();
  },

  // The edits' schema, then the first draft: one output with a resize.
  async load() {
    try {
      const r = await fetch("/api/ops");
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const doc = await r.json();
      OPS = opsFromSchema(doc);
      OUTPUT_FIELDS = outputFields(doc.output);
      DEFAULT_QUALITY = doc.output.default_quality;
    } catch (e) {
      this.root.replaceChildren(h("li", { class: "error", role: "alert", text: `The list of edits could not be loaded (${e.message}). Reload the page to try again; the presets work without it.` }));
      document.getElementById("add-output").disabled = true;
      return;
    }
    this.outputs = [{ name: "web", format: "jpeg", quality: OUTPUT_FIELDS[0].def, auto_orient: true, ops: [newOp("resize")] }];
    this.render();
  },

  custom() {
    const r = document.querySelector('input[name="mode"]:checked');
    return r && r.value === "custom";
  },

  mode() {
    const custom = this.custom();
    document.getElementById("custom").hidden = !custom;
    document.getElementById("presets").hidden = custom;
    this.show();
  },

  recipe() {
    if (!this.custom()) {
      const p = document.querySelector('input[name="preset"]:checked');
      return { preset: p ? p.value : "thumbnail" };
    }
    return { outputs: this.outputs.map((o) => this.outputJson(o)) };
  },

  outputJson(o) {
    const out = { name: o.name, ops: o.ops.map((op) => this.opJson(op)), format: o.format };
    for (const f of OUTPUT_FIELDS) {
      if (f.when && !f.when(o)) continue;
      const v = o[f.k];
      if (v === undefined || v === null || v === "") continue;
      if (f.skipDef && v === f.def) continue;
      out[f.k] = v;
    }
    return out;
  },

  opJson(op) {
    const spec = OPS[op.op];
    const out = { op: op.op };
    for (const f of spec.fields) {
      if (f.ui || (f.when && !f.when(op))) continue;
      const v = op[f.k];
      if (v === undefined || v === null || v === "" || (typeof v === "number" && Number.isNaN(v))) continue;
      if (f.skipDef && v === f.def) continue;
      out[f.k] = v;
    }
    return out;
  },

  show() {
    this.json.value = JSON.stringify(this.recipe(), null, 1).replace(/\n\s*/g, " ").replace(/\[ /g, "[").replace(/ \]/g, "]").replace(/\{ /g, "{").replace(/ \}/g, "}");
  },

  // One control for a field: label + input(s). `obj` is the op or output it edits.
  control(obj, f, id, onStructural) {
    const wrap = h("div", { class: `field field-${f.kind}` });
    const label = h("label", { for: id, text: f.label });
    const set = (v, structural) => { obj[f.k] = v; if (structural) onStructural(id); else this.show(); };
    let input;
    switch (f.kind) {
      case "select": {
        input = h("select", { id });
        for (const o of f.options) input.append(h("option", { value: o, text: (f.names && f.names[o]) || (f.help && f.help[o] ? `${o} — ${f.help[o]}` : o), selected: obj[f.k] === o }));
        input.addEventListener("change", () => set(input.value, true));
        wrap.append(label, input);
        break;
      }
      case "check": {
        input = h("input", { id, type: "checkbox", checked: !!obj[f.k] });
        input.addEventListener("change", () => set(input.checked, true));
        wrap.classList.add("check");
        wrap.append(input, label);
        break;
      }
      case "text": {
        input = h("input", { id, type: "text", value: obj[f.k] ?? "", maxlength: f.maxlength, required: true });
        input.addEventListener("input", () => set(input.value, false));
        wrap.append(label, input);
        break;
      }
      case "color": {
        input = h("input", { id, type: "color", value: obj[f.k] || f.def });
        input.addEventListener("input", () => set(input.value, false));
        wrap.append(label, input);
        break;
      }
      case "int": {
        input = h("input", { id, type: "number", inputmode: "numeric", min: f.min, max: f.max, step: 1, value: obj[f.k] ?? "", placeholder: f.opt ? "auto" : "" });
        input.addEventListener("input", () => set(input.value === "" ? null : Math.round(+input.value), false));
        wrap.append(label, input);
        break;
      }
      case "number": {
        input = h("input", { id, type: "number", min: f.min, max: f.max, step: f.step, value: obj[f.k] ?? "", placeholder: "auto" });
        input.addEventListener("input", () => set(input.value === "" ? null : +input.value, false));
        wrap.append(label, input);
        break;
      }
      case "logo": {
        // Upload the PNG now (POST /api/logos); the recipe names the key it gets.
        input = h("input", { id, type: "file", accept: "image/png,.png" });
        const note = h("span", { class: "muted logo-key", id: `${id}-key`, text: obj[f.k] ? `uploaded: ${obj[f.k]}` : "no logo yet" });
        input.setAttribute("aria-describedby", `${id}-key`);
        input.addEventListener("change", async () => {
          const file = input.files[0];
          if (!file) return;
          note.className = "muted logo-key";
          note.textContent = "uploading…";
          const data = new FormData();
          data.append("logo", file, file.name);
          let body = {};
          const r = await fetch("/api/logos", { method: "POST", body: data });
          try { body = await r.json(); } catch (_) {}
          if (r.ok && body.key) {
            note.textContent = `uploaded: ${body.key}`;
            set(body.key, false);
            logos.load();
          } else {
            note.className = "error logo-key";
            note.setAttribute("role", "alert");
            note.textContent = (body.error && body.error.message) || `The logo was refused (HTTP ${r.status}).`;
          }
        });
        wrap.append(label, input, note);
        break;
      }
      case "float": {
        // A slider for the usual range, a number box beside it for exact values (up to the
        // engine's limit).
        const num = h("input", { id: `${id}-n`, type: "number", min: f.min, max: f.hardMax ?? f.max, step: f.step, value: obj[f.k], "aria-label": `${f.label}, exact value` });
        input = h("input", { id, type: "range", min: f.min, max: f.max, step: f.step, value: obj[f.k] });
        const parse = (v) => (f.int ? Math.round(+v) : Math.round(+v * 1000) / 1000);
        input.addEventListener("input", () => { num.value = input.value; set(parse(input.value), false); });
        num.addEventListener("input", () => { if (num.value !== "") { input.value = num.value; set(parse(num.value), false); } });
        wrap.append(label, h("div", { class: "slider" }, input, num));
        break;
      }
    }
    return wrap;
  },

  render(focusId) {
    const active = focusId || (document.activeElement && document.activeElement.id);
    this.root.replaceChildren();
    this.outputs.forEach((o, i) => this.root.append(this.renderOutput(o, i)));
    document.getElementById("add-output").disabled = this.outputs.length >= this.maxOutputs;
    this.show();
    if (active) {
      let e = document.getElementById(active);
      // A move to the first/last place disables that arrow: keep focus on the edit's other one.
      if (e && e.disabled) e = document.getElementById(active.replace(/-(up|down)$/, (_, d) => (d === "up" ? "-down" : "-up")));
      if (e && !e.disabled) e.focus();
    }
  },

  renderOutput(o, i) {
    const p = `o${i}`;
    const again = (id) => this.render(id);
    const li = h("li", { class: "output-box" });
    const fs = h("fieldset", {}, h("legend", { text: `Output ${i + 1}: ${o.name || "(unnamed)"}` }));
    const head = h("div", { class: "row" });
    const name = h("input", { id: `${p}-name`, type: "text", value: o.name, pattern: "[a-z0-9_\\-]{1,40}", maxlength: 40, required: true, "aria-describedby": `${p}-name-help` });
    name.addEventListener("input", () => { o.name = name.value; fs.querySelector("legend").textContent = `Output ${i + 1}: ${o.name || "(unnamed)"}`; this.show(); });
    head.append(h("div", { class: "field" }, h("label", { for: `${p}-name`, text: "Name" }), name,
      h("small", { id: `${p}-name-help`, class: "muted", text: "a-z, 0-9, - and _" })));
    const fmt = h("select", { id: `${p}-format` });
    for (const f of this.formats) fmt.append(h("option", { value: f, text: f.toUpperCase(), selected: o.format === f }));
    fmt.addEventListener("change", () => {
      // The engine's default quality for each format, unless the user chose another.
      const defaults = DEFAULT_QUALITY;
      if (Object.values(defaults).includes(o.quality) && defaults[fmt.value]) o.quality = defaults[fmt.value];
      o.format = fmt.value;
      again(`${p}-format`);
    });
    head.append(h("div", { class: "field" }, h("label", { for: `${p}-format`, text: "Format" }), fmt));
    for (const f of OUTPUT_FIELDS) {
      if (f.when && !f.when(o)) continue;
      if (o[f.k] === undefined) o[f.k] = f.def;
      head.append(this.control(o, f, `${p}-${f.k}`, again));
    }
    if (this.outputs.length > 1) {
      head.append(h("button", { type: "button", class: "danger small", "aria-label": `Remove output ${o.name}`, text: "Remove output",
        onclick: () => { this.outputs.splice(i, 1); this.render(`o0-name`); } }));
    }
    fs.append(head);
    const ops = h("ol", { class: "ops" });
    o.ops.forEach((op, j) => ops.append(this.renderOp(o, op, i, j)));
    fs.append(h("p", { class: "muted ops-title", text: o.ops.length ? "Edits, in order:" : "No edits: the photo as it is, in the chosen format." }), ops);
    const pick = h("select", { id: `${p}-add` });
    for (const [k, spec] of Object.entries(OPS)) pick.append(h("option", { value: k, text: spec.label }));
    const add = h("button", { type: "button", class: "secondary", id: `${p}-add-button`, text: "Add edit", disabled: o.ops.length >= this.maxOps,
      onclick: () => { o.ops.push(newOp(pick.value)); this.render(`${p}-add`); } });
    fs.append(h("div", { class: "row add-op" }, h("label", { for: `${p}-add`, text: "Add an edit" }), pick, add));
    li.append(fs);
    return li;
  },

  renderOp(o, op, i, j) {
    const p = `o${i}-op${j}`;
    const spec = OPS[op.op];
    const again = (id) => this.render(id);
    const li = h("li", { class: "op", dataset: { op: op.op } });
    const title = h("div", { class: "op-head" }, h("strong", { text: spec.label }));
    const tools = h("span", { class: "op-tools" },
      h("button", { type: "button", class: "small secondary", id: `${p}-up`, "aria-label": `Move ${spec.label} up`, text: "↑", disabled: j === 0,
        onclick: () => { [o.ops[j - 1], o.ops[j]] = [o.ops[j], o.ops[j - 1]]; this.render(`o${i}-op${j - 1}-up`); } }),
      h("button", { type: "button", class: "small secondary", id: `${p}-down`, "aria-label": `Move ${spec.label} down`, text: "↓", disabled: j === o.ops.length - 1,
        onclick: () => { [o.ops[j + 1], o.ops[j]] = [o.ops[j], o.ops[j + 1]]; this.render(`o${i}-op${j + 1}-down`); } }),
      h("button", { type: "button", class: "small danger", id: `${p}-remove`, "aria-label": `Remove ${spec.label}`, text: "✕",
        onclick: () => { o.ops.splice(j, 1); this.render(`o${i}-add`); } }));
    title.append(tools);
    li.append(title);
    const fields = h("div", { class: "row" });
    for (const f of spec.fields) {
      if (f.when && !f.when(op)) continue;
      fields.append(this.control(op, f, `${p}-${f.k}`, again));
    }
    if (spec.fields.length) li.append(fields);
    return li;
  },
};

// ---------------------------------------------------------------- upload (index page)

const ACCEPTED_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff", "image/bmp", "image/heic", "image/heif"];
const ACCEPTED_EXT = ["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp", "heic", "heif"];

const uploader = {
  items: [],
  n: 0,

  init(form) {
    this.form = form;
    this.maxBytes = +form.dataset.maxBytes;
    this.maxPixels = +form.dataset.maxPixels;
    this.list = document.getElementById("chosen");
    const input = document.getElementById("files");
    input.required = false;
    input.addEventListener("change", () => { this.add(input.files); input.value = ""; });
    const drop = document.getElementById("drop");
    for (const t of ["dragenter", "dragover"]) drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); });
    for (const t of ["dragleave", "drop"]) drop.addEventListener(t, () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); this.add(e.dataTransfer.files); });
    form.addEventListener("submit", (e) => { e.preventDefault(); this.submit(); });
    this.button = document.getElementById("submit");
    document.getElementById("clear-chosen").addEventListener("click", () => {
      for (const i of this.items) if (i.state === "queued" || i.state === "error") i.li.remove();
      this.items = this.items.filter((i) => i.state !== "queued" && i.state !== "error");
      this.label();
      document.getElementById("files").focus();
    });
    this.label();
  },

  // A job this list uploaded changed (the gallery's event stream for all of this browser's
  // jobs tells it): its entry says the job's state, not the "queued" of its upload.
  follow(job) {
    const item = this.items.find((i) => i.jobId === job.id);
    if (!item || !item.stateText) return;
    const updated = job.updated_at ? Date.parse(job.updated_at) : 0;
    if (item.updated && updated < item.updated) return;
    item.updated = updated;
    item.li.dataset.jobState = job.state;
    item.stateText.className = `job-state state-${job.state}`;
    item.stateText.textContent = job.state;
  },

  // What the client can tell before uploading; the server checks the bytes again.
  check(file) {
    if (file.size === 0) return "This file is empty.";
    if (file.size > this.maxBytes) return `Too large: ${fmtBytes(file.size)}; the limit is ${fmtBytes(this.maxBytes)}.`;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    if (!ACCEPTED_TYPES.includes(file.type) && !ACCEPTED_EXT.includes(ext)) {
      return `Not a supported photo type (${file.type || ext || "unknown"}). Use JPEG, PNG, WebP, HEIC, GIF, TIFF or BMP.`;
    }
    return null;
  },

  add(files) {
    for (const file of files) {
      const id = `file-${++this.n}`;
      const item = { id, file, error: this.check(file), state: "ready" };
      const img = h("img", { alt: "", class: "preview" });
      const noPreview = h("span", { class: "no-preview muted", text: "no preview", hidden: true });
      const bar = h("progress", { max: 100, value: 0, hidden: true, "aria-label": `Upload progress of ${file.name}` });
      const msg = h("span", { class: "file-msg", id: `${id}-msg`, role: "status" });
      const remove = h("button", { type: "button", class: "small secondary", "aria-label": `Remove ${file.name} from the list`, text: "Remove",
        onclick: () => { item.li.remove(); this.items = this.items.filter((x) => x !== item); this.label(); document.getElementById("files").focus(); } });
      item.li = h("li", { class: "file", id, dataset: { name: file.name } },
        h("div", { class: "file-thumb" }, img, noPreview),
        h("div", { class: "file-meta" }, h("span", { class: "file-name", text: file.name }), h("span", { class: "muted", text: fmtBytes(file.size) }), bar, msg),
        remove);
      Object.assign(item, { img, bar, msg, remove });
      if (!item.error) {
        const url = URL.createObjectURL(file);
        img.onload = () => {
          if (img.naturalWidth * img.naturalHeight > this.maxPixels) {
            this.fail(item, `Too many pixels: ${img.naturalWidth}×${img.naturalHeight}; the limit is ${(this.maxPixels / 1e6).toFixed(0)} megapixels.`);
          }
        };
        // HEIC/TIFF or a damaged file: the browser cannot show it; the server decides.
        img.onerror = () => { img.hidden = true; noPreview.hidden = false; };
        img.src = url;
      } else {
        img.hidden = true; noPreview.hidden = false;
        this.fail(item, item.error);
      }
      this.items.push(item);
      this.list.append(item.li);
    }
    this.label();
  },

  fail(item, message) {
    item.state = "error";
    item.error = message;
    item.li.classList.add("has-error");
    item.msg.className = "file-msg error";
    item.msg.setAttribute("role", "alert");
    item.msg.textContent = message;
    this.label();
  },

  label() {
    const clear = document.getElementById("clear-chosen");
    if (clear) clear.hidden = !this.items.some((i) => i.state === "queued" || i.state === "error");
    const n = this.items.filter((i) => i.state === "ready").length;
    this.button.textContent = n > 1 ? `Upload and process ${n} photos` : "Upload and process";
  },

  async submit() {
    const ready = this.items.filter((i) => i.state === "ready");
    if (!ready.length) {
      status(this.items.length ? "Nothing new to upload: add photos, or fix the ones marked in red." : "Choose at least one photo.");
      document.getElementById("files").focus();
      return;
    }
    const recipe = JSON.stringify(builder.recipe());
    status(`Uploading ${ready.length} photo${ready.length > 1 ? "s" : ""}…`);
    this.button.disabled = true;
    let queued = 0, refused = 0, stop = null;
    const queue = ready.slice();
    const worker = async () => {
      while (queue.length && !stop) {
        const item = queue.shift();
        const r = await this.send(item, recipe);
        if (r === "queued") queued++;
        else if (r && r.recipe) { stop = r.recipe; item.state = "ready"; item.bar.hidden = true; item.msg.textContent = ""; }
        else refused++;
      }
    };
    await Promise.all([worker(), worker()]);
    this.button.disabled = false;
    this.label();
    if (stop) {
      status(`The recipe was refused: ${stop}`);
      document.getElementById("json-box").open = true;
    } else {
      status(`${queued} queued${refused ? `, ${refused} refused (see the list)` : ""}.`);
    }
  },

  // Upload one file; resolves "queued", "refused" or {recipe: message}.
  send(item, recipe) {
    return new Promise((resolve) => {
      item.state = "uploading";
      item.remove.disabled = true;
      item.bar.hidden = false;
      item.bar.value = 0;
      item.msg.className = "file-msg";
      item.msg.textContent = "uploading…";
      const data = new FormData();
      data.append("recipe", recipe);
      data.append("file", item.file, item.file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/jobs");
      xhr.responseType = "text";
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) item.bar.value = Math.round((100 * e.loaded) / e.total); };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (_) {}
        item.remove.disabled = false;
        if (xhr.status === 202) {
          const rejected = (body.rejected || []).find((r) => r.filename === item.file.name) || (!body.jobs.length && body.rejected && body.rejected[0]);
          if (rejected) { this.fail(item, rejected.error.message); resolve("refused"); return; }
          item.bar.value = 100;
          item.state = "queued";
          item.li.classList.add("queued");
          const job = body.jobs[0];
          item.jobId = job.id;
          item.link = h("a", { href: job.links.page, text: "open" });
          item.stateText = h("span", { class: "job-state" });
          item.msg.replaceChildren(item.stateText, " — ", item.link);
          this.follow(job);
          gallery.update(job);
          // The stream may have told the gallery about this job before this answer came.
          const card = gallery.cards.get(job.id);
          if (card && card.dataset.state !== job.state) this.follow({ id: job.id, state: card.dataset.state, updated_at: new Date(+card.dataset.updated || 0).toISOString() });
          resolve("queued");
          return;
        }
        const e = body.error || {};
        item.bar.hidden = true;
        const field = e.field || "";
        if (xhr.status === 422 && (field === "recipe" || field === "preset" || field.startsWith("outputs"))) {
          resolve({ recipe: e.message || "invalid recipe" });
          return;
        }
        this.fail(item, e.message || `Upload failed (HTTP ${xhr.status}).`);
        resolve("refused");
      };
      xhr.onerror = () => { item.remove.disabled = false; item.bar.hidden = true; this.fail(item, "The upload did not reach the server. Check your connection and try again."); resolve("refused"); };
      xhr.send(data);
    });
  },
};

// ---------------------------------------------------------------- logos (index page)

// The caller's watermark logos (GET /api/logos), each with a two-step Delete.
const logos = {
  async load() {
    const list = document.getElementById("logo-list");
    if (!list) return;
    let body;
    try {
      const r = await fetch("/api/logos", { headers: { accept: "application/json" } });
      if (!r.ok) return;
      body = await r.json();
    } catch (_) { return; }
    list.replaceChildren(...body.logos.map((l) => this.row(l)));
    localTimes(list);
    document.getElementById("no-logos").hidden = body.logos.length > 0;
  },

  row(logo) {
    const button = h("button", { type: "button", class: "small danger", "aria-label": `Delete logo ${logo.key}`, text: "Delete" });
    const li = h("li", { class: "logo", dataset: { id: logo.id } },
      h("code", { text: logo.key }), " ",
      h("span", { class: "muted", text: fmtBytes(logo.bytes) }), " ",
      logo.created_at ? h("time", { datetime: logo.created_at, text: logo.created_at }) : "", " ",
      button);
    button.addEventListener("click", async () => {
      if (!button.dataset.armed) {
        button.dataset.armed = "1";
        button.textContent = "Really delete?";
        setTimeout(() => { if (button.isConnected) { delete button.dataset.armed; button.textContent = "Delete"; } }, 6000);
        return;
      }
      button.disabled = true;
      const r = await fetch(`/api/logos/${encodeURIComponent(logo.id)}`, { method: "DELETE" });
      if (r.status === 204 || r.status === 404) {
        li.remove();
        status(`Deleted the logo ${logo.key}.`);
        document.getElementById("no-logos").hidden = !!document.querySelector("#logo-list li");
      } else {
        button.disabled = false;
        status(`The logo could not be deleted (HTTP ${r.status}); try again.`);
      }
    });
    return li;
  },
};

// ---------------------------------------------------------------- job page

function initCompare() {
  const ba = document.getElementById("ba");
  if (!ba) return;
  const range = document.getElementById("ba-range");
  range.addEventListener("input", () => ba.style.setProperty("--pos", `${range.value}%`));
  const select = document.getElementById("compare-output");
  const after = document.getElementById("ba-after");
  if (select && after) {
    select.addEventListener("change", () => {
      after.src = select.value;
      after.alt = `After: the ${select.options[select.selectedIndex].text} output`;
    });
  }
}

function initJobPage() {
  const page = document.querySelector(".job-page");
  if (!page) return;
  initCompare();
  page.dataset.updated = Date.parse(page.dataset.updatedAt);
  if (FINAL.has(page.dataset.state)) return;
  const es = new EventSource(`/api/jobs/${page.dataset.id}/events`);
  let busy = false, again = false;
  const reload = async () => {
    // Re-render the live part from the server's own template: no page reload, same markup.
    if (busy) { again = true; return; }
    busy = true;
    try {
      const r = await fetch(location.pathname, { cache: "no-store" });
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      const fresh = doc.querySelector(".job-page");
      if (fresh) {
        const fresher = doc.getElementById("live");
        labelStates(fresher);
        localTimes(fresher);
        document.getElementById("live").replaceWith(fresher);
        page.dataset.state = fresh.dataset.state;
        page.dataset.updated = Date.parse(fresh.dataset.updatedAt);
        initCompare();
      }
    } finally {
      busy = false;
      if (again) { again = false; reload(); }
    }
  };
  es.addEventListener("status", (ev) => {
    const job = JSON.parse(ev.data);
    const st = document.getElementById("state");
    if (st) setState(st, job.state);
    const d = document.getElementById("detail");
    if (d) d.textContent = detailOf(job);
    if (job.state !== page.dataset.state || Date.parse(job.updated_at) > +page.dataset.updated) reload();
    if (FINAL.has(job.state)) es.close();
  });
}

// ---------------------------------------------------------------- ops page

function initOps() {
  const live = document.getElementById("ops-live");
  if (!live) return;
  const tick = async () => {
    if (!document.hidden && !live.contains(document.activeElement)) {
      try {
        const r = await fetch("/ops", { cache: "no-store" });
        if (r.ok) {
          const doc = new DOMParser().parseFromString(await r.text(), "text/html");
          const fresh = doc.getElementById("ops-live");
          const flash = document.getElementById("flash");
          if (fresh) {
            if (flash && !fresh.querySelector("#flash")) fresh.prepend(flash);
            labelStates(fresh);
            live.replaceChildren(...fresh.childNodes);
          }
        } else if (r.status === 403) {
          // The session ended (expired, or signed out elsewhere): show the sign-in form.
          location.reload();
          return;
        }
      } catch (_) { /* try again next tick */ }
    }
    setTimeout(tick, 1500);
  };
  setTimeout(tick, 1500);
}

// ---------------------------------------------------------------- start

(function start() {
  const form = document.getElementById("upload");
  if (form) {
    builder.init(form);
    uploader.init(form);
  }
  gallery.init();
  logos.load();
  labelStates(document);
  localTimes(document);
  initJobPage();
  initOps();
})();
