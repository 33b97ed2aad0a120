// The agent's seat page around a seat's viewer: the picture scaled to the window, the watermark laid over the picture
// itself, fullscreen, a connection-quality dot, the agent's work state with its timer, urgent bulletins, and
// reconnection with a fresh one-time token when the websocket drops while the session lives.
//
// The page's own module makes the connection (`connect(token)`): noVNC's RFB object on an X11 seat, the Guacamole
// adapter (guacamole_seat.js) with the same surface on an RDP seat; how either is loaded stays in the template.
// Timings a bench reads are kept on `window.seatTimings` (bench/bench_seat_viewer.py).

const STATUS_POLL_MS = 5000;
const FIRST_POLL_AFTER_CONNECT_MS = 500;  // a warm seat's first frame follows its connection within ~0.1 s
const RECONNECT_DELAYS_MS = [0, 500, 1000, 2000, 4000, 8000];
// A connection that drops sooner than this after it connected is a flap. A seat that flaps as many times in a row as
// there are tries (an application crashing at start, a host that logs the session off) is given up, not reconnected
// for ever with a new launch, recording and logon every few hundred milliseconds; one steady connection between
// drops starts the count again. The tries of each drop are unchanged.
const STEADY_CONNECTION_MS = 30000;
const QUALITY_LIMITS_MS = {good: 150, fair: 400};
// The element that takes the seat's picture's scaled size: noVNC's canvas, or the element the Guacamole adapter
// marks (its canvases keep the seat's own size under a transform). An element comes before its descendants in
// querySelector's document order, so the mark wins over the canvases inside it.
const PICTURE = "[data-seat-picture], canvas";

export class SeatViewer {
  constructor(script, connect) {
    this.script = script;
    this.connect = connect;
    this.app = script.dataset.app;
    this.csrf = script.dataset.csrf;
    this.stage = document.getElementById("stage");
    this.screen = document.getElementById("screen");
    this.watermark = document.getElementById("watermark");
    this.status = document.getElementById("status");
    this.quality = document.getElementById("quality");
    this.rfb = null;
    this.leaving = false;
    this.attempt = 0;
    this.connectedAt = null;
    this.flaps = 0;
    this.stateSince = null;
    this.clockSkewMs = 0;
    window.seatTimings = {reconnects: [], disconnectedAt: null};
    this.fitObserver = new ResizeObserver(() => this.fitWatermark());
    this.fitObserver.observe(this.stage);
    window.addEventListener("resize", () => this.fitWatermark());
    window.addEventListener("pagehide", () => { this.leaving = true; });
    this.bindFullscreen();
    this.bindStateForm();
    this.bindSignOut();
    setInterval(() => this.tickTimer(), 1000);
    this.polling = false;
  }

  // The status bar's and the watchers' polls start a moment after the seat first connects, not with the page: at page
  // start their two requests crossed the gateway while it relayed the RFB handshake and the first frame, and delayed
  // both (docs/broker.md, "Loading the seat page"). The first poll after the connection also grades its quality.
  startPolling() {
    if (this.polling) return;
    this.polling = true;
    setTimeout(() => {
      this.pollStatus();
      setInterval(() => this.pollStatus(), STATUS_POLL_MS);
      this.pollWatchers();
      setInterval(() => this.pollWatchers(), STATUS_POLL_MS);
    }, FIRST_POLL_AFTER_CONNECT_MS);
  }

  start(token) {
    const rfb = this.connect(token);
    this.rfb = rfb;
    // The seat is a fixed-size display: scaling it to the window keeps all of it visible without scrollbars,
    // larger on a large screen, smaller on a laptop.
    rfb.scaleViewport = true;
    rfb.addEventListener("connect", () => this.connected());
    rfb.addEventListener("disconnect", () => this.disconnected(rfb));
    const picture = () => this.screen.querySelector(PICTURE);
    const watch = () => { if (picture()) this.fitObserver.observe(picture()); else requestAnimationFrame(watch); };
    watch();
  }

  connected() {
    window.seatConnected = true;
    const timings = window.seatTimings;
    if (timings.disconnectedAt !== null) {
      timings.reconnects.push(performance.now() - timings.disconnectedAt);
      timings.disconnectedAt = null;
    }
    this.attempt = 0;
    this.connectedAt = performance.now();
    this.setStatus("connected", this.script.dataset.connected);
    this.fitWatermark();
    this.startPolling();
  }

  disconnected(rfb) {
    if (rfb !== this.rfb) return;
    window.seatConnected = false;
    if (this.leaving) return;
    if (window.seatTimings.disconnectedAt === null) window.seatTimings.disconnectedAt = performance.now();
    if (this.connectedAt !== null) {  // it was up: a flap, or a steady connection that starts the count again
      this.flaps = performance.now() - this.connectedAt < STEADY_CONNECTION_MS ? this.flaps + 1 : 0;
      this.connectedAt = null;
    }
    if (this.flaps >= RECONNECT_DELAYS_MS.length) {
      this.setStatus("ended", this.script.dataset.ended);
      return;
    }
    this.reconnect();
  }

  async reconnect() {
    if (this.attempt >= RECONNECT_DELAYS_MS.length) {
      this.setStatus("ended", this.script.dataset.ended);
      return;
    }
    this.setStatus("reconnecting", this.script.dataset.reconnecting);
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAYS_MS[this.attempt]));
    this.attempt += 1;
    let answer;
    try {
      answer = await fetch(`/agent/apps/${encodeURIComponent(this.app)}/reconnect`, {
        method: "POST", headers: {"X-CSRF-Token": this.csrf, "Accept": "application/json"}, cache: "no-store",
      });
    } catch (error) {
      this.reconnect();  // the network itself is down: try again after the next delay
      return;
    }
    const body = await answer.json().catch(() => ({}));
    if (answer.ok && body.token) {
      this.start(body.token);
      return;
    }
    if (answer.status === 401) {
      this.sessionEnded(body);
      return;
    }
    if (answer.status >= 500) {
      this.reconnect();
      return;
    }
    this.setStatus("ended", body.message || this.script.dataset.ended);
  }

  // The session is over (signed out elsewhere, ended by an administrator, timed out): say why, in the person's
  // language (the gateway's 401 carries it), and offer to sign in again instead of retrying.
  sessionEnded(refusal) {
    this.leaving = true;
    this.setStatus("ended", refusal.ended_message || this.script.dataset.sessionEnded);
    this.status.dataset.ended = refusal.ended || "";
    const signIn = document.getElementById("sign-in-again");
    signIn.href = "/login" + (refusal.ended ? "?ended=" + encodeURIComponent(refusal.ended) : "");
    signIn.hidden = false;
  }

  setStatus(state, text) {
    this.status.dataset.state = state;
    this.status.textContent = text;
    if (state !== "connected") this.showQuality(state === "reconnecting" ? "poor" : "unknown", null);
  }

  // The watermark covers exactly the scaled picture: the viewer centres it in the stage and leaves black bars.
  fitWatermark() {
    const shown = this.screen.querySelector(PICTURE);
    if (!shown) return;
    const picture = shown.getBoundingClientRect();
    const stage = this.stage.getBoundingClientRect();
    Object.assign(this.watermark.style, {
      left: `${picture.left - stage.left}px`, top: `${picture.top - stage.top}px`,
      width: `${picture.width}px`, height: `${picture.height}px`,
    });
    window.seatTimings.fittedAt = performance.now();
  }

  bindFullscreen() {
    const button = document.getElementById("fullscreen");
    const label = () => {
      button.textContent = document.fullscreenElement ? button.dataset.leave : button.dataset.enter;
      button.setAttribute("aria-pressed", document.fullscreenElement ? "true" : "false");
    };
    button.addEventListener("click", async () => {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await document.documentElement.requestFullscreen({navigationUI: "hide"});
    });
    document.addEventListener("fullscreenchange", label);
    label();
  }

  bindStateForm() {
    const form = document.getElementById("state-form");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const [state, reason] = String(data.get("choice")).split(":");
      const body = new URLSearchParams({csrf: data.get("csrf"), state, reason: reason || ""});
      await fetch(form.action, {method: "POST", body, redirect: "manual", cache: "no-store"}).catch(() => null);
      this.pollStatus();
    });
  }

  bindSignOut() {
    document.getElementById("sign-out-form").addEventListener("submit", () => { this.leaving = true; });
  }

  // One status request is also the connection-quality probe: its round trip crosses the same tunnel and gateway
  // as the seat's pixels.
  async pollStatus() {
    const started = performance.now();
    let answer;
    try {
      answer = await fetch("/agent/status-bar", {cache: "no-store", headers: {"Accept": "application/json"}});
    } catch (error) {
      this.showQuality("poor", null);
      return;
    }
    const roundTrip = performance.now() - started;
    if (answer.status === 401) {
      this.sessionEnded(await answer.json().catch(() => ({})));
      return;
    }
    if (!answer.ok) return;
    const bar = await answer.json();
    if (window.seatConnected) {
      const grade = roundTrip <= QUALITY_LIMITS_MS.good ? "good" : roundTrip <= QUALITY_LIMITS_MS.fair ? "fair" : "poor";
      this.showQuality(grade, roundTrip);
    }
    this.showState(bar);
    this.showUrgent(bar.urgent);
  }

  showQuality(grade, roundTrip) {
    this.quality.dataset.quality = grade;
    const text = this.quality.dataset[grade];
    document.getElementById("quality-text").textContent =
      roundTrip === null ? text : `${text} · ${this.quality.dataset.latency.replace("{ms}", Math.round(roundTrip))}`;
  }

  showState(bar) {
    const box = document.getElementById("work-state");
    box.dataset.state = bar.state;
    box.dataset.reason = bar.reason;
    document.getElementById("work-state-label").textContent =
      bar.reason_label ? `${bar.label} (${bar.reason_label})` : bar.label;
    this.clockSkewMs = Date.now() - Date.parse(bar.now);
    this.stateSince = bar.since ? Date.parse(bar.since) : null;
    const choice = document.getElementById("state-choice");
    const current = bar.reason ? `${bar.state}:${bar.reason}` : bar.state;
    if ([...choice.options].some((option) => option.value === current)) choice.value = current;
    this.tickTimer();
  }

  tickTimer() {
    const timer = document.getElementById("state-timer");
    if (this.stateSince === null) { timer.textContent = ""; return; }
    const seconds = Math.max(0, Math.floor((Date.now() - this.clockSkewMs - this.stateSince) / 1000));
    const hours = Math.floor(seconds / 3600);
    const minutes = String(Math.floor((seconds % 3600) / 60)).padStart(hours ? 2 : 1, "0");
    const rest = String(seconds % 60).padStart(2, "0");
    timer.textContent = hours ? `${hours}:${minutes}:${rest}` : `${minutes}:${rest}`;
    timer.dateTime = `PT${seconds}S`;
  }

  showUrgent(items) {
    const urgent = document.getElementById("urgent");
    urgent.textContent = items.map((item) => `${item.title}: ${item.body}`).join(" · ");
    urgent.hidden = items.length === 0;
  }

  // Who watches this screen, when policy says to tell the agent (supervision's ScreenWatch rows).
  async pollWatchers() {
    const watched = document.getElementById("watched");
    try {
      const answer = await fetch("/agent/seats/watchers", {cache: "no-store"});
      if (!answer.ok) return;
      const notices = (await answer.json()).notices;
      watched.textContent = notices.join(" ");
      watched.hidden = notices.length === 0;
    } catch (error) { /* the next poll tries again */ }
  }
}
