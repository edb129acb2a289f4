// switchyard dashboard: reads /api/v1/* and draws. No libraries, no network beyond this origin.
// Every figure shown comes from the JSON API; money arrives in USD and is converted for display
// only. Errors are written into #errors (the browser test reads them from the DOM).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { currency: { code: "USD", per_usd: 1 }, month: "", by: "model", timer: null };

function report(message) {
  const box = $("errors");
  box.hidden = false;
  box.textContent += (box.textContent ? "\n" : "") + message;
}
window.addEventListener("error", (e) => report("error: " + e.message));
window.addEventListener("unhandledrejection", (e) => report("error: " + (e.reason && e.reason.message || e.reason)));
document.addEventListener("securitypolicyviolation", (e) => report("blocked by CSP: " + e.violatedDirective));

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// The same rule the tests use: two decimals from one unit up (with thousands separators),
// four below.
function num(v) {
  const a = Math.abs(v);
  return a >= 1
    ? v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    : v.toFixed(4);
}
function money(usd) {
  const c = state.currency;
  const v = usd * c.per_usd;
  return c.code === "USD" ? "$" + num(v) : c.code + " " + num(v);
}
function pct(x) { return (100 * x).toFixed(1) + "%"; }
function setMoney(id, usd) {
  const el = $(id);
  el.textContent = money(usd);
  el.dataset.usd = String(usd);
}

async function get(path) {
  const sep = path.includes("?") ? "&" : "?";
  const rsp = await fetch(path + sep + "month=" + encodeURIComponent(state.month), { credentials: "same-origin" });
  const body = await rsp.json();
  if (!rsp.ok) throw new Error(path + ": " + ((body.error && body.error.message) || rsp.status));
  return body;
}

function budgetBar(b) {
  const w = 300, h = 18, max = Math.max(1, b.used, b.projected_usd / (b.limit_usd || 1));
  const x = (f) => Math.min(w, (w * f) / max);
  const color = { ok: "#1e9e5a", warned: "#d99a00", downgrading: "#e67e22", capped: "#d63031" }[b.state] || "#2f6fec";
  let marks = "";
  for (const f of b.warn_at) marks += `<line x1="${x(f)}" x2="${x(f)}" y1="0" y2="${h}" stroke="#d99a00" stroke-width="2"><title>warn at ${pct(f)}</title></line>`;
  if (b.downgrade_at != null) marks += `<line x1="${x(b.downgrade_at)}" x2="${x(b.downgrade_at)}" y1="0" y2="${h}" stroke="#e67e22" stroke-width="2" stroke-dasharray="3 2"><title>downgrade at ${pct(b.downgrade_at)}</title></line>`;
  const proj = b.limit_usd ? b.projected_usd / b.limit_usd : 0;
  return `<svg viewBox="0 0 ${w} ${h + 4}" role="img" aria-label="${esc(b.budget)} used ${pct(b.used)}">
    <rect x="0" y="0" width="${w}" height="${h}" rx="3" fill="#eef1f5"/>
    <rect x="0" y="0" width="${x(proj)}" height="${h}" rx="3" fill="${color}" opacity="0.18"><title>projected ${pct(proj)}</title></rect>
    <rect x="0" y="0" width="${x(b.used)}" height="${h}" rx="3" fill="${color}"/>
    <line x1="${x(1)}" x2="${x(1)}" y1="0" y2="${h + 4}" stroke="#101826" stroke-width="2"><title>limit</title></line>
    ${marks}</svg>`;
}

function day(ts) { return ts ? ts.slice(0, 10) : "–"; }

function drawBudgets(data) {
  const box = $("budgets");
  if (!data.budgets.length) { box.innerHTML = `<p class="muted">No budgets in the policy.</p>`; return; }
  box.innerHTML = data.budgets.map((b, i) => `
    <div class="card budget" data-budget="${esc(b.budget)}" data-scope-id="${esc(b.scope_id)}">
      <h3><span>${esc(b.budget)} <span class="muted">${esc(b.scope)}${b.scope === "global" ? "" : ": " + esc(b.scope_id)}</span></span>
          <span class="badge ${esc(b.state)}">${esc(b.state)}</span></h3>
      ${budgetBar(b)}
      <dl>
        <dt>Spent</dt><dd class="spent" id="b${i}-spent"></dd>
        <dt>Limit</dt><dd class="limit" id="b${i}-limit"></dd>
        <dt>Remaining</dt><dd class="remaining" id="b${i}-remaining"></dd>
        <dt>Used</dt><dd>${pct(b.used)}</dd>
        <dt>Burn rate</dt><dd id="b${i}-burn"></dd>
        <dt>Projected month end</dt><dd id="b${i}-projected"></dd>
        <dt>Cap reached</dt><dd class="cap-day">${b.cap_reached_at ? day(b.cap_reached_at) + " at this rate" : (b.state === "capped" ? "reached" : "not this month")}</dd>
        <dt>Resets</dt><dd>${esc(b.resets_at)}</dd>
        <dt>On limit</dt><dd>${esc(b.on_limit)}</dd>
      </dl>
    </div>`).join("");
  data.budgets.forEach((b, i) => {
    setMoney(`b${i}-spent`, b.spent_usd);
    setMoney(`b${i}-limit`, b.limit_usd);
    setMoney(`b${i}-remaining`, b.remaining_usd);
    setMoney(`b${i}-projected`, b.projected_usd);
    $(`b${i}-burn`).textContent = money(b.burn_usd_per_day) + " / day";
  });
}

function drawSummary(tier) {
  const t = tier.total;
  setMoney("total-spend", t.cost_usd);
  $("total-requests").textContent = t.requests.toLocaleString("en-US") + " requests";
  setMoney("savings", t.savings_usd);
  $("savings-pct").textContent = t.savings_pct.toFixed(1) + "%";
  $("savings-pct").dataset.pct = String(t.savings_pct);
  setMoney("baseline-spend", t.baseline_cost_usd);
  const row = (name) => tier.rows.find((r) => r.tier === name) || { share_of_requests: 0, share_of_cost: 0 };
  for (const name of ["open", "frontier"]) {
    const r = row(name);
    $(`${name}-share-requests`).textContent = pct(r.share_of_requests);
    $(`${name}-share-spend`).textContent = pct(r.share_of_cost);
  }
}

function drawDaily(data, budgets) {
  const days = data.days, w = 1200, h = 220, pad = 44, bw = (w - pad - 10) / Math.max(1, days.length);
  const maxDay = Math.max(0.000001, ...days.map((d) => d.cost_usd));
  const global = budgets.budgets.find((b) => b.scope === "global");
  const total = days.length ? days[days.length - 1].cumulative_cost_usd : 0;
  const maxCum = Math.max(0.000001, total, global ? global.limit_usd : 0);
  const y = (v, m) => h - 24 - ((h - 40) * v) / m;
  let bars = "", line = "", labels = "";
  days.forEach((d, i) => {
    const x = pad + i * bw;
    bars += `<rect x="${x + 1}" y="${y(d.cost_usd, maxDay)}" width="${Math.max(1, bw - 2)}" height="${h - 24 - y(d.cost_usd, maxDay)}" fill="#2f6fec"><title>${esc(d.day)}: ${money(d.cost_usd)}, ${d.requests} requests</title></rect>`;
    line += `${i ? "L" : "M"}${x + bw / 2},${y(d.cumulative_cost_usd, maxCum)}`;
    if (i % 5 === 0) labels += `<text x="${x + bw / 2}" y="${h - 8}" font-size="11" text-anchor="middle" fill="#6b7686">${esc(d.day.slice(5))}</text>`;
  });
  const cap = global ? `<line x1="${pad}" x2="${w - 10}" y1="${y(global.limit_usd, maxCum)}" y2="${y(global.limit_usd, maxCum)}" stroke="#d63031" stroke-dasharray="5 4"><title>${esc(global.budget)} limit ${money(global.limit_usd)}</title></line>` : "";
  $("daily").innerHTML = `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="Daily spend">
    <text x="4" y="14" font-size="11" fill="#6b7686">bars: per day (max ${money(maxDay)}) · line: cumulative (${money(total)})</text>
    ${bars}<path d="${line}" fill="none" stroke="#101826" stroke-width="2"/>${cap}${labels}</svg>`;
}

function drawSpend(data) {
  const by = data.by, rows = data.rows;
  const max = Math.max(0.000001, ...rows.map((r) => r.cost_usd));
  const w = 420, rh = 22, h = Math.max(1, rows.length) * rh + 8;
  $("spend-chart").innerHTML = `<svg viewBox="0 0 ${w} ${h}" role="img" aria-label="Spend by ${esc(by)}">` + rows.map((r, i) =>
    `<text x="4" y="${i * rh + 18}" font-size="12" fill="#1c2430">${esc(r[by] || "(none)").slice(0, 22)}</text>
     <rect x="150" y="${i * rh + 6}" width="${(200 * r.cost_usd) / max}" height="14" rx="2" fill="${r[by] === "frontier" ? "#8e44ad" : r[by] === "open" ? "#16a085" : "#2f6fec"}"><title>${money(r.cost_usd)}</title></rect>
     <text x="${154 + (200 * r.cost_usd) / max}" y="${i * rh + 18}" font-size="11" fill="#6b7686">${money(r.cost_usd)}</text>`).join("") + `</svg>`;
  const head = `<tr><th class="l">${esc(by)}</th><th>requests</th><th>input tok</th><th>output tok</th><th>cost</th><th>baseline</th><th>saved</th><th>% spend</th></tr>`;
  const line = (r, name) => `<tr><td>${esc(name)}</td><td>${r.requests.toLocaleString("en-US")}</td><td>${(r.input_tokens + r.cached_input_tokens).toLocaleString("en-US")}</td><td>${r.output_tokens.toLocaleString("en-US")}</td><td>${money(r.cost_usd)}</td><td>${money(r.baseline_cost_usd)}</td><td>${r.savings_pct.toFixed(1)}%</td><td>${pct(r.share_of_cost)}</td></tr>`;
  $("spend-table").innerHTML = head + rows.map((r) => line(r, r[by] || "(none)")).join("") + line(data.total, "total").replace("<tr>", `<tr class="total">`);
}

function drawGrid(data) {
  const cell = (t, d) => data.cells.find((c) => c.task === t && c.difficulty === d);
  const max = Math.max(1, ...data.cells.map((c) => c.requests));
  const head = `<tr><th class="l">task</th>${data.difficulties.map((d) => `<th>${esc(d)}</th>`).join("")}<th>total</th></tr>`;
  const rows = data.tasks.map((t) => {
    let total = 0;
    const tds = data.difficulties.map((d) => {
      const c = cell(t, d), n = c ? c.requests : 0;
      total += n;
      const a = n ? 0.12 + (0.7 * n) / max : 0;
      return `<td data-n="${n}" class="heat" data-alpha="${a.toFixed(2)}">${n || ""}</td>`;
    }).join("");
    return `<tr><td>${esc(t)}</td>${tds}<td>${total || ""}</td></tr>`;
  }).join("");
  $("grid").innerHTML = head + rows;
  // Colour through the CSSOM (allowed by the page's CSP; inline style attributes are not).
  for (const td of document.querySelectorAll("#grid td.heat")) td.style.background = `rgba(47,111,236,${td.dataset.alpha})`;
}

function drawRecent(data) {
  const head = `<tr><th class="l">time</th><th class="l">key</th><th class="l">team</th><th class="l">task</th><th class="l">difficulty</th><th class="l">route</th><th class="l">model</th><th>tokens in/out</th><th>cost</th><th>latency</th><th class="l">status</th><th class="l">reason</th></tr>`;
  $("recent").innerHTML = head + data.requests.map((r) => `<tr>
    <td>${esc(r.time.replace("T", " ").slice(0, 19))}</td><td class="l">${esc(r.key)}</td><td class="l">${esc(r.team || "")}</td>
    <td class="l">${esc(r.task || "")}</td><td class="l">${esc(r.difficulty || "")}</td><td class="l">${esc(r.route)}</td>
    <td class="l tier-${esc(r.tier)}">${esc(r.model || "–")}</td><td>${r.input_tokens + r.cached_input_tokens} / ${r.output_tokens}</td>
    <td>${money(r.cost_usd)}${r.estimated ? "*" : ""}</td><td>${r.latency_ms} ms</td>
    <td class="l ${r.status === "ok" ? "" : "status-bad"}">${esc(r.status)}</td><td class="l reason">${esc(r.reason || "")}</td></tr>`).join("") +
    (data.requests.length ? "" : `<tr><td class="l" colspan="12">No requests this month.</td></tr>`);
}

function drawPolicy(p) {
  const r = p.reload;
  const errors = r.errors.length ? `<div class="errors">${r.errors.map(esc).join("\n")}</div>` : "";
  $("policy").innerHTML = `
    <p><b>${esc(p.source)}</b> · mode ${esc(p.mode)} · baseline ${esc(p.baseline || "none")} · loaded ${esc(r.loaded_at)}
       · last reload ${r.last_attempt_at ? esc(r.last_attempt_at) + (r.last_attempt_ok ? " ok" : " <b class=status-bad>refused</b>") : "never"}
       (${r.reloads} ok, ${r.failures} refused)</p>${errors}
    <div class="scroll"><table><tr><th class="l">model</th><th class="l">provider</th><th class="l">upstream</th><th class="l">tier</th><th>$ / M in</th><th>$ / M out</th></tr>
    ${p.models.map((m) => `<tr><td>${esc(m.name)}</td><td class="l">${esc(m.provider)}</td><td class="l">${esc(m.upstream)}</td><td class="l tier-${esc(m.tier)}">${esc(m.tier)}</td><td>${m.price_usd_per_mtok.input}</td><td>${m.price_usd_per_mtok.output}</td></tr>`).join("")}</table></div>
    <div class="scroll"><table><tr><th class="l">route</th><th class="l">when</th><th class="l">use</th></tr>
    ${p.routes.map((rt) => `<tr><td>${esc(rt.name)}</td><td class="l">${esc(Object.entries(rt.when).filter(([, v]) => v.length).map(([k, v]) => k + ": " + v.join(", ")).join("; ") || "any")}</td><td class="l">${esc(rt.use.join(" → "))}</td></tr>`).join("")}</table></div>
    <div class="scroll"><table><tr><th class="l">provider</th><th class="l">kind</th><th class="l">base url</th><th class="l">api key</th></tr>
    ${p.providers.map((pr) => `<tr><td>${esc(pr.name)}</td><td class="l">${esc(pr.kind)}</td><td class="l">${esc(pr.base_url)}</td><td class="l">${esc(pr.api_key || "none")}</td></tr>`).join("")}</table></div>`;
  $("baseline-name").textContent = p.baseline ? "(" + p.baseline + ")" : "";
}

async function refresh() {
  try {
    const [budgets, tier, spend, daily, grid, recent, policy] = await Promise.all([
      get("/api/v1/budgets"), get("/api/v1/spend?by=tier"), get("/api/v1/spend?by=" + state.by),
      get("/api/v1/daily"), get("/api/v1/grid"), get("/api/v1/recent?limit=25"), get("/api/v1/policy"),
    ]);
    state.currency = budgets.currency;
    $("currency-note").textContent = budgets.currency.code === "USD" ? "shown in USD" : `shown in ${budgets.currency.code} at ${budgets.currency.per_usd} per USD`;
    drawBudgets(budgets);
    drawSummary(tier);
    drawDaily(daily, budgets);
    drawSpend(spend);
    drawGrid(grid);
    drawRecent(recent);
    drawPolicy(policy);
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.month = budgets.month;
    if (!state.month) $("month").value = budgets.month;
    document.body.dataset.ready = "1";
    schedule(budgets.current);
  } catch (e) {
    report(String(e && e.message || e));
  }
}

function schedule(current) {
  clearTimeout(state.timer);
  if (current && $("auto").checked) state.timer = setTimeout(refresh, 30000);
}

function setMonth(m) {
  state.month = m;
  const url = new URL(location.href);
  if (m) url.searchParams.set("month", m); else url.searchParams.delete("month");
  history.replaceState(null, "", url);
}

document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(location.search);
  const now = new Date();
  const current = now.getUTCFullYear() + "-" + String(now.getUTCMonth() + 1).padStart(2, "0");
  state.month = params.get("month") || "";
  $("month").value = state.month || current;
  $("month").addEventListener("change", (e) => { setMonth(e.target.value); refresh(); });
  $("by").addEventListener("change", (e) => { state.by = e.target.value; refresh(); });
  $("auto").addEventListener("change", () => refresh());
  $("reload").addEventListener("click", async () => {
    const rsp = await fetch("/api/v1/policy/reload", { method: "POST", credentials: "same-origin" });
    const body = await rsp.json();
    $("reload-result").textContent = body.ok ? "reloaded" : "refused: " + (body.errors || []).join("; ");
    refresh();
  });
  refresh();
});
