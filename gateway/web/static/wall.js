// The supervisors' wall: a snapshot, then diffs, from /supervision/wall/events (server-sent events).
// The server computes the wall once per tick for every viewer; this page only applies diffs, filters, and counts
// the seconds in the current state locally, so a growing duration costs no traffic.
(() => {
  "use strict";
  const strings = JSON.parse(document.getElementById("wall-strings").textContent);
  const reasons = JSON.parse(document.getElementById("wall-reasons").textContent);
  const body = document.getElementById("wall-rows");
  const status = document.getElementById("wall-status");
  const teamFilter = document.getElementById("filter-team");
  const stateFilter = document.getElementById("filter-state");
  const summaryBox = document.getElementById("wall-summary");
  const chart = document.getElementById("wall-chart");
  const watchTemplate = document.getElementById("watch-form");
  const STATES = ["ready", "on_call", "wrap_up", "break", "offline"];
  const COLOURS = { ready: "#2e7d32", on_call: "#0b5cab", wrap_up: "#8e6c00", break: "#b3261e", offline: "#6b7785" };
  const rows = new Map();
  let summary = {};

  const seconds = (iso) => (iso ? Math.max(0, (Date.now() - Date.parse(iso)) / 1000) : 0);
  function duration(total) {
    const s = Math.floor(total), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }
  function cell(tr, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    tr.appendChild(td);
    return td;
  }

  function build(row) {
    const tr = document.createElement("tr");
    tr.dataset.session = row.session_id;
    tr.dataset.login = row.login;
    tr.dataset.state = row.state;
    tr.dataset.teams = JSON.stringify(row.teams);
    if (row.break_too_long) tr.classList.add("too-long");
    const where = row.on_site ? strings.on_site : strings.home;
    cell(tr, row.name + " (" + row.login + ") · " + where + (row.watched ? " · " + strings.watched : ""));
    cell(tr, row.teams.join(", "));
    const state = cell(tr, strings[row.state] + (row.reason ? " (" + (reasons[row.reason] || row.reason) + ")" : ""), "state");
    if (row.break_too_long) state.textContent += " · " + strings.break_too_long;
    cell(tr, "", "since").dataset.since = row.state_since || "";
    const today = cell(tr, "", "today");
    today.dataset.earlier = JSON.stringify(row.earlier);
    today.dataset.current = row.state;
    today.dataset.since = row.state_since || "";
    const link = cell(tr, strings[row.link], "link link-" + row.link);
    if (row.handshake_at) link.dataset.handshake = row.handshake_at;
    cell(tr, row.voice || "—", "voice");
    const seat = cell(tr, row.seat || "—", "seat");
    if (row.idle_since) seat.dataset.idle = row.idle_since;
    const actions = document.createElement("td");
    const form = watchTemplate.content.firstElementChild.cloneNode(true);
    form.action = "/supervision/watch/" + encodeURIComponent(row.session_id);
    actions.appendChild(form);
    tr.appendChild(actions);
    return tr;
  }

  function tickTimes() {
    for (const td of body.querySelectorAll("td.since")) td.textContent = duration(seconds(td.dataset.since));
    for (const td of body.querySelectorAll("td.today")) {
      const spent = JSON.parse(td.dataset.earlier);
      spent[td.dataset.current] = (spent[td.dataset.current] || 0) + seconds(td.dataset.since);
      td.textContent = STATES.filter((s) => spent[s]).map((s) => strings[s] + " " + duration(spent[s])).join(" · ");
    }
    for (const td of body.querySelectorAll("td.seat[data-idle]")) {
      td.textContent = td.textContent.split(" · ")[0] + " · " + strings.idle + " " + duration(seconds(td.dataset.idle));
    }
  }

  function applyFilters() {
    const team = teamFilter.value, state = stateFilter.value;
    for (const tr of body.children) {
      const teams = JSON.parse(tr.dataset.teams);
      tr.hidden = (team && !teams.includes(team)) || (state && tr.dataset.state !== state);
    }
  }

  function renderTeams() {
    const teams = new Set();
    for (const row of rows.values()) row.teams.forEach((t) => teams.add(t));
    const chosen = teamFilter.value;
    const known = new Set([...teamFilter.options].map((o) => o.value));
    for (const team of [...teams].sort()) {
      if (!known.has(team)) teamFilter.add(new Option(team, team));
    }
    teamFilter.value = chosen;
  }

  function renderSummary() {
    summaryBox.replaceChildren();
    for (const key of ["total", ...STATES, "link_down", "break_too_long"]) {
      const span = document.createElement("span");
      span.dataset.count = key;
      span.textContent = strings[key] + ": " + (summary[key] || 0);
      summaryBox.appendChild(span);
    }
    const most = Math.max(1, ...STATES.map((s) => summary[s] || 0));
    const ns = "http://www.w3.org/2000/svg";
    chart.replaceChildren();
    STATES.forEach((state, i) => {
      const height = (80 * (summary[state] || 0)) / most;
      const bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", String(20 + i * 95));
      bar.setAttribute("y", String(90 - height));
      bar.setAttribute("width", "60");
      bar.setAttribute("height", String(height));
      bar.setAttribute("fill", COLOURS[state]);
      bar.dataset.state = state;
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", String(20 + i * 95));
      label.setAttribute("y", "110");
      label.setAttribute("font-size", "12");
      label.textContent = strings[state] + " " + (summary[state] || 0);
      chart.append(bar, label);
    });
  }

  function place(row) {
    const tr = build(row);
    const old = body.querySelector('tr[data-session="' + CSS.escape(row.session_id) + '"]');
    if (old) old.replaceWith(tr);
    else {
      const after = [...body.children].find((other) => other.dataset.login > row.login);
      body.insertBefore(tr, after || null);
    }
  }

  function refresh() {
    renderTeams();
    applyFilters();
    renderSummary();
    tickTimes();
  }

  const events = new EventSource("/supervision/wall/events");
  events.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    rows.clear();
    body.replaceChildren();
    data.rows.forEach((row) => { rows.set(row.session_id, row); place(row); });
    summary = data.summary;
    status.textContent = strings.live;
    status.dataset.state = "live";
    refresh();
  });
  events.addEventListener("diff", (event) => {
    const data = JSON.parse(event.data);
    for (const id of data.remove) {
      rows.delete(id);
      body.querySelector('tr[data-session="' + CSS.escape(id) + '"]')?.remove();
    }
    data.upsert.forEach((row) => { rows.set(row.session_id, row); place(row); });
    if (data.summary) summary = data.summary;
    refresh();
  });
  events.onerror = () => { status.textContent = strings.reconnecting; status.dataset.state = "reconnecting"; };
  teamFilter.addEventListener("change", applyFilters);
  stateFilter.addEventListener("change", applyFilters);
  setInterval(tickTimes, 1000);
})();
