// The kiosk's page: draws the screen the node's flow says (GET /api/view, then server-sent
// events), and sends each touch (POST /api/press). No framework, no internet. Every button
// carries data-do (and data-id, data-d, data-c): the touch the node is told about.
"use strict";
let T = { screen: {}, status: {} };
let current = null;
let idleTimer = null;
let lastHtml = null;
const IDLE_HOME_MS = 60000, DONE_HOME_MS = 20000;

function fill(text, fields) {
  return (text || "").replace(/\{(\w+)\}/g, (_, k) => (fields && fields[k] != null ? String(fields[k]) : ""));
}
function t(key, fields) { return fill(T.screen[key], fields); }
function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
function btn(label, attrs, cls) {
  const a = Object.entries(attrs).map(([k, v]) => ` data-${k}="${esc(v)}"`).join("");
  return `<button class="${cls || ""}"${a}>${label}</button>`;
}
function msg(view) {
  return view.message ? `<p class="msg" id="message">${esc(t(view.message.key, view.message))}</p>` : "";
}

function queueGrid(v) {
  return `<div class="grid">` + v.queues.map(q => btn(`${esc(q.name)}<small>${q.waiting != null ? "等候 " + q.waiting + " 人" : ""}${q.wait != null ? " · 约 " + q.wait + " 分钟" : ""}</small>`,
    { do: "queue", id: q.id }, "primary")).join("") + `</div>`;
}
function digitKeypad() {
  return `<div class="keypad">` + ["1", "2", "3", "4", "5", "6", "7", "8", "9"].map(d => btn(d, { do: "digit", d })).join("") +
    btn(esc(t("clear")), { do: "clear" }, "secondary") + btn("0", { do: "digit", d: "0" }) + btn("⌫", { do: "delete" }, "secondary") + `</div>`;
}
// the code keypads: every letter and digit (booking systems and online applications use them all)
function codeKeypad() {
  return `<div class="keypad wide">` + "1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ".split("").map(c => btn(c, { do: "char", c })).join("") +
    btn("⌫", { do: "delete" }, "secondary") + `</div>`;
}

const screens = {
  loading: () => `<p class="big">…</p>`,
  home: v => msg(v) + `<h2>${esc(t("choose_queue"))}</h2>` + queueGrid(v) +
    (v.appointment || v.code || v.green ? `<div class="row">` +
      (v.appointment ? btn(esc(t("appointment")), { do: "appointment" }, "secondary") : "") +
      (v.code ? btn(esc(t("code")), { do: "code" }, "secondary") : "") +
      (v.green ? btn(esc(t("green")), { do: "green" }, "green") : "") + `</div>` : ""),
  green_queues: v => `<p class="banner" id="green-banner">${esc(t("green_confirmed", v))}</p>` + queueGrid(v) +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}</div>`,
  appointment: v => `<h2>${esc(t("appt_title"))}</h2><div class="entry" id="entry">${esc(v.code) || "&nbsp;"}</div>` + msg(v) +
    codeKeypad() +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}${btn(esc(t("clear")), { do: "clear" }, "secondary")}${btn(esc(t("phone_ok")), { do: "appt_ok" }, "primary")}</div>`,
  green: v => `<h2>${esc(t("green_title"))}</h2><p class="staff">${esc(t("green_staff"))}</p><div class="grid">` +
    v.grounds.map(g => btn(esc(g.name), { do: "ground", id: g.id })).join("") + `</div>` +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}</div>`,
  green_pin: v => `<div class="split"><div class="head"><h2>${esc(t("green_pin_title"))}</h2><p class="staff">${esc(t("green"))}：${esc(v.ground)}</p>` +
    `<div class="entry" id="entry">${esc(v.pin_masked) || "&nbsp;"}</div>` + msg(v) + `</div>` + digitKeypad() +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}${btn(esc(t("phone_ok")), { do: "pin_ok" }, "primary")}</div></div>`,
  matters: v => `<h2>${esc(v.queue)} · ${esc(t("choose_matter"))}</h2><div class="grid">` +
    v.matters.map(m => btn(esc(m.name), { do: "matter", id: m.id })).join("") +
    btn(esc(t("whole_queue")), { do: "matter" }, "secondary") + `</div>` +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}</div>`,
  phone: v => `<div class="split"><div class="head"><h2>${esc(t("phone_title"))}</h2><div class="entry" id="entry">${esc(v.phone_masked) || "&nbsp;"}</div>` +
    (v.card ? `<p class="good">${esc(t("card_read"))}</p>` : "") + msg(v) + `</div>` + digitKeypad() +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}${btn(esc(t("no_sms")), { do: "no_sms" }, "secondary")}${btn(esc(t("phone_ok")), { do: "phone_ok" }, "primary")}</div></div>`,
  code: v => `<h2>${esc(t("code_title"))}</h2><div class="entry" id="entry">${esc(v.code) || "&nbsp;"}</div>` + msg(v) +
    codeKeypad() +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}${btn(esc(t("phone_ok")), { do: "code_ok" }, "primary")}</div>`,
  confirm: v => `<h2>${esc(t("confirm_title"))}</h2><dl>` +
    (v.green ? `<dt>${esc(t("green"))}</dt><dd id="green">${esc(v.green)}</dd>` : "") +
    `<dt>办理类别</dt><dd>${esc(v.queue)}</dd>` + (v.matter ? `<dt>办理事项</dt><dd>${esc(v.matter)}</dd>` : "") +
    `<dt>短信通知</dt><dd>${esc(v.phone_masked || t("no_sms"))}</dd></dl>` +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}${btn(esc(t("confirm")), { do: "confirm" }, "primary")}</div>`,
  issuing: () => `<p class="big">${esc(t("issuing"))}</p>`,
  done: v => `<p class="big good">${esc(t("done"))}</p>` +
    (v.result.missed_slot ? `<p class="msg" id="late">${esc(t("appt_late"))}</p>` : "") +
    `<p class="number" id="number">${esc(v.result.number)}</p>` +
    `<p class="big">${esc(v.result.where)}</p>` +
    (v.result.people_ahead != null ? `<p class="big" id="ahead">${esc(t("done_ahead", v.result))}</p>` : "") +
    (v.result.wait != null ? `<p class="big">${esc(t("done_wait", v.result))}</p>` : "") +
    `<div class="row">${btn(esc(t("home")), { do: "home" }, "primary")}</div>`,
  failed: v => (v.result && v.result.number ? `<p class="number">${esc(v.result.number)}</p>` : "") + msg(v) +
    `<div class="row">${btn(esc(t("home")), { do: "home" }, "primary")}</div>`,
  query: v => `<h2>${esc(t("query_title"))}</h2><div class="entry" id="entry">${esc(v.query) || "&nbsp;"}</div>` +
    (v.result ? (v.result.found ? `<p class="big" id="query-result">${esc(t("query_result", { ...v.result, status_text: T.status[v.result.status] || v.result.status, people_ahead: v.result.people_ahead ?? 0 }))}</p>`
      : `<p class="msg" id="query-result">未找到该号票</p>`) : "") +
    `<div class="keypad wide">` + "ABCDEFGHJKLMNPQRSTUVWXYZ1234567890".split("").map(c => btn(c, { do: "char", c })).join("") +
    btn("⌫", { do: "delete" }, "secondary") + `</div>` +
    `<div class="row">${btn(esc(t("back")), { do: "back" }, "secondary")}${btn(esc(t("query")), { do: "query_go" }, "primary")}</div>`,
  closed: v => `<div class="blocked"><p class="big">${esc(t("closed"))}</p>` +
    (v.opens_at ? `<p class="big" id="opens-at">${esc(t("opens_at", v))}</p>` : "") +
    (v.hours ? `<p>${esc(t("hours", v))}</p>` : "") + `</div>`,
  unavailable: () => `<div class="blocked"><p class="big">${esc(t("unavailable"))}</p></div>`,
  out_of_service: v => `<div class="blocked"><p class="big">${esc(t("out_of_service"))}</p>` +
    (v.next_kiosk ? `<p class="big">${esc(t("next_kiosk", v))}</p>` : "") + `</div>`,
};

function render(view) {
  if (current && view.version < current.version) return; // an older answer overtaken by an event
  current = view;
  document.body.classList.toggle("elder", !!view.elder);
  document.getElementById("hall").textContent = t("welcome", view);
  document.getElementById("elder").textContent = view.elder ? t("elder_off") : t("elder_on");
  document.getElementById("query").textContent = t("query");
  document.getElementById("home").textContent = t("home");
  const main = document.getElementById("screen");
  main.dataset.screen = view.screen;
  const html = (screens[view.screen] || screens.loading)(view);
  if (html !== lastHtml) { main.innerHTML = html; lastHtml = html; } // the same screen again (the event after an answer): leave it
  clearTimeout(idleTimer);
  if (view.screen !== "home" && view.screen !== "issuing" && !["closed", "unavailable", "out_of_service"].includes(view.screen)) {
    idleTimer = setTimeout(() => press({ do: "home" }), ["done", "failed"].includes(view.screen) ? DONE_HOME_MS : IDLE_HOME_MS);
  }
}

async function press(action) {
  try {
    const res = await fetch("/api/press", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(action) });
    if (res.ok) render(await res.json());
  } catch (e) { /* the event stream reconnects and brings the truth */ }
}

// a touch acts when the finger goes down: a screen redrawn between down and up (the event that
// follows each answer) would otherwise swallow the click, and the citizen would tap twice
document.addEventListener("pointerdown", ev => {
  const b = ev.target.closest("button[data-do]");
  if (!b || !ev.isPrimary) return;
  ev.preventDefault();
  const action = { do: b.dataset.do };
  if ("id" in b.dataset) action.id = b.dataset.id;
  if ("d" in b.dataset) action.d = b.dataset.d;
  if ("c" in b.dataset) action.c = b.dataset.c;
  press(action);
});

async function boot() {
  T = await (await fetch("/api/texts")).json();
  render(await (await fetch("/api/view")).json());
  const events = new EventSource("/api/events");
  events.onmessage = ev => render(JSON.parse(ev.data));
}
boot().catch(() => setTimeout(() => location.reload(), 3000));
