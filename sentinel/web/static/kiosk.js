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

  // --- sound: Web Audio tones (no files, no network), optional spoken prompts --------
  // Three cues told apart by ear alone: admit = two rising notes, refuse = two low
  // falling notes, staff = three quick mid notes.  The kiosk unit starts Chromium with
  // --autoplay-policy=no-user-gesture-required; elsewhere the first touch or key
  // unlocks the context (browsers keep it suspended until a gesture).
  const CUES = {
    admit: [[880, 0, 0.12, "sine"], [1320, 0.14, 0.22, "sine"]],
    refuse: [[330, 0, 0.22, "triangle"], [220, 0.26, 0.34, "triangle"]],
    staff: [[660, 0, 0.1, "square"], [660, 0.16, 0.1, "square"], [660, 0.32, 0.1, "square"]],
  };
  const sound = {
    on: body.dataset.sound === "1",
    volume: Math.min(1, Math.max(0, parseFloat(body.dataset.volume) || 0)),
    prompts: body.dataset.prompts === "1",
    log: [],  // {cue, prompt, state, at}: what was played (read by the browser tests)
    spoken: [],  // prompt files started, e.g. "staff-zh"
    ctx: null,
    buffers: {},
    sources: [],  // prompts playing or scheduled: a newer result cuts them off
    cut: 0,
    gen: 0,
  };
  window.sentinelSound = sound;

  function audio() {
    if (!sound.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      sound.ctx = new AC();
    }
    return sound.ctx;
  }
  function unlock() { const c = audio(); if (c && c.state === "suspended") c.resume(); }
  ["pointerdown", "keydown", "touchstart"].forEach((ev) =>
    document.addEventListener(ev, unlock, { passive: true }));

  async function prompt(name) {
    if (name in sound.buffers) return sound.buffers[name];
    sound.buffers[name] = null;
    try {
      const res = await fetch(`/static/sounds/${name}.wav`);
      if (res.ok) sound.buffers[name] = await audio().decodeAudioData(await res.arrayBuffer());
    } catch (_e) { /* no prompt: the tone is enough */ }
    return sound.buffers[name];
  }

  async function play(cue, family) {
    const c = sound.on && sound.volume > 0 ? audio() : null;
    if (!c) return;
    const gen = ++sound.gen;
    for (const old of sound.sources.splice(0)) {
      try { old.stop(); sound.cut += 1; } catch (_e) { /* already ended */ }
    }
    const out = c.createGain();
    out.gain.value = sound.volume;
    out.connect(c.destination);
    const t0 = c.currentTime + 0.02;
    let end = t0;
    for (const [freq, at, dur, type] of CUES[cue] || CUES.staff) {
      const osc = c.createOscillator();
      const env = c.createGain();
      osc.type = type;
      osc.frequency.value = freq;
      env.gain.setValueAtTime(0, t0 + at);
      env.gain.linearRampToValueAtTime(type === "sine" ? 0.6 : 0.35, t0 + at + 0.01);
      env.gain.exponentialRampToValueAtTime(0.001, t0 + at + dur);
      osc.connect(env).connect(out);
      osc.start(t0 + at);
      osc.stop(t0 + at + dur + 0.02);
      end = Math.max(end, t0 + at + dur);
    }
    sound.log.push({ cue, prompt: family, state: c.state, at: Date.now() });
    if (!sound.prompts || !family) return;
    let at = end + 0.15;
    for (const lang of ["zh", "en"]) {
      const buf = await prompt(`${family}-${lang}`);
      if (!buf || gen !== sound.gen) return;  // no file, or a newer result meanwhile
      const src = c.createBufferSource();
      src.buffer = buf;
      src.connect(out);
      at = Math.max(at, c.currentTime);
      src.start(at);
      sound.sources.push(src);
      sound.spoken.push(`${family}-${lang}`);
      at += buf.duration + 0.2;
    }
  }

  function toIdle() {
    if (ticker) { clearInterval(ticker); ticker = null; }
    $("result").hidden = true;
    $("idle").hidden = false;
    body.dataset.state = "idle";
    body.classList.remove("admit", "refuse", "staff");
  }

  function tick() {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    setText("countdown", String(left));
    setText("countdown-en", String(left));
    if (Date.now() >= deadline) toIdle();
  }

  function showDecision(d) {
    const admit = d.verdict === "admit";
    const staff = !admit && d.cue === "staff";
    body.classList.remove("admit", "refuse", "staff");
    body.classList.add(admit ? "admit" : "refuse");
    if (staff) body.classList.add("staff");
    body.dataset.state = admit ? "admit" : "refuse";
    body.dataset.cue = admit ? "admit" : (staff ? "staff" : "refuse");
    $("result").dataset.reason = d.reason;
    $("staff-note").hidden = !staff;
    setText("result-symbol", admit ? "✓" : (staff ? "!" : "×"));
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
    play(body.dataset.cue, d.prompt);
  }

  // A hint (turn the card over): a line on the idle screen for a few seconds; a result
  // shown meanwhile takes the screen as usual.
  let hintTimer = null;
  function showHint(h) {
    setText("hint-zh", h.zh);
    setText("hint-en", h.en);
    $("hint").hidden = false;
    body.dataset.hint = h.hint;
    if (hintTimer) clearTimeout(hintTimer);
    hintTimer = setTimeout(() => { $("hint").hidden = true; body.dataset.hint = ""; }, 5000);
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

  // The demo service's mock pins (sentinel demo --serve); a real device sends none.
  function showPins(p) {
    $("demo-pins").hidden = false;
    setText("pin-lock", p.unlocked ? "开 OPEN" : "锁 locked");
    $("pin-green").classList.toggle("on", !!p.green);
    $("pin-red").classList.toggle("on", !!p.red);
    body.dataset.lock = p.unlocked ? "open" : "locked";
  }

  function connect() {
    const es = new EventSource("/kiosk/events");
    es.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
    es.addEventListener("decision", (e) => showDecision(JSON.parse(e.data)));
    es.addEventListener("pins", (e) => showPins(JSON.parse(e.data)));
    es.addEventListener("hint", (e) => showHint(JSON.parse(e.data)));
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
