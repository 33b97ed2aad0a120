// The home-environment check: real bytes down and up, sequential round trips, and what the browser says of itself.
// Every figure goes to the gateway, which compares it with what it saw on its own side before judging.
"use strict";

(function () {
  const form = document.getElementById("envcheck");
  if (!form) return;
  const csrf = form.dataset.csrf;
  const status = document.getElementById("envcheck-status");

  async function call(url, options) {
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin", ...options });
    if (!response.ok) throw new Error(url.split("?")[0] + " answered " + response.status);
    return response;
  }

  function post(url, body, type) {
    return call(url, { method: "POST", body: body, headers: { "X-CSRF-Token": csrf, "Content-Type": type } });
  }

  async function roundTrips(run, count) {
    const samples = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await (await call("/enrollment/envcheck/ping?run=" + run + "&n=" + i)).text();
      samples.push(performance.now() - started);
    }
    return samples;
  }

  function jitter(samples) {
    let total = 0;
    for (let i = 1; i < samples.length; i++) total += Math.abs(samples[i] - samples[i - 1]);
    return samples.length > 1 ? total / (samples.length - 1) : null;
  }

  function median(samples) {
    const sorted = [...samples].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  }

  async function download(run, size) {
    const started = performance.now();
    const response = await call("/enrollment/envcheck/download?run=" + run + "&bytes=" + size);
    const reader = response.body.getReader();
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
    }
    const seconds = (performance.now() - started) / 1000;
    return { bytes: received, mbps: (received * 8) / seconds / 1e6 };
  }

  async function upload(run, size) {
    const body = new Uint8Array(size);
    for (let offset = 0; offset < size; offset += 65536) {
      crypto.getRandomValues(body.subarray(offset, Math.min(offset + 65536, size)));
    }
    const started = performance.now();
    await (await post("/enrollment/envcheck/upload?run=" + run, body, "application/octet-stream")).json();
    const seconds = (performance.now() - started) / 1000;
    return { bytes: size, mbps: (size * 8) / seconds / 1e6 };
  }

  function device() {
    const hints = navigator.userAgentData;
    return {
      user_agent: navigator.userAgent,
      platform: (hints && hints.platform) || navigator.platform || "",
      screen: screen.width + "x" + screen.height + " @" + window.devicePixelRatio,
      cores: navigator.hardwareConcurrency || null,
      memory_gb: navigator.deviceMemory || null,
    };
  }

  function checklist() {
    return {
      quiet_room: form.elements.quiet_room.checked,
      no_noise: form.elements.no_noise.checked,
      dedicated_line: form.elements.dedicated_line.checked,
      pc_class: form.elements.pc_class.value,
    };
  }

  function figure(value, unit) {
    return value === null || value === undefined ? "—" : Number(value).toFixed(2) + " " + unit;
  }

  function show(result) {
    const units = { download: "Mbit/s", upload: "Mbit/s", latency: "ms", jitter: "ms" };
    const serverKeys = { download: "download_mbps", upload: "upload_mbps", latency: "latency_ms", jitter: "jitter_ms" };
    for (const [name, check] of Object.entries(result.checks)) {
      const row = document.querySelector('#envcheck-result tr[data-check="' + name + '"]');
      if (!row) continue;
      if (units[name]) {
        row.querySelector(".browser").textContent = figure(result.browser[serverKeys[name]], units[name]);
        row.querySelector(".server").textContent = figure(result.server[serverKeys[name]], units[name]);
      }
      const verdict = row.querySelector(".verdict");
      verdict.textContent = check.passed ? form.dataset.passed : form.dataset.failed;
      verdict.dataset.passed = String(check.passed);
    }
    const overall = document.getElementById("envcheck-overall");
    overall.textContent = result.passed ? form.dataset.passed : form.dataset.failed;
    overall.dataset.passed = String(result.passed);
    overall.dataset.serverDownloadBytes = String(result.server.download_bytes);
    overall.dataset.serverUploadBytes = String(result.server.upload_bytes);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = document.getElementById("envcheck-run");
    button.disabled = true;
    status.textContent = form.dataset.running;
    try {
      const plan = await (await post("/enrollment/envcheck/runs", "", "application/x-www-form-urlencoded")).json();
      const samples = await roundTrips(plan.run, plan.round_trips);
      const down = await download(plan.run, plan.download_bytes);
      const up = await upload(plan.run, plan.upload_bytes);
      const report = {
        download_mbps: down.mbps, download_bytes: down.bytes, upload_mbps: up.mbps, upload_bytes: up.bytes,
        latency_ms: median(samples), jitter_ms: jitter(samples), samples_ms: samples,
        device: device(), checklist: checklist(),
      };
      const url = "/enrollment/envcheck/runs/" + plan.run + "/result";
      show(await (await post(url, JSON.stringify(report), "application/json")).json());
      status.textContent = form.dataset.done;
    } catch (error) {
      status.textContent = form.dataset.error + " " + error.message;
    } finally {
      button.disabled = false;
    }
  });
})();
