// MeterLink ops dashboard: polls the JSON API and renders with DOM nodes (textContent only,
// never innerHTML with data).
"use strict";

const POLL_MS = 3000;
const MAX_ROWS = 200;
const state = { accounts: [], terminals: [], latest: [] };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k == null ? "" : String(k)));
  return e;
}

function td(text, cls) { return el("td", cls ? { class: cls } : {}, text); }
function yuan(fen) { const s = (Math.abs(fen) / 100).toFixed(2); return (fen < 0 ? "-" : "") + s; }
function kwh(wh) { return (wh / 1000).toFixed(3); }
function when(ms) {
  if (!ms) return "";
  const d = new Date(ms), p = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

async function get(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "none yet"))]));
}

function renderDistricts(districts, terminals, accounts) {
  const byDistrict = {};
  for (const t of terminals) (byDistrict[t.district] ||= []).push(t);
  document.getElementById("districts").replaceChildren(...districts.map(d => {
    const ts = byDistrict[d.id] || [];
    const ch = ts.reduce((n, t) => n + (t.channels || []).length, 0);
    return el("div", { class: "card", "data-id": d.id }, el("b", {}, `${d.id} ${d.name || ""}`),
      el("span", {}, `${ts.length} terminals · ${ch} meters`));
  }));
}

function renderTerminals(terminals, latest) {
  const last = {};
  for (const r of latest) last[r.terminal] = Math.max(last[r.terminal] || 0, r.ts_ms);
  fill("terminals", terminals.slice(0, MAX_ROWS).map(t => el("tr", { "data-id": t.id },
    td(t.id), td(t.district), td((t.channels || []).length, "num"), td(when(last[t.id])))));
}

function renderReadings(latest) {
  const rows = [...latest].sort((a, b) => b.ts_ms - a.ts_ms).slice(0, MAX_ROWS);
  fill("readings", rows.map(r => el("tr", { "data-meter": r.meter },
    td(r.meter), td(r.terminal), td(r.ch, "num"), td(kwh(r.energy_wh), "num"),
    td(r.kind + (r.estimated ? " (est.)" : "")), td(when(r.ts_ms)))));
  document.getElementById("readings-age").textContent = `${latest.length} meters · updated ${when(Date.now())}`;
}

function renderAlerts(alerts) {
  fill("alerts", alerts.map(a => el("tr", { "data-code": a.code },
    el("td", {}, el("span", { class: "sev " + a.severity }, a.severity)), td(a.code),
    td([a.district, a.terminal, a.meter || a.account].filter(Boolean).join(" / ")),
    td(a.detail, "detail"), td(when(a.raised_ms)))));
}

function renderPDAs(pdas) {
  fill("pdas", pdas.map(p => el("tr", { "data-id": p.id }, td(p.id), td(p.state), td(when(p.created_ms)))));
}

function renderAccounts() {
  const q = document.getElementById("account-filter").value.trim().toLowerCase();
  const rows = state.accounts.filter(a => !q || [a.id, a.owner, a.address].some(s => (s || "").toLowerCase().includes(q)));
  fill("accounts", rows.slice(0, MAX_ROWS).map(a => el("tr", { "data-id": a.id },
    td(a.id), td(a.owner), td(a.payment === "prepaid" ? "预付费 prepaid" : "后付费 postpaid"),
    td(yuan(a.balance_fen), "num" + (a.balance_fen < 0 ? " neg" : "")), td(a.tariff),
    el("td", {}, el("button", { onclick: () => showBill(a.id) }, "Bill")))));
}

async function showBill(id) {
  const box = document.getElementById("bill");
  box.replaceChildren(el("p", { class: "muted" }, "loading bill…"));
  try {
    const b = await get(`/api/v1/accounts/${encodeURIComponent(id)}/bill`);
    const lines = b.lines.map(l => el("tr", {},
      td(`tier ${l.tier}` + (l.period ? ` (${l.period})` : "")), td(l.band), td(kwh(l.wh), "num"), td(l.price, "num"), td(yuan(l.amount_fen), "num")));
    box.replaceChildren(
      el("h3", {}, `${b.account} ${b.owner}`),
      el("div", { class: "muted" }, `${b.tariff_name} · ${b.from.slice(0, 10)} – ${b.to.slice(0, 10)} · ${kwh(b.total_wh)} kWh`,
        b.estimated ? el("span", { class: "tag" }, "暂计 estimated") : ""),
      el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Tier"), el("th", {}, "Band"), el("th", { class: "num" }, "kWh"),
        el("th", { class: "num" }, "元/kWh"), el("th", { class: "num" }, "元"))), el("tbody", {}, ...lines)),
      el("div", { class: "total", id: "bill-total" }, `${b.total} 元`),
      el("div", { class: "muted" }, `balance ${yuan(b.balance_fen)} 元`));
  } catch (e) {
    box.replaceChildren(el("p", { class: "neg" }, String(e.message || e)));
  }
}

async function refresh(full) {
  const status = document.getElementById("status");
  try {
    const jobs = [get("/api/v1/readings/latest?limit=10000"), get("/api/v1/alerts?limit=100"), get("/api/v1/health")];
    if (full) jobs.push(get("/api/v1/districts"), get("/api/v1/terminals"), get("/api/v1/accounts"), get("/api/v1/pdas").catch(() => ({ pdas: [] })));
    const [latest, alerts, health, districts, terminals, accounts, pdas] = await Promise.all(jobs);
    state.latest = latest.readings;
    if (full) {
      state.terminals = terminals.terminals;
      state.accounts = accounts.accounts;
      renderDistricts(districts.districts, state.terminals, state.accounts);
      renderAccounts();
      renderPDAs(pdas.pdas || []);
    }
    renderTerminals(state.terminals, state.latest);
    renderReadings(state.latest);
    renderAlerts(alerts.alerts);
    status.textContent = health.broker_connected ? "broker connected" : "broker not connected";
    status.className = "status " + (health.broker_connected ? "ok" : "bad");
  } catch (e) {
    status.textContent = "API unreachable: " + (e.message || e);
    status.className = "status bad";
  }
}

let ticks = 0;
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("account-filter").addEventListener("input", renderAccounts);
  refresh(true);
  const m = location.hash.match(/^#bill=([\w.-]+)$/);
  if (m) showBill(m[1]);
  setInterval(() => refresh(++ticks % 10 === 0), POLL_MS);
});
