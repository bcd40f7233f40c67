// Darkroom's page script: uploads with progress, live job status over Server-Sent Events.
// The pages work without it (form post + refreshing job page); this makes them live.
"use strict";

const STATES_FINAL = new Set(["done", "failed"]);

function text(el, value) { if (el) el.textContent = value; }

function detailOf(job) {
  let d = job.worker ? `worker ${job.worker}, attempt ${job.attempts}` : "";
  if (job.error) d += (d ? " — " : "") + job.error.message;
  return d;
}

function jobCard(job) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.id = job.id;
  li.dataset.state = job.state;
  const a = document.createElement("a");
  a.className = "thumb"; a.href = `/jobs/${job.id}`;
  const img = document.createElement("img");
  img.alt = `${job.filename}`;
  img.src = `/api/jobs/${job.id}/original`;
  a.appendChild(img);
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = '<a class="name"></a><span class="state"></span><span class="detail"></span>';
  meta.querySelector(".name").href = `/jobs/${job.id}`;
  text(meta.querySelector(".name"), job.filename);
  li.append(a, meta);
  updateCard(li, job);
  return li;
}

function updateCard(li, job) {
  li.dataset.state = job.state;
  const st = li.querySelector(".state");
  st.className = `state state-${job.state}`;
  text(st, job.state);
  text(li.querySelector(".detail"), detailOf(job));
  if (job.state === "done" && job.outputs && job.outputs.length) {
    const img = li.querySelector(".thumb img");
    img.src = job.outputs[0].url;
    img.alt = `${job.filename}, ${job.outputs[0].name}`;
  }
}

function follow(id, onStatus) {
  const es = new EventSource(`/api/jobs/${id}/events`);
  es.addEventListener("status", (ev) => {
    const job = JSON.parse(ev.data);
    onStatus(job);
    if (STATES_FINAL.has(job.state)) es.close();
  });
  return es;
}

function initIndex() {
  const form = document.getElementById("upload");
  const list = document.getElementById("jobs");
  if (!form || !list) return;
  for (const li of list.querySelectorAll(".job")) {
    if (!STATES_FINAL.has(li.dataset.state)) follow(li.dataset.id, (job) => updateCard(li, job));
  }
  const status = document.getElementById("upload-status");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const files = form.querySelector("input[type=file]").files;
    const preset = form.querySelector("input[name=preset]:checked");
    if (!files.length) { text(status, "Choose at least one photo."); return; }
    const data = new FormData();
    data.append("recipe", JSON.stringify({ preset: preset ? preset.value : "thumbnail" }));
    for (const f of files) data.append("file", f, f.name);
    const bar = document.createElement("progress");
    bar.max = 100; bar.value = 0;
    status.replaceChildren(bar);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) {}
      if (xhr.status === 202) {
        document.getElementById("empty").hidden = true;
        for (const job of body.jobs.slice().reverse()) {
          const li = jobCard(job);
          list.prepend(li);
          follow(job.id, (j) => updateCard(li, j));
        }
        const rejected = (body.rejected || []).map((r) => `${r.filename}: ${r.error.message}`);
        text(status, `${body.jobs.length} queued.` + (rejected.length ? " Refused: " + rejected.join(" ") : ""));
        form.reset();
      } else {
        const e = body.error || {};
        text(status, (e.filename ? `${e.filename}: ` : "") + (e.message || `Upload failed (HTTP ${xhr.status}).`));
      }
    };
    xhr.onerror = () => text(status, "The upload did not reach the server. Check your connection and try again.");
    xhr.send(data);
  });
}

function initJobPage() {
  const page = document.querySelector(".job-page");
  if (!page || STATES_FINAL.has(page.dataset.state)) return;
  follow(page.dataset.id, (job) => {
    if (STATES_FINAL.has(job.state)) { window.location.reload(); return; }
    const st = document.getElementById("state");
    st.className = `state state-${job.state}`;
    text(st, job.state);
    text(document.getElementById("detail"), detailOf(job));
  });
}

initIndex();
initJobPage();
