// The reports' charts, drawn by Chart.js (served by the gateway itself, /lib/chart.umd.min.js): agent time per work
// state over the period as stacked bars, home and on-site side by side on the same scale, and logged-in against break
// time per agent. Every time axis reads in h:mm, so the figures compare at a glance with the table below.
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const strings = JSON.parse(document.getElementById("report-strings").textContent);
  const COLOURS = { ready: "#2e7d32", on_call: "#0b5cab", wrap_up: "#8e6c00", break: "#b3261e", offline: "#6b7785" };
  const hm = (seconds) => {
    const minutes = Math.round(seconds / 60);
    return Math.floor(minutes / 60) + ":" + String(minutes % 60).padStart(2, "0");
  };
  // Gridlines at whole quarter hours, hours or days, at most about eight of them.
  const STEPS = [900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 432000, 864000];
  const niceStep = (most) => STEPS.find((step) => most / step <= 8) || STEPS[STEPS.length - 1];
  const timeAxis = (most, extra) => ({
    beginAtZero: true,
    suggestedMax: most,
    title: { display: true, text: strings.time_axis },
    ticks: { callback: (value) => hm(value), stepSize: niceStep(most) },
    ...extra,
  });
  const tooltip = { callbacks: { label: (item) => item.dataset.label + ": " + hm(item.raw) } };
  const largest = Math.max(
    900,
    ...data.labels.map((_, i) =>
      Math.max(...Object.values(data.series).map((byState) => data.states.reduce((sum, s) => sum + byState[s][i], 0)))),
  );
  for (const [where, id] of [["home", "chart-home"], ["on_site", "chart-on-site"]]) {
    new Chart(document.getElementById(id), {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.states.map((state) => ({
          label: strings[state], data: data.series[where][state], backgroundColor: COLOURS[state], stack: "states",
        })),
      },
      options: {
        animation: false,
        scales: { x: { stacked: true }, y: timeAxis(largest, { stacked: true, max: niceStep(largest) * Math.ceil(largest / niceStep(largest)) }) },
        plugins: { tooltip },
      },
    });
  }
  const agents = document.getElementById("chart-agents");
  if (agents) {
    new Chart(agents, {
      type: "bar",
      data: {
        labels: data.agents.map((a) => a.name + " (" + strings[a.location] + ")"),
        datasets: [
          { label: strings.logged_in, data: data.agents.map((a) => a.logged_in), backgroundColor: "#0b5cab" },
          { label: strings.break, data: data.agents.map((a) => a.break), backgroundColor: "#b3261e" },
        ],
      },
      options: {
        indexAxis: "y", animation: false, maintainAspectRatio: false,
        scales: { x: timeAxis(Math.max(900, ...data.agents.map((a) => a.logged_in)), {}) },
        plugins: { tooltip },
      },
    });
  }
})();
