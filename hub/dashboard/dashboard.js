/* The operator dashboard: polls the hub's JSON API once a second and keeps
 * the tables and the chart current. Everything is written with textContent
 * (never as HTML), so names from the hub cannot inject markup. The operator
 * token for the dead-letter queue lives in sessionStorage only and goes in
 * the Authorization header, never in a URL.
 *
 * Every word shown comes from the language's catalogue (/i18n.json, from
 * i18n.vi.json or i18n.en.json): ?lang=vi|en in the page's address picks
 * one, else the hub's configured language (Vietnamese unless set). Numbers
 * and dates follow the catalogue's locale; times are Vietnam time. */
"use strict";

(function () {
  const REFRESH_MS = 1000;
  const TOKEN_KEY = "lth.operatorToken";
  const $ = (id) => document.getElementById(id);
  const state = { members: [], flows: [], throughput: null, failures: 0, alarms: [] };
  let catalogue = { lang: "vi", locale: "vi-VN", time_zone: "Asia/Ho_Chi_Minh", strings: {} };

  /* ---- language ------------------------------------------------------ */
  /* The catalogue's string for key with {name} replaced from vars; the key
   * itself when missing, so that a gap shows instead of an empty cell. */
  function t(key, vars) {
    const n = vars && vars.n;
    let text = (n === 1 && catalogue.strings[key + "_one"]) || catalogue.strings[key];
    if (text === undefined) return key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  }

  async function loadCatalogue() {
    const asked = new URLSearchParams(window.location.search).get("lang");
    const path = "/i18n.json" + (asked === "vi" || asked === "en" ? "?lang=" + asked : "");
    catalogue = await getJson(path);
    document.documentElement.lang = catalogue.lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-ph]")) el.placeholder = t(el.dataset.i18nPh);
    for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
    for (const a of document.querySelectorAll("#languages a")) {
      a.setAttribute("aria-current", String(a.dataset.lang === catalogue.lang));
    }
  }

  /* ---- formatting ---------------------------------------------------- */
  function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString(catalogue.locale); }
  function fmtFixed(v, digits) {
    return Number(v).toLocaleString(catalogue.locale, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function fmtMs(v) { return v === null || v === undefined ? "–" : fmtFixed(v, v < 10 ? 2 : v < 100 ? 1 : 0); }
  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined) return t("never");
    if (seconds < 1) return t("now");
    if (seconds < 60) return t("s_ago", { n: Math.floor(seconds) });
    if (seconds < 3600) return t("min_ago", { n: Math.floor(seconds / 60) });
    if (seconds < 86400) return t("h_ago", { n: Math.floor(seconds / 3600) });
    return t("d_ago", { n: Math.floor(seconds / 86400) });
  }
  function fmtDuration(seconds) {
    if (!seconds) return "–";
    if (seconds < 60) return t("dur_s", { n: fmtFixed(seconds, 1) });
    if (seconds < 3600) return t("dur_min", { n: Math.floor(seconds / 60) });
    if (seconds < 86400) return t("dur_h", { n: fmtFixed(seconds / 3600, 1) });
    return t("dur_d", { n: fmtFixed(seconds / 86400, 1) });
  }
  /* Vietnam time whatever the browser's zone: operators compare with logs
   * and with each other. */
  function fmtTime(us) {
    if (!us) return "–";
    return new Date(us / 1000).toLocaleTimeString(catalogue.locale,
      { hour12: false, timeZone: catalogue.time_zone });
  }
  function fmtDateTime(us) {
    if (!us) return "–";
    return new Date(us / 1000).toLocaleString(catalogue.locale,
      { hour12: false, timeZone: catalogue.time_zone, day: "2-digit", month: "2-digit",
        year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }

  /* ---- fetching ------------------------------------------------------ */
  async function getJson(path, token) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(path, { cache: "no-store", headers: headers });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) {
      const err = new Error((body && body.error) || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    return body;
  }

  async function postJson(path, token) {
    const r = await fetch(path, {
      method: "POST", cache: "no-store",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      body: "{}",
    });
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new Error((body && body.error) || ("HTTP " + r.status));
    return body;
  }

  /* ---- keyed table rows ---------------------------------------------- */
  /* Keeps one <tr> per key, updates cells in place (flashing those that
   * changed), and orders rows as given: 200 members re-render without
   * flicker or losing the scroll position. */
  function syncRows(tbody, items, keyOf, columns, decorate) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.key, tr);
    const seen = new Set();
    let index = 0;
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      let tr = existing.get(key);
      const fresh = !tr;
      if (fresh) {
        tr = document.createElement("tr");
        tr.dataset.key = key;
        for (const col of columns) {
          const td = document.createElement("td");
          if (col.cls) td.className = col.cls;
          tr.appendChild(td);
        }
      }
      columns.forEach((col, i) => {
        const td = tr.cells[i];
        if (col.render) { col.render(td, item); return; }
        const text = String(col.value(item));
        if (td.textContent !== text) {
          td.textContent = text;
          if (!fresh && col.flash) {
            td.classList.remove("changed");
            void td.offsetWidth; /* restart the animation */
            td.classList.add("changed");
          }
        }
      });
      if (decorate) decorate(tr, item);
      if (tbody.rows[index] !== tr) tbody.insertBefore(tr, tbody.rows[index] || null);
      index++;
    }
    for (const [key, tr] of existing) if (!seen.has(key)) tr.remove();
  }

  /* ---- sections ------------------------------------------------------ */
  /* An alarm's reason in the page's language, from its code and figures. */
  function alarmReason(a) {
    const days = (s) => fmtInt(Math.floor(s / 86400));
    const vars = { value: fmtInt(a.value), limit: fmtInt(a.limit) };
    if (a.code === "certificate_expiring") { vars.value = days(a.value); vars.limit = days(a.limit); }
    const key = "alarm_" + a.code;
    return catalogue.strings[key] === undefined ? a.reason : t(key, vars);
  }
  function alarmSubject(a) {
    if (!a.subject) return t("alarm_hub");
    return a.name ? a.name + " (" + a.subject + ")" : a.subject;
  }

  function renderAlarms(alarms) {
    state.alarms = alarms || [];
    const section = $("alarms-section");
    section.hidden = state.alarms.length === 0;
    const critical = state.alarms.filter((a) => a.level === "critical").length;
    $("alarms-count").textContent = state.alarms.length
      ? t("alarms_count", { n: state.alarms.length, critical: fmtInt(critical) }) : "";
    const list = $("alarms");
    while (list.children.length > state.alarms.length) list.lastChild.remove();
    while (list.children.length < state.alarms.length) list.appendChild(document.createElement("li"));
    state.alarms.forEach((a, i) => {
      const li = list.children[i];
      li.className = "alarm " + a.level;
      li.dataset.level = a.level;
      li.dataset.code = a.code;
      li.dataset.subject = a.subject;
      li.textContent = t("level_" + a.level) + " · " + alarmSubject(a) + ": " + alarmReason(a);
    });
  }

  function renderStatus(s) {
    const ready = $("ready");
    ready.dataset.ready = String(s.ready);
    const n = (s.alarms || []).length;
    ready.dataset.alarm = s.ready && n ? s.alarm_level : "";
    ready.textContent = !s.ready ? t("not_ready", { reason: s.not_ready_reason || "?" })
      : n ? t("degraded", { n: n, level: t("level_" + s.alarm_level) }) : t("ready");
    renderAlarms(s.alarms);
    $("version").textContent = t("version", { v: s.version });
    $("uptime").textContent = t("uptime", { d: fmtDuration(s.uptime_s) });
    $("sum-members").textContent = fmtInt(s.members.connected) + " / " + fmtInt(s.members.known);
    $("sum-accepted").textContent = fmtInt(s.last_minute.accepted);
    $("sum-refused").textContent = fmtInt(s.last_minute.refused);
    $("sum-queued").textContent = fmtInt(s.queues.depth);
    $("sum-oldest").textContent = s.queues.depth ? fmtDuration(s.queues.oldest_age_s) : "–";
    $("sum-dead").textContent = fmtInt(s.dead_letters);
  }

  function memberMatches(m, text, which) {
    if (which !== "all" && m.state !== which) return false;
    if (!text) return true;
    return m.id.toLowerCase().includes(text) || m.address.toLowerCase().includes(text) ||
      (m.name || "").toLowerCase().includes(text) || (m.unit || "").toLowerCase().includes(text) ||
      m.services.join(",").toLowerCase().includes(text);
  }

  const memberColumns = [
    { cls: "state", render: (td) => { if (!td.firstChild) { const d = document.createElement("span"); d.className = "dot"; td.appendChild(d); } } },
    { cls: "id member-id", value: (m) => m.id },
    { cls: "agency", value: (m) => (m.name ? m.name + " — " + m.unit : "–") },
    { cls: "member-state", value: (m) => t("state_" + m.state) },
    { cls: "alarm-reason", value: (m) => memberAlarms(m).map((a) => t("level_" + a.level) + ": " + alarmReason(a)).join("; ") || "" },
    { cls: "last-seen", value: (m) => fmtAge(m.last_seen_age_s) },
    { cls: "address", value: (m) => m.address || "–" },
    { cls: "num msgs-in", value: (m) => fmtInt(m.msgs_in), flash: true },
    { cls: "num msgs-out", value: (m) => fmtInt(m.msgs_out), flash: true },
    { cls: "num in-flight", value: (m) => fmtInt(m.in_flight) },
    { cls: "services", value: (m) => m.services.join(", ") },
  ];
  function memberAlarms(m) { return state.alarms.filter((a) => a.subject === m.id); }
  function worstLevel(alarms) {
    return alarms.some((a) => a.level === "critical") ? "critical" : alarms.length ? "warning" : "";
  }

  function renderMembers() {
    const members = state.members;
    const text = $("members-filter").value.trim().toLowerCase();
    const which = $("members-state").value;
    /* Connected first, then by id: problems (offline) are easy to find
     * with the state filter, and active members stay on top. */
    const rank = { connected: 0, offline: 1, removed: 2 };
    const shown = members.filter((m) => memberMatches(m, text, which))
      .sort((a, b) => (rank[a.state] - rank[b.state]) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    syncRows($("members").tBodies[0], shown, (m) => m.id, memberColumns, (tr, m) => {
      tr.dataset.state = m.state;
      tr.dataset.id = m.id;
      tr.dataset.alarm = worstLevel(memberAlarms(m));
      tr.cells[4].title = tr.cells[4].textContent;
      tr.cells[2].title = m.name ? m.name + " — " + m.unit + (m.contact ? " · " + m.contact : "") : "";
    });
    const connected = members.filter((m) => m.online).length;
    const count = $("members-count");
    count.textContent = t("members_count", { connected: fmtInt(connected), total: fmtInt(members.length) }) +
      (shown.length !== members.length ? " · " + t("members_shown", { n: fmtInt(shown.length) }) : "");
    count.dataset.connected = String(connected);
    count.dataset.total = String(members.length);
    const grid = $("member-grid");
    while (grid.children.length > members.length) grid.lastChild.remove();
    while (grid.children.length < members.length) grid.appendChild(document.createElement("span"));
    members.forEach((m, i) => {
      const cell = grid.children[i];
      cell.className = m.state;
      const level = worstLevel(memberAlarms(m));
      if (level) cell.classList.add("alarm-" + level);
      cell.title = (m.name ? m.name + " (" + m.id + ")" : m.id) + " — " + t("state_" + m.state);
    });
  }

  function flowKey(f) { return f.sender + "|" + f.receiver + "|" + f.service; }

  const flowColumns = [
    { cls: "id sender", value: (f) => f.sender || "–" },
    { cls: "id receiver", value: (f) => f.receiver || "–" },
    { cls: "service", value: (f) => f.service || "–" },
    { cls: "num accepted", value: (f) => fmtInt(f.accepted), flash: true },
    { cls: "num errors", value: (f) => fmtInt(f.errors), flash: true },
    { cls: "num last-minute", value: (f) => fmtInt(f.minute.accepted) },
    { cls: "num p50", value: (f) => fmtMs(f.minute.end_to_end_ms && f.minute.end_to_end_ms.p50) },
    { cls: "num p99", value: (f) => fmtMs(f.minute.end_to_end_ms && f.minute.end_to_end_ms.p99) },
    { cls: "num hub-p50", value: (f) => fmtMs(f.minute.hub_ms && f.minute.hub_ms.p50) },
    { cls: "refusals", value: (f) => Object.entries(f.refusals).map(([k, v]) => k + " " + v).join(", ") },
    { cls: "last", value: (f) => fmtTime(f.last_at_us) },
  ];

  function renderFlows() {
    const text = $("flows-filter").value.trim().toLowerCase();
    const shown = state.flows.filter((f) => !text || flowKey(f).toLowerCase().includes(text))
      .sort((a, b) => b.last_at_us - a.last_at_us);
    syncRows($("flows").tBodies[0], shown, flowKey, flowColumns, (tr, f) => {
      tr.dataset.flow = flowKey(f);
      tr.cells[4].classList.toggle("nonzero", f.errors > 0);
    });
    $("flows-empty").hidden = state.flows.length > 0;
  }

  const queueColumns = [
    { cls: "id", value: (q) => q.receiver },
    { cls: "num depth", value: (q) => fmtInt(q.depth), flash: true },
    { cls: "num", value: (q) => fmtInt(q.in_flight) },
    { cls: "oldest", value: (q) => fmtDuration(q.oldest_age_s) },
  ];

  function renderQueues(data) {
    const queues = data.queues.filter((q) => q.depth > 0);
    syncRows($("queues").tBodies[0], queues, (q) => q.receiver, queueColumns);
    $("queues-empty").hidden = queues.length > 0;
  }

  const nodeColumns = [
    { cls: "id", value: (n) => n.id + (n.self ? " *" : "") },
    { cls: "id", value: (n) => n.endpoint || "–" },
    { value: (n) => t(n.alive ? "node_alive" : "node_silent") },
    { value: (n) => fmtDuration(n.heartbeat_age_s) },
    { cls: "num", value: (n) => fmtInt(n.members) },
  ];

  function renderNodes(data) {
    syncRows($("nodes").tBodies[0], data.nodes, (n) => n.id, nodeColumns);
  }

  const exchangeColumns = [
    { value: (x) => fmtTime(x.at_us) },
    /* accepted and settled have words; refusals keep their code. */
    { cls: "outcome", value: (x) => catalogue.strings["outcome_" + x.outcome] || x.outcome },
    { cls: "id", value: (x) => x.sender },
    { cls: "id", value: (x) => x.receiver || "–" },
    { value: (x) => x.service || "–" },
    { cls: "num bytes", value: (x) => fmtInt(x.bytes) },
    { cls: "num", value: (x) => fmtMs(x.latency_ms) },
    { cls: "id", value: (x) => x.message_id },
  ];

  function renderExchanges(data) {
    syncRows($("exchanges").tBodies[0], data.exchanges.slice(0, 50),
      (x) => x.message_id + "|" + x.outcome + "|" + x.at_us, exchangeColumns);
  }

  /* ---- the chart ----------------------------------------------------- */
  function drawChart() {
    const canvas = $("throughput");
    const data = state.throughput;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 1000, height = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    if (!data) return;
    const points = data.points; /* [second, accepted, refused, delivered, settled, dead] */
    const left = 44, right = 8, top = 8, bottom = 20;
    const w = width - left - right, h = height - top - bottom;
    /* A round top that divides into four whole-number grid lines. */
    let max = 4;
    for (const p of points) max = Math.max(max, p[1], p[2], p[3]);
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    max = Math.ceil(max / step) * step;
    max = Math.ceil(max / 4) * 4;
    const css = getComputedStyle(document.documentElement);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = css.getPropertyValue("--muted");
    ctx.strokeStyle = css.getPropertyValue("--line");
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + h - (h * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y + 0.5); ctx.lineTo(left + w, y + 0.5); ctx.stroke();
      ctx.fillText(String(Math.round((max * i) / 4)), 4, y + 4);
    }
    const n = points.length;
    for (let s = 0; s <= 5; s++) {
      const x = left + (w * s) / 5;
      const label = s === 5 ? t("chart_now") : t("chart_minutes_ago", { n: 5 - s });
      /* Kept inside the canvas whatever the language's word length. */
      ctx.fillText(label, Math.min(x - 12, left + w - ctx.measureText(label).width), height - 4);
    }
    const series = [[1, "--accent"], [3, "--ok"], [2, "--bad"]];
    for (const [col, colour] of series) {
      ctx.strokeStyle = css.getPropertyValue(colour);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      points.forEach((p, i) => {
        const x = left + (w * i) / (n - 1);
        const y = top + h - (h * p[col]) / max;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
  }

  /* ---- dead letters -------------------------------------------------- */
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  const dlqColumns = [
    { cls: "num seq", value: (d) => d.seq },
    { cls: "id", value: (d) => d.sender },
    { cls: "id", value: (d) => d.receiver },
    { value: (d) => d.service || "–" },
    { cls: "reason", value: (d) => d.reason },
    { cls: "num", value: (d) => d.attempts },
    { value: (d) => fmtDateTime(d.dead_at_us) },
    {
      cls: "actions", render: (td, d) => {
        if (td.firstChild) return;
        for (const action of ["replay", "purge"]) {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = t(action);
          b.addEventListener("click", async () => {
            if (action === "purge" && !window.confirm(t("confirm_purge", { seq: d.seq }))) return;
            try {
              await postJson("/api/v1/dlq/" + encodeURIComponent(d.seq) + "/" + action, token());
              $("dlq-status").textContent = t(action === "replay" ? "replayed" : "purged", { seq: d.seq });
              refreshDlq();
            } catch (e) { $("dlq-status").textContent = t("action_failed", { action: t(action), error: e.message }); }
          });
          td.appendChild(b);
        }
      },
    },
  ];

  async function refreshDlq() {
    const tok = token();
    const status = $("dlq-status");
    const tbody = $("dlq").tBodies[0];
    /* data-total is set only while a listing is shown: tests and tools
     * read it whatever the page's language. */
    delete status.dataset.total;
    if (!tok) {
      status.textContent = t("dlq_enter_token");
      syncRows(tbody, [], (d) => d.seq, dlqColumns);
      return;
    }
    try {
      const data = await getJson("/api/v1/dlq?limit=200", tok);
      syncRows(tbody, data.dead_letters, (d) => String(d.seq), dlqColumns);
      status.dataset.total = String(data.total);
      status.textContent = t("dlq_count", { n: data.total }) + (data.next_after ? t("dlq_first_shown") : "");
    } catch (e) {
      status.textContent = e.status === 401 ? t("dlq_refused") : e.status === 403 ? e.message : t("dlq_cannot_list", { error: e.message });
      syncRows(tbody, [], (d) => d.seq, dlqColumns);
    }
  }

  /* ---- the loop ------------------------------------------------------ */
  let tick = 0;
  async function refresh() {
    try {
      const [status, members, flows, queues, throughput] = await Promise.all([
        getJson("/api/v1/status"), getJson("/api/v1/members"), getJson("/api/v1/flows"),
        getJson("/api/v1/queues"), getJson("/api/v1/throughput"),
      ]);
      state.members = members.members;
      state.flows = flows.flows;
      state.throughput = throughput;
      renderStatus(status);
      renderMembers();
      renderFlows();
      renderQueues(queues);
      drawChart();
      if (tick % 2 === 0) renderExchanges(await getJson("/api/v1/exchanges?limit=50"));
      if (tick % 5 === 0) renderNodes(await getJson("/api/v1/nodes"));
      if (tick % 5 === 0) await refreshDlq();
      $("banner").hidden = true;
      $("last-update").textContent = t("updated", { t: fmtTime(Date.now() * 1000) });
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
      state.failures = 0;
    } catch (e) {
      state.failures++;
      const banner = $("banner");
      banner.textContent = t("cannot_reach", { error: e.message });
      banner.hidden = false;
      $("ready").dataset.ready = "unknown";
      $("ready").dataset.alarm = "";
    }
    tick++;
    setTimeout(refresh, state.failures ? Math.min(REFRESH_MS * 2 * state.failures, 10000) : REFRESH_MS);
  }

  async function start() {
    try {
      await loadCatalogue();
    } catch (e) {
      /* Without a catalogue the page still works, showing the keys. */
      const banner = $("banner");
      banner.textContent = "i18n.json: " + e.message;
      banner.hidden = false;
    }
    $("members-filter").addEventListener("input", renderMembers);
    $("members-state").addEventListener("change", renderMembers);
    $("flows-filter").addEventListener("input", renderFlows);
    $("dlq-token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("dlq-token").value.trim();
      $("dlq-token").value = "";
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      refreshDlq();
    });
    $("dlq-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      refreshDlq();
    });
    window.addEventListener("resize", drawChart);
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
