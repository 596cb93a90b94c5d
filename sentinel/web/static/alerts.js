// Live alerts: poll /alerts/feed every second and add new rows from the <template>.
// Data go in with textContent only: nothing from the feed is ever parsed as HTML.
(function () {
  "use strict";
  const table = document.getElementById("alerts");
  const tpl = document.getElementById("alert-template");
  if (!table || !tpl) return;
  const body = document.getElementById("alert-rows");
  let last = Number(table.dataset.lastId || "0");

  function add(a) {
    if (document.getElementById("alert-" + a.id)) return;
    const row = tpl.content.firstElementChild.cloneNode(true);
    row.id = "alert-" + a.id;
    for (const el of row.querySelectorAll("[data-f]")) {
      el.textContent = String(a[el.dataset.f] ?? "");
    }
    for (const form of row.querySelectorAll("form[data-action]")) {
      form.action = "/alerts/" + Number(a.id) + "/" + form.dataset.action;
    }
    const empty = document.getElementById("no-alerts");
    if (empty) empty.remove();
    body.prepend(row);
    last = Math.max(last, Number(a.id));
    table.dataset.lastId = String(last);
  }

  async function poll() {
    try {
      const r = await fetch("/alerts/feed?after=" + last, { credentials: "same-origin" });
      if (r.ok) {
        const doc = await r.json();
        for (const a of doc.alerts || []) add(a);
      }
    } catch (e) {
      // the centre is restarting or the network is away: try again next second
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
