// The control room's admin pages (plugins, people, schedules) and the overview's charts.
// Uses window.OC from app.js. Everything from the server goes in with textContent or as an SVG
// attribute value: nothing is parsed as HTML.
"use strict";
(function () {
  const OC = window.OC;
  const { el, api, post, when, say } = OC;
  const SVG = "http://www.w3.org/2000/svg";

  function button(text, cls, onClick) {
    const b = el("button", text, cls);
    b.type = "button";
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await onClick(); } catch (e) { say(e.message); } finally { b.disabled = false; }
    });
    return b;
  }
  function line(label, value) {
    const p = el("p", null, "meta");
    p.append(el("strong", label + ": "), document.createTextNode(value));
    return p;
  }

  // --- charts (inline SVG built node by node) ----------------------------------------------
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) { node.setAttribute(k, String(v)); }
    return node;
  }
  function barChart(title, values, start, step, cls) {
    const W = 600, H = 90, top = 12, max = Math.max(1, ...values);
    const chart = svg("svg", { viewBox: "0 0 " + W + " " + (H + 16), role: "img",
      class: "chart " + cls });
    chart.setAttribute("aria-label", title + ", last hour, per minute, highest " + max);
    const w = W / values.length;
    values.forEach((v, i) => {
      const h = Math.round((H - top) * v / max);
      const bar = svg("rect", { x: (i * w + 0.5).toFixed(1), y: H - h, width: (w - 1).toFixed(1),
        height: h, class: "bar" });
      const tip = svg("title");
      tip.textContent = new Date((start + i * step) * 1000).toLocaleTimeString() + ": " + v;
      bar.append(tip);
      chart.append(bar);
    });
    chart.append(svg("line", { x1: 0, y1: H, x2: W, y2: H, class: "axis" }));
    const label = (x, anchor, text) => {
      const t = svg("text", { x: x, y: H + 13, "text-anchor": anchor, class: "label" });
      t.textContent = text;
      return t;
    };
    const peak = svg("text", { x: 2, y: 10, class: "label" });
    peak.textContent = String(max);
    chart.append(peak, label(0, "start", "60 min ago"), label(W, "end", "now"));
    const box = el("figure", null, "chart-box");
    const sum = values.reduce((a, b) => a + b, 0);
    box.append(el("figcaption", title + " per minute (last hour: " + sum + ")"), chart);
    return box;
  }
  let activity = null, fetched = 0;
  OC.charts = function (container) {
    function drawCharts() {
      if (!activity) { return; }
      container.replaceChildren(
        barChart("Turns", activity.turns, activity.start, activity.step, "turns"),
        barChart("Errors", activity.errors, activity.start, activity.step, "errors"));
    }
    drawCharts();
    if (Date.now() - fetched > 15000) {  // the overview redraws often: fetch at most every 15 s
      fetched = Date.now();
      api("activity").then((data) => { activity = data; if (container.isConnected) { drawCharts(); } })
        .catch((e) => say(e.message));
    }
  };

  setInterval(() => {  // the chart moves on even when nothing else on the overview changes
    const charts = document.querySelector(".charts");
    if (charts) { OC.charts(charts); }
  }, 30000);

  // --- plugins ----------------------------------------------------------------------------
  OC.pages.plugins = async function () {
    const at = location.hash;
    const data = await api("plugins");
    const list = el("div");
    for (const p of data.plugins) {
      const card = el("article", null, "plugin card");
      card.dataset.name = p.name;
      card.append(el("h2", p.name + " " + p.version + (p.new ? " — new, waits for consent" : "")));
      card.append(el("p", p.description));
      const chats = Object.entries(p.chats).map(([c, on]) => c + "=" + (on ? "on" : "off"));
      card.append(line("source", p.source + (p.sandboxed ? ", sandboxed" : ", runs in the server")));
      card.append(line("enabled", (p.enabled ? "everywhere" : "off") +
        (chats.length ? " (chats: " + chats.join(", ") + ")" : "")));
      const perms = p.permissions;
      card.append(line("network", perms.network.join(", ") || "none"));
      card.append(line("files", "read " + (perms.files_read.join(", ") || "none") + "; write " +
        (perms.files_write.join(", ") || "its data folder only")));
      card.append(line("programs", perms.process ? "may start programs" : "no"));
      card.append(line("tools", p.tools.join(", ") || "none"));
      const actions = el("p", null, "actions");
      const redraw = () => OC.pages.plugins();
      if (p.new) {
        actions.append(button("Consent: enable" + (Object.keys(p.secrets).length
          ? " and grant its secrets" : ""), "approve", async () => {
          await post("plugins/" + encodeURIComponent(p.name), { action: "consent" }); await redraw();
        }));
      }
      actions.append(
        button("Enable everywhere", "", async () => { await post("plugins/" + encodeURIComponent(p.name), { action: "enable" }); await redraw(); }),
        button("Disable everywhere", "", async () => { await post("plugins/" + encodeURIComponent(p.name), { action: "disable" }); await redraw(); }));
      card.append(actions);
      const chat = el("input");
      chat.placeholder = "platform:chat_id";
      chat.setAttribute("aria-label", "chat for " + p.name);
      const perChat = el("p", null, "actions");
      for (const [label, action] of [["On in chat", "enable"], ["Off in chat", "disable"]]) {
        perChat.append(button(label, "", async () => {
          await post("plugins/" + encodeURIComponent(p.name), { action: action, chat: chat.value.trim() }); await redraw();
        }));
      }
      card.append(chat, perChat);
      for (const [secret, granted] of Object.entries(p.secrets)) {
        const row = el("p", null, "secret");
        const note = p.secret_notes[secret];  // granted, yet withheld: say why
        row.append(el("code", secret), document.createTextNode(granted ? " granted " : " not granted "),
          el("span", note ? "(" + note + ") " : "", "bad"),
          button(granted ? "Revoke" : "Grant", "", async () => {
            await post("plugins/" + encodeURIComponent(p.name), { action: granted ? "revoke" : "grant", secret: secret });
            await redraw();
          }));
        card.append(row);
      }
      list.append(card);
    }
    for (const b of data.broken) { list.append(el("p", b.name + ": set aside — " + b.reason, "bad")); }
    for (const m of data.mcp) { list.append(el("p", "MCP " + m.name + ": " + (m.enabled ? "on" : "off"), "meta")); }
    if (!data.plugins.length) { list.append(el("p", "No plugins installed.")); }
    OC.show(at, el("h1", "Plugins"), list);
  };

  // --- people -----------------------------------------------------------------------------
  OC.pages.people = async function (route) {
    const person = decodeURIComponent(route.split("/").slice(1).join("/"));
    if (person) { return memories(person); }
    const at = location.hash;
    const data = await api("people");
    const requests = el("div");
    for (const r of data.pairing) {
      const card = el("article", null, "pairing card");
      card.append(el("h3", (r.name || r.user) + " (" + r.user + ")"));
      card.append(el("p", "asked in " + r.chat + " · " + when(r.created_at), "meta"));
      const actions = el("p", null, "actions");
      for (const [label, decision, cls] of [["Allow", "approve", "approve"], ["Deny", "deny", "reject"]]) {
        actions.append(button(label, cls, async () => {
          await post("pairing/" + encodeURIComponent(r.user), { decision: decision });
          await OC.pages.people("people");
        }));
      }
      card.append(actions);
      requests.append(card);
    }
    if (!data.pairing.length) { requests.append(el("p", "No pending pairing requests.", "empty")); }
    const table = el("table", null, "people");
    for (const p of data.people) {
      const tr = el("tr");
      const who = el("td");
      const link = el("a", p.person);
      link.href = "#people/" + encodeURIComponent(p.person);
      who.append(link);
      tr.append(who, el("td", p.accounts.map((a) => a.key + (a.role ? " [" + a.role + "]" : "")).join(", ")),
        el("td", p.memories + " memories"));
      table.append(tr);
    }
    const grants = el("table", null, "grants");
    for (const g of data.grants) {
      const tr = el("tr");
      tr.append(el("td", g.subject), el("td", g.role));
      grants.append(tr);
    }
    OC.show(at, el("h1", "People"), el("h2", "Pairing requests"), requests,
      el("h2", "People and linked accounts"), table, el("h2", "Access grants"), grants);
  };

  async function memories(person) {
    const at = location.hash;
    const data = await api("memories?person=" + encodeURIComponent(person));
    const back = el("a", "← all people");
    back.href = "#people";
    const list = el("ul", null, "memories");
    for (const m of data.memories) {
      const li = el("li");
      li.append(el("span", "#" + m.id + " ", "meta"), el("span", m.text, "text"),
        el("span", " · " + m.learned_in + " · " + when(m.at) + " ", "meta"),
        button("Delete", "reject", async () => {
          await post("memories/" + m.id, { person: person }); await memories(person);
        }));
      list.append(li);
    }
    if (!data.memories.length) { list.append(el("li", "No memories.")); }
    OC.show(at, back, el("h1", "Memories of " + person), list);
  }

  // --- schedules --------------------------------------------------------------------------
  OC.pages.schedules = async function () {
    const at = location.hash;
    const data = await api("schedules");
    const list = el("div");
    for (const s of data.schedules) {
      const card = el("article", null, "schedule card");
      card.append(el("h3", "#" + s.id + " " + (s.action === "run" ? "task" : "reminder") + ": " + s.text));
      card.append(el("p", "next " + when(s.next_run) + (s.repeat ? " · repeats " + s.repeat : "") +
        " · " + s.tz + " · for " + s.user + " (" + s.person + ") in " + s.chat + " · ran " + s.runs + "×", "meta"));
      const actions = el("p", null, "actions");
      actions.append(button("Cancel", "reject", async () => {
        await post("schedules/" + s.id, { action: "cancel" }); await OC.pages.schedules();
      }));
      card.append(actions);
      list.append(card);
    }
    if (!data.schedules.length) { list.append(el("p", "No active schedules.", "empty")); }
    OC.show(at, el("h1", "Schedules"), list);
  };
})();
