// The console's only script (served from this origin; the CSP allows nothing else).
// Everything from the server goes into the page with textContent, never as HTML.
"use strict";

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function queueRow(c, caseUrl) {
  const tr = el("tr", "t-" + c.time_state);
  tr.dataset.deadline = c.deadline;
  const left = el("td", "left");
  left.appendChild(el("span", "clock", c.time_left));
  tr.appendChild(left);
  const num = el("td");
  const a = el("a", null, c.number);
  a.href = caseUrl.replace("NUMBER", encodeURIComponent(c.number));
  num.appendChild(a);
  tr.appendChild(num);
  const cat = el("td");
  cat.appendChild(el("span", "cat cat-" + c.category, c.category));
  tr.appendChild(cat);
  tr.appendChild(el("td", null, c.urgency));
  tr.appendChild(el("td", null, c.channels.join(", ")));
  tr.appendChild(el("td", null, c.languages.join(", ")));
  tr.appendChild(el("td", null, c.status));
  tr.appendChild(el("td", null, c.assignee || ""));
  const flags = el("td");
  if (c.danger) flags.appendChild(el("span", "flag", "danger"));
  if (c.minor) flags.appendChild(el("span", "flag", "minor"));
  tr.appendChild(flags);
  return tr;
}

function liveQueue() {
  const table = document.getElementById("queue");
  if (!table) return;
  const every = Math.max(2, parseInt(table.dataset.refresh || "15", 10)) * 1000;
  const note = document.getElementById("refreshed");
  async function refresh() {
    try {
      const resp = await fetch(table.dataset.source, {credentials: "same-origin", cache: "no-store"});
      if (resp.status === 401) { window.location.reload(); return; }
      if (!resp.ok) throw new Error(String(resp.status));
      const data = await resp.json();
      const body = document.createElement("tbody");
      for (const c of data.cases) body.appendChild(queueRow(c, table.dataset.caseUrl));
      if (!data.cases.length) {
        const tr = el("tr", "empty");
        const td = el("td", null, "No open cases.");
        td.colSpan = 9;
        tr.appendChild(td);
        body.appendChild(tr);
      }
      table.replaceChild(body, table.tBodies[0]);
      if (note) note.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every " + every / 1000 + " s.";
      table.classList.remove("stale");
    } catch (err) {
      table.classList.add("stale");
      if (note) note.textContent = "Could not refresh (" + err.message + "); retrying.";
    }
  }
  setInterval(refresh, every);
}

function autoReload() {
  const marker = document.getElementById("autorefresh");
  if (!marker) return;
  const every = Math.max(2, parseInt(marker.dataset.refresh || "15", 10)) * 1000;
  setInterval(() => {
    const active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT")) return;
    window.location.reload();
  }, every);
}

function referralSearch() {
  const form = document.getElementById("referral-search");
  const out = document.getElementById("referral-results");
  if (!form || !out) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) {
      if (String(v).trim() !== "") params.append(k, String(v).trim());
    }
    if (!params.has("zip") && !params.has("city")) params.delete("radius");
    out.replaceChildren(el("p", "muted", "Searching…"));
    try {
      const resp = await fetch("/api/referrals?" + params.toString(), {cache: "no-store"});
      const data = await resp.json();
      if (!resp.ok) { out.replaceChildren(el("p", "error", data.error || ("error " + resp.status))); return; }
      const list = el("ol", "referrals");
      for (const m of data.results || []) {
        const r = m.organisation || {};
        r.distance_miles = m.distance_miles;
        const li = el("li");
        li.appendChild(el("strong", null, r.name));
        const bits = [r.city, r.state].filter(Boolean).join(", ");
        if (bits) li.appendChild(el("span", "muted", " · " + bits));
        if (r.distance_miles !== undefined && r.distance_miles !== null) li.appendChild(el("span", "muted", " · " + Math.round(r.distance_miles) + " mi"));
        if (r.phone) li.appendChild(el("div", null, r.phone));
        if (r.services) li.appendChild(el("div", "small", r.services.join(", ")));
        list.appendChild(li);
      }
      out.replaceChildren(list.children.length ? list : el("p", "muted", "No organisation matches; widen the search."));
    } catch (err) {
      out.replaceChildren(el("p", "error", "The referral search failed: " + err.message));
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { liveQueue(); autoReload(); referralSearch(); });
