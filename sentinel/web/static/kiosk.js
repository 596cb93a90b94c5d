// Sentinel kiosk: live results by server-sent events.  Text goes in with textContent
// only (never innerHTML): reasons and names come from scanned credentials.
"use strict";
(function () {
  const body = document.body;
  const resultS = parseFloat(body.dataset.resultS) || 5;
  const $ = (id) => document.getElementById(id);
  let deadline = 0;
  let ticker = null;

  function setText(id, text) { const el = $(id); if (el) el.textContent = text || ""; }

  function toIdle() {
    if (ticker) { clearInterval(ticker); ticker = null; }
    $("result").hidden = true;
    $("idle").hidden = false;
    body.dataset.state = "idle";
    body.classList.remove("admit", "refuse");
  }

  function tick() {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    setText("countdown", String(left));
    setText("countdown-en", String(left));
    if (Date.now() >= deadline) toIdle();
  }

  function showDecision(d) {
    const admit = d.verdict === "admit";
    body.classList.remove("admit", "refuse");
    body.classList.add(admit ? "admit" : "refuse");
    body.dataset.state = admit ? "admit" : "refuse";
    $("result").dataset.reason = d.reason;
    setText("result-symbol", admit ? "✓" : "✗");
    setText("verdict-zh", admit ? "请进" : "禁止入场");
    setText("verdict-en", admit ? "ADMIT" : "REFUSED");
    setText("reason-zh", d.zh);
    setText("reason-en", d.en);
    setText("result-name", d.name);
    setText("result-warnings", (d.warnings || []).join(" · "));
    $("idle").hidden = true;
    $("result").hidden = false;
    deadline = Date.now() + resultS * 1000;
    if (ticker) clearInterval(ticker);
    ticker = setInterval(tick, 100);
    tick();
  }

  function showStatus(s) {
    $("banner-stale").hidden = !s.stale;
    $("banner-camera").hidden = !s.camera_fault;
    $("banner-alarm").hidden = !s.alarm;
    setText("alarm-zh", s.alarm_zh);
    setText("alarm-en", s.alarm_en);
    setText("fresh-zh", s.fresh_zh);
    setText("fresh-en", s.fresh_en);
    body.dataset.status = "ok";
  }

  function connect() {
    const es = new EventSource("/kiosk/events");
    es.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
    es.addEventListener("decision", (e) => showDecision(JSON.parse(e.data)));
    es.onopen = () => { $("banner-offline").hidden = true; body.dataset.live = "1"; };
    es.onerror = () => { $("banner-offline").hidden = false; body.dataset.live = "0"; };
  }

  function clock() {
    const d = new Date();
    setText("clock", d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
  }

  const ERRORS = {
    bad: "PIN 错误 · Wrong PIN",
    locked: "尝试次数过多，请稍后再试 · Too many tries, wait",
    unset: "未设置 PIN · No PIN set",
    csrf: "请刷新页面 · Reload the page",
    unavailable: "无法开门 · Gate not available",
    reason: "请选择原因 · Choose a reason",
  };

  function setupOverride() {
    const open = $("staff-open");
    if (!open) return;
    const panel = $("override");
    const form = $("override-form");
    open.addEventListener("click", () => { panel.hidden = false; setText("override-msg", ""); $("pin").focus(); });
    $("override-cancel").addEventListener("click", () => { panel.hidden = true; form.pin.value = ""; });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      form.pin.value = "";
      let res;
      try {
        res = await fetch("/kiosk/override", { method: "POST", body: data, credentials: "same-origin" });
      } catch (_err) {
        setText("override-msg", ERRORS.unavailable);
        return;
      }
      const out = await res.json().catch(() => ({ ok: false, error: "unavailable" }));
      if (out.ok) { panel.hidden = true; setText("override-msg", ""); }
      else { setText("override-msg", ERRORS[out.error] || ERRORS.unavailable); }
    });
  }

  toIdle();
  clock();
  setInterval(clock, 1000);
  setupOverride();
  connect();
})();
