// The supervisors' wall: a snapshot, then diffs, from /supervision/wall/events (server-sent events).
// The server computes the wall once per tick for every viewer of a team scope; this page only applies diffs,
// filters and sorts the tiles, and counts the seconds in the current state locally (a growing duration costs no
// traffic). "Live" is shown only while the stream is open and heard from: the server sends "alive" every 15 s, so
// silence longer than STALE_MS means the connection is gone even if the browser has not noticed.
(() => {
  "use strict";
  const strings = JSON.parse(document.getElementById("wall-strings").textContent);
  const reasons = JSON.parse(document.getElementById("wall-reasons").textContent);
  const limits = JSON.parse(document.getElementById("wall-limits").textContent);
  const board = document.getElementById("wall-rows");
  const status = document.getElementById("wall-status");
  const teamFilter = document.getElementById("filter-team");
  const stateFilter = document.getElementById("filter-state");
  const sortChoice = document.getElementById("wall-sort");
  const summaryBox = document.getElementById("wall-summary");
  const chart = document.getElementById("wall-chart");
  const watchTemplate = document.getElementById("watch-form");
  const helpTemplate = document.getElementById("help-form");
  const STATES = ["ready", "on_call", "wrap_up", "break", "offline"];
  const COLOURS = { ready: "#2e7d32", on_call: "#0b5cab", wrap_up: "#8e6c00", break: "#b3261e", offline: "#6b7785" };
  const STALE_MS = 40000;
  const PICTURE_MS = 2000;  // the gateway refreshes each seat's picture about this often
  const grid = document.getElementById("screen-grid");
  const screensToggle = document.getElementById("wall-screens");
  const rows = new Map();
  let summary = {};
  let heardAt = 0;

  const seconds = (iso) => (iso ? Math.max(0, (Date.now() - Date.parse(iso)) / 1000) : 0);
  function duration(total) {
    const s = Math.floor(total), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }
  function part(parent, tag, className, text) {
    const element = document.createElement(tag);
    element.className = className;
    if (text !== undefined) element.textContent = text;
    parent.appendChild(element);
    return element;
  }
  function setStatus(state) {
    status.dataset.state = state;
    status.textContent = strings[state];
  }

  function build(row) {
    const tile = document.createElement("article");
    tile.className = "tile";
    tile.dataset.session = row.session_id;
    tile.dataset.login = row.login;
    tile.dataset.state = row.state;
    tile.dataset.since = row.state_since || "";
    tile.dataset.teams = JSON.stringify(row.teams);
    const where = row.on_site ? strings.on_site : strings.home;
    part(tile, "div", "who", row.name + " (" + row.login + ")").title = row.name + " (" + row.login + ")";
    let state = strings[row.state] + (row.reason ? " (" + (reasons[row.reason] || row.reason) + ")" : "");
    if (row.break_too_long) state += " · " + strings.break_too_long;
    part(tile, "div", "state", state);
    part(tile, "div", "timer");
    part(tile, "div", "meta teams", [row.teams.join(", "), where].filter(Boolean).join(" · "));
    const link = part(tile, "div", "meta link" + (row.link === "down" ? " link-down" : ""), strings.link + ": " + strings[row.link]);
    if (row.handshake_at) link.dataset.handshake = row.handshake_at;
    if (row.voice) part(tile, "div", "meta voice", strings.voice + ": " + row.voice);
    const seat = part(tile, "div", "meta seat", row.seat || strings.no_seat);
    if (row.idle_since) seat.dataset.idle = row.idle_since;  // for tests and tools: when the idle time started
    if (row.watched) part(tile, "div", "meta watched", strings.watched);
    if (row.help_since) {  // the agent asked for help: say since when and on which call, and offer to take it
      tile.dataset.help = row.help_since;
      part(tile, "div", "help-flag", strings.help);
      if (row.help_call) part(tile, "div", "meta help-call", strings.help_call + ": " + row.help_call);
      const answer = helpTemplate.content.firstElementChild.cloneNode(true);
      answer.action = "/supervision/help/" + encodeURIComponent(row.session_id) + "/answer";
      tile.appendChild(answer);
    }
    part(tile, "div", "meta today");
    if (row.seat) {  // only a seat can be watched: an agent without one has no "watch" to press
      const form = watchTemplate.content.firstElementChild.cloneNode(true);
      form.action = "/supervision/watch/" + encodeURIComponent(row.session_id);
      tile.appendChild(form);
    }
    return tile;
  }

  function level(state, spent) {
    const limit = limits[state];
    if (!limit) return "ok";
    return spent >= limit[1] ? "red" : spent >= limit[0] ? "amber" : "ok";
  }

  // Only tiles on screen are counted each second (a TV shows some dozens of a thousand); a tile scrolled into view
  // is brought up to date at once. Seconds are shown from the row's own times, so skipping costs nothing.
  const onScreen = new Set();
  const visibility = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) { onScreen.add(entry.target); tickTile(entry.target); } else onScreen.delete(entry.target);
    }
  });
  function tickTile(tile) {
    const row = rows.get(tile.dataset.session);
    if (!row) return;
    const spent = seconds(row.state_since);
    tile.querySelector(".timer").textContent = duration(spent);
    const now = level(row.state, spent);
    if (tile.dataset.level !== now) tile.dataset.level = now;
    const total = { ...row.earlier };
    total[row.state] = (total[row.state] || 0) + spent;
    tile.querySelector(".today").textContent =
      STATES.filter((s) => total[s]).map((s) => strings[s] + " " + duration(total[s])).join(" · ");
    if (row.help_since) tile.querySelector(".help-flag").textContent = strings.help + " " + duration(seconds(row.help_since));
    if (row.idle_since) tile.querySelector(".seat").textContent = row.seat + " · " + strings.idle + " " + duration(seconds(row.idle_since));
  }
  function tickTimes() {
    for (const tile of onScreen) if (tile.isConnected) tickTile(tile); else onScreen.delete(tile);
    if (status.dataset.state === "live" && Date.now() - heardAt > STALE_MS) setStatus("stale");
  }

  function applyFilters() {
    const team = teamFilter.value, state = stateFilter.value;
    for (const tile of board.children) {
      const teams = JSON.parse(tile.dataset.teams);
      tile.hidden = Boolean((team && !teams.includes(team)) || (state && tile.dataset.state !== state));
    }
    for (const figure of grid.children) {
      figure.hidden = tiles.get(figure.dataset.session)?.hidden ?? true;
    }
  }

  // The screen wall: a picture per seat, read view-only by the gateway (one connection per seat for all viewers);
  // clicking one opens the full watch. Nothing here sends input anywhere: an <img> has no way to.
  function renderGrid() {
    const seated = [...board.children].filter((tile) => rows.get(tile.dataset.session)?.seat);
    const wanted = new Set(seated.map((tile) => tile.dataset.session));
    for (const figure of [...grid.children]) if (!wanted.has(figure.dataset.session)) figure.remove();
    for (const tile of seated) {
      const id = tile.dataset.session;
      let figure = grid.querySelector('[data-session="' + CSS.escape(id) + '"]');
      if (!figure) {
        figure = document.createElement("figure");
        figure.dataset.session = id;
        figure.dataset.login = tile.dataset.login;
        figure.title = strings.open_watch;
        const img = document.createElement("img");
        img.alt = tile.dataset.login;
        img.onload = () => { figure.dataset.picture = "shown"; figure.dataset.loading = ""; figure.dataset.loads = String(Number(figure.dataset.loads || 0) + 1); };
        img.onerror = () => { figure.dataset.picture = "none"; figure.dataset.loading = ""; };
        figure.append(img, document.createElement("figcaption"));
        figure.addEventListener("click", () => tile.querySelector("form")?.requestSubmit());
      }
      figure.querySelector("figcaption").textContent = tile.querySelector(".who").textContent + " · " + tile.querySelector(".state").textContent;
      grid.appendChild(figure);  // keeps the tiles' order
    }
  }
  function reloadPictures() {
    if (grid.hidden) return;
    for (const figure of grid.children) {
      if (figure.hidden || figure.dataset.loading) continue;
      if (figure.dataset.picture === "none" && Date.now() - Number(figure.dataset.tried || 0) < 5 * PICTURE_MS) continue;
      figure.dataset.loading = "1";
      figure.dataset.tried = String(Date.now());
      // ?node= names the node that runs the seat: behind the balancer the request goes there, the one node that can
      // read that screen, whichever node serves this page.
      const node = rows.get(figure.dataset.session)?.seat_node;
      figure.querySelector("img").src = "/supervision/wall/screens/" + encodeURIComponent(figure.dataset.session)
        + "?at=" + Date.now() + (node ? "&node=" + encodeURIComponent(node) : "");
    }
  }

  const ORDERS = {
    name: (a, b) => (a.dataset.login < b.dataset.login ? -1 : a.dataset.login > b.dataset.login ? 1 : 0),
    state: (a, b) => STATES.indexOf(a.dataset.state) - STATES.indexOf(b.dataset.state) || ORDERS.name(a, b),
    help: (a, b) => (Date.parse(a.dataset.help) || Infinity) - (Date.parse(b.dataset.help) || Infinity) || ORDERS.name(a, b),
    longest: (a, b) => (Date.parse(a.dataset.since) || 0) - (Date.parse(b.dataset.since) || 0) || ORDERS.name(a, b),
  };
  function applySort() {
    const sorted = [...board.children].sort(ORDERS[sortChoice.value] || ORDERS.name);
    if (sorted.some((tile, i) => board.children[i] !== tile)) board.append(...sorted);
  }

  function renderTeams() {
    const teams = new Set();
    for (const row of rows.values()) row.teams.forEach((t) => teams.add(t));
    const known = new Set([...teamFilter.options].map((o) => o.value));
    for (const team of [...teams].sort()) if (!known.has(team)) teamFilter.add(new Option(team, team));
  }

  function renderSummary() {
    summaryBox.replaceChildren();
    for (const key of ["total", ...STATES, "help", "link_down", "break_too_long"]) {
      const box = part(summaryBox, "div", "count");
      box.dataset.count = key;
      part(box, "b", "", String(summary[key] || 0));
      box.append(strings[key]);
    }
    renderChart();
  }

  // Agents per state on a scale counted in whole agents (Chart.js, served by the gateway itself).
  let distribution = null;
  function renderChart() {
    const counts = STATES.map((s) => summary[s] || 0);
    if (distribution) {
      distribution.data.datasets[0].data = counts;
      distribution.update("none");
      return;
    }
    distribution = new Chart(chart, {
      type: "bar",
      data: {
        labels: STATES.map((s) => strings[s]),
        datasets: [{ label: strings.agents, data: counts, backgroundColor: STATES.map((s) => COLOURS[s]) }],
      },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, title: { display: true, text: strings.agents }, ticks: { precision: 0 } } },
      },
    });
  }

  const tiles = new Map();  // session id → its tile
  function place(row) {
    const tile = build(row);
    const old = tiles.get(row.session_id);
    if (old) {
      visibility.unobserve(old);
      onScreen.delete(old);
      old.replaceWith(tile);
    } else board.appendChild(tile);
    tiles.set(row.session_id, tile);
    visibility.observe(tile);  // the observer's first call brings a tile on screen up to date
  }

  function refresh() {
    renderTeams();
    applySort();
    renderGrid();
    applyFilters();
    renderSummary();
    tickTimes();
  }

  const events = new EventSource("/supervision/wall/events");
  events.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    heardAt = Date.now();
    rows.clear();
    visibility.disconnect();
    onScreen.clear();
    tiles.clear();
    board.replaceChildren();
    data.rows.forEach((row) => { rows.set(row.session_id, row); place(row); });
    summary = data.summary;
    setStatus("live");
    refresh();
  });
  events.addEventListener("diff", (event) => {
    const data = JSON.parse(event.data);
    heardAt = Date.now();
    for (const id of data.remove) {
      rows.delete(id);
      const tile = tiles.get(id);
      if (tile) { visibility.unobserve(tile); onScreen.delete(tile); tile.remove(); tiles.delete(id); }
    }
    data.upsert.forEach((row) => { rows.set(row.session_id, row); place(row); });
    if (data.summary) summary = data.summary;
    setStatus("live");
    refresh();
  });
  events.addEventListener("alive", () => {
    heardAt = Date.now();
    if (status.dataset.state === "stale") setStatus("live");
  });
  events.addEventListener("ended", () => {  // the supervisor's own session ended: nothing here is live any more
    events.close();
    setStatus("ended");
  });
  events.onerror = () => {  // a refused reconnect (signed out) closes the stream for good
    if (status.dataset.state !== "ended") setStatus(events.readyState === EventSource.CLOSED ? "ended" : "reconnecting");
  };
  teamFilter.addEventListener("change", applyFilters);
  stateFilter.addEventListener("change", applyFilters);
  sortChoice.addEventListener("change", () => { applySort(); renderGrid(); });
  screensToggle.addEventListener("change", () => { grid.hidden = !screensToggle.checked; reloadPictures(); });
  setInterval(reloadPictures, PICTURE_MS);
  document.getElementById("wall-fullscreen").addEventListener("click", () => {
    const board = document.getElementById("wallboard");
    if (document.fullscreenElement) document.exitFullscreen();
    else board.requestFullscreen();
  });
  setInterval(tickTimes, 1000);
})();
