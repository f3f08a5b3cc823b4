// xnor-edge web view: plain JavaScript, no external files. Text that comes from the
// model file (labels, metadata) is only ever set with textContent, never as HTML, and
// loses its control and format characters (terminal escapes, bidi overrides) first.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const withToken = (url) =>
    token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const $ = (id) => document.getElementById(id);
  const clean = (text) => String(text).replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, "");
  const history = [];
  const HISTORY = 120;
  let results = 0;

  function renderTop(list, top) {
    list.replaceChildren(
      ...top.map((t) => {
        const li = document.createElement("li");
        li.textContent = clean(t.label) + " " + (t.p * 100).toFixed(1) + "%";
        return li;
      })
    );
  }

  function drawChart() {
    const c = $("chart");
    const g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    if (history.length < 2) return;
    const line = (key, color) => {
      const max = Math.max(1, ...history.map((h) => h[key])) * 1.1;
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      history.forEach((h, i) => {
        const x = (i / (HISTORY - 1)) * c.width;
        const y = c.height - (h[key] / max) * (c.height - 4) - 2;
        if (i === 0) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
      g.fillStyle = color;
      g.fillText("max " + max.toFixed(1), key === "fps" ? 4 : c.width / 2, 12);
    };
    line("fps", "#6cf");
    line("ms", "#fc6");
  }

  function onResult(r) {
    results += 1;
    document.body.dataset.results = String(results);
    renderTop($("labels"), r.top);
    $("fps").textContent = r.fps.toFixed(1) + " FPS";
    $("latency").textContent = r.latency_ms.toFixed(1) + " ms";
    $("frame").textContent = "frame " + r.frame;
    history.push({ fps: r.fps, ms: r.latency_ms });
    if (history.length > HISTORY) history.shift();
    drawChart();
  }

  function onStatus(s) {
    const st = $("state");
    st.textContent = s.state;
    st.className = "state " + s.state;
    const err = $("error");
    if (s.state === "error" || s.state === "stalled") {
      err.textContent = "camera " + s.state + (s.error ? ": " + clean(s.error) : "") + " (retrying)";
      err.hidden = false;
      $("fps").textContent = "0 FPS";
    } else {
      err.hidden = true;
      err.textContent = "";
    }
  }

  function showModel(m, camera) {
    const dl = $("model");
    const rows = [
      ["name", clean(m.name)],
      ["variant", m.variant || "-"],
      ["input", m.input_shape.join("x")],
      ["classes", m.labels.length + ": " + m.labels.map(clean).join(", ")],
      ["kernels", m.kernel_isa + " (available: " + m.available_isas.join(", ") + ")"],
      ["threads", String(m.threads)],
      ["MACs", (m.macs / 1e6).toFixed(1) + " M (" + (m.binary_macs / 1e6).toFixed(1) + " M binary)"],
      ["parameters", (m.param_bytes / 1024).toFixed(0) + " KiB"],
      ["library", m.library_version],
    ];
    const training = m.metadata.training || {};
    const acc = (training.accuracy || {}).test_top1_torch;
    if (typeof acc === "number") rows.push(["test top-1", (acc * 100).toFixed(2) + "%"]);
    dl.replaceChildren();
    for (const [k, v] of rows) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = clean(v);
      dl.append(dt, dd);
    }
    $("metadata").textContent = JSON.stringify(m.metadata, null, 2); // escapes control characters
    $("camera").textContent = "camera " + clean(camera);
    if (m.card) {
      $("card").textContent = m.card.replace(/[\p{Cc}\p{Cf}]/gu, (c) => (c === "\n" ? c : ""));
      $("card-box").hidden = false;
    }
  }

  let modelShown = false;
  async function pollStatus() {
    try {
      const r = await fetch("/api/status", { headers, cache: "no-store" });
      const s = await r.json();
      if (!r.ok) throw new Error(s.error || r.statusText);
      onStatus(s);
      if (!modelShown) {
        showModel(s.model, s.camera);
        modelShown = true;
      }
    } catch (e) {
      onStatus({ state: "error", error: "server unreachable (" + e.message + ")" });
    }
  }

  const video = $("video");
  const startVideo = () => {
    video.src = withToken("/video.mjpg?t=" + Date.now());
  };
  video.addEventListener("error", () => setTimeout(startVideo, 2000));
  startVideo();

  const events = new EventSource(withToken("/api/results/stream"));
  events.addEventListener("result", (e) => onResult(JSON.parse(e.data)));
  events.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));

  pollStatus();
  setInterval(pollStatus, 1000);

  $("upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("file").files[0];
    $("upload-error").textContent = "";
    $("upload-result").replaceChildren();
    if (!file) return;
    const body = new FormData();
    body.append("image", file);
    try {
      const r = await fetch("/api/classify", { method: "POST", headers, body });
      const j = await r.json();
      if (!r.ok) throw new Error(j.error || r.statusText);
      renderTop($("upload-result"), j.top);
    } catch (err) {
      $("upload-error").textContent = err.message;
    }
  });
})();
