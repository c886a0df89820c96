// The control room: one page, a view per hash route, live data over server-sent events.
// rooms.js adds the admin pages (plugins, people, schedules) and charts through window.OC.
// Every piece of data is put in the page with textContent: nothing from the server is HTML.
"use strict";
(function () {
  const view = document.getElementById("view");
  const problem = document.getElementById("problem");
  let csrf = "";
  let approvals = [];
  let overview = null;
  let query = "";

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }
  function when(seconds) { return new Date(seconds * 1000).toLocaleString(); }
  function say(text) { problem.textContent = text; problem.hidden = !text; }

  // Once the session is over (logout, expiry, rights revoked) the page only leaves: its live
  // stream is closed first (a stream the server ends would otherwise reconnect and ask again),
  // no new request is made, and what was still in flight is dropped without a word.
  let events = null;
  let leaving = false;
  function leave() {
    if (events) { events.close(); }
    if (!leaving) { leaving = true; location.replace("login"); }
  }

  async function api(path, options) {
    if (leaving) { throw new Error("logged out"); }
    let r;
    try {
      r = await fetch("api/" + path, Object.assign({ credentials: "same-origin" }, options));
    } catch (e) {
      if (leaving) { throw new Error("logged out"); }  // cut off by leaving the page
      throw e;
    }
    if (r.status === 401) { leave(); throw new Error("logged out"); }
    const data = await r.json();
    if (!r.ok || !data.ok) { throw new Error(data.error || ("HTTP " + r.status)); }
    return data;
  }
  function post(path, body) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
  }

  // A page's data can come back after the admin has moved on (a button's redraw, a live
  // event): it is dropped then, never drawn over the page now shown. `at` is location.hash
  // when the drawing began.
  function show(at, ...nodes) {
    if (location.hash !== at) { return false; }
    view.replaceChildren(...nodes);
    return true;
  }

  const pages = {};
  window.OC = { el: el, api: api, post: post, when: when, say: say, view: view, pages: pages,
    show: show };

  // --- overview -----------------------------------------------------------------------
  function drawOverview() {
    if (!overview) { view.replaceChildren(el("p", "Loading…")); return; }
    const o = overview;
    const table = el("table");
    const rows = [["model", o.model + " (" + o.model_status + ")"], ["queue depth", o.queue_depth],
      ["up since", when(o.started_at)]];
    for (const [name, state] of Object.entries(o.checks)) {
      if (name !== "model") { rows.push([name, state]); } // shown with its name above
    }
    for (const [name, state] of Object.entries(o.connectors)) {
      if (!(name in o.checks)) { rows.push([name, state]); }
    }
    for (const [k, v] of rows) {
      const tr = el("tr");
      tr.append(el("th", k), el("td", v, /^(ok|connected)$/.test(String(v)) ? "good" : ""));
      table.append(tr);
    }
    const failures = el("ul", null, "failures");
    for (const f of o.failures) {
      failures.append(el("li", when(f.at) + " · " + f.conversation + " · " + f.kind + ": " + f.error));
    }
    if (!o.failures.length) { failures.append(el("li", "No recent failures.")); }
    const charts = el("div", null, "charts");
    view.replaceChildren(el("h1", "Overview"), table, charts, el("h2", "Recent failures"), failures);
    if (window.OC.charts) { window.OC.charts(charts); }
  }

  // --- approvals ----------------------------------------------------------------------
  function drawApprovals() {
    const list = el("div", null, "approvals");
    for (const a of approvals) {
      const card = el("article", null, "approval");
      card.dataset.id = a.id;
      card.append(el("h2", "#" + a.id + " from " + (a.user_name || a.user) + " (" + a.user + ")"));
      card.append(el("p", a.conversation + " · " + when(a.created_at), "meta"));
      for (const call of a.calls) {
        card.append(el("h3", call.name + (call.why ? " (" + call.why + ")" : "")));
        card.append(el("pre", call.arguments)); // complete arguments, never cut
      }
      const yes = el("button", "Approve", "approve");
      const no = el("button", "Reject", "reject");
      for (const [button, decision] of [[yes, "approve"], [no, "reject"]]) {
        button.type = "button";
        button.addEventListener("click", async () => {
          yes.disabled = no.disabled = true;
          try {
            await post("approvals/" + a.id, { decision: decision });
            approvals = approvals.filter((x) => x.id !== a.id);
            draw();
          } catch (e) { say(e.message); yes.disabled = no.disabled = false; }
        });
      }
      const actions = el("p", null, "actions");
      actions.append(yes, no);
      card.append(actions);
      list.append(card);
    }
    if (!approvals.length) { list.append(el("p", "Nothing waits for a decision.", "empty")); }
    view.replaceChildren(el("h1", "Approvals"), list);
  }

  // --- audit log ----------------------------------------------------------------------
  async function drawAudit() {
    const check = el("button", "Verify the chain");
    const result = el("p", "", "verify");
    const exportLink = el("a", "Export (JSON Lines)");
    exportLink.href = "api/audit/export";
    exportLink.download = "audit.jsonl";
    check.type = "button";
    check.addEventListener("click", async () => {
      result.textContent = "Checking…";
      try {
        const v = await api("audit/verify");
        result.textContent = v.valid ? "OK: " + v.count + " entries, head " + v.head
          : "BROKEN after " + v.count + " good entries: " + v.problem;
        result.className = v.valid ? "verify good" : "verify bad";
      } catch (e) { result.textContent = e.message; }
    });
    const table = el("table", null, "audit");
    view.replaceChildren(el("h1", "Audit log"), check, exportLink, result, table);
    await fillAudit(table);
  }

  async function fillAudit(table) {  // also on each live `audit` event (the rest stays)
    const data = await api("audit?n=100");
    table.replaceChildren();
    for (const e of data.entries) {
      const tr = el("tr");
      tr.append(el("td", e.seq), el("td", when(e.at)), el("td", e.actor), el("td", e.action),
        el("td", JSON.stringify(e.detail)));
      table.append(tr);
    }
  }

  // --- conversations -----------------------------------------------------------------
  async function drawConversations(key) {
    if (key) { return drawTranscript(key); }
    const search = el("input");
    search.type = "search";
    search.placeholder = "Search chats and messages";
    search.value = query;  // kept when the list redraws itself live
    const list = el("ul", null, "conversations");
    async function load() {
      const data = await api("conversations?q=" + encodeURIComponent(search.value));
      list.replaceChildren();
      for (const c of data.conversations) {
        const a = el("a", c.key);
        a.href = "#conversations/" + encodeURIComponent(c.key);
        const li = el("li");
        li.append(a, el("span", " · " + c.messages + " messages · " + when(c.last), "meta"));
        list.append(li);
      }
      if (!data.conversations.length) { list.append(el("li", "No conversations.")); }
    }
    search.addEventListener("change", () => { query = search.value; load().catch((e) => say(e.message)); });
    view.replaceChildren(el("h1", "Conversations"), search, list);
    await load();
  }

  async function drawTranscript(key) {
    const at = location.hash;
    const data = await api("transcript?conversation=" + encodeURIComponent(key));
    const back = el("a", "← all conversations");
    back.href = "#conversations";
    const log = el("div", null, "transcript");
    for (const item of data.items) {
      const box = el("article", null, "said " + item.role);
      box.append(el("p", (item.who || item.role) + " · " + when(item.at) + " · " + item.status, "meta"));
      box.append(el("p", item.text, "text"));
      if (item.error) { box.append(el("p", item.error, "bad")); }
      log.append(box);
      for (const step of item.tools || []) { // what the agent did before answering
        const tool = el("article", null, "said tool " + step.kind);
        tool.append(el("p", (step.kind === "call" ? "tool call " : "tool result ") + step.name, "meta"),
          el("pre", step.text));
        log.append(tool);
      }
      if (item.votes && Object.keys(item.votes).length) {
        box.append(el("p", Object.entries(item.votes).map(([e, n]) => e + " " + n).join("  "), "votes"));
      }
    }
    show(at, back, el("h1", key), log);
  }

  // --- prompts ------------------------------------------------------------------------
  async function drawPrompts() {
    const at = location.hash;
    const data = await api("prompts");
    const list = el("div");
    for (const v of data.variants) {
      const card = el("article", null, "variant " + v.status);
      card.append(el("h2", "#" + v.id + " " + v.name + " v" + v.version + " [" + v.status + "]"));
      const rate = v.up + v.down ? Math.round(100 * v.up / (v.up + v.down)) + "% 👍" : "no ratings";
      let line = v.scope + " · " + v.author + " · 👍 " + v.up + " 👎 " + v.down + " (" + rate +
        ") · " + v.served + " replies · " + v.failures + " failures";
      if (v.p_better !== null) { line += " · P(better than the active one) " + v.p_better; }
      card.append(el("p", line, "meta"), el("pre", v.template));
      const actions = el("p", null, "actions");
      for (const action of ["promote", "pin", "unpin", "retire", "rollback"]) {
        const b = el("button", action);
        b.type = "button";
        b.addEventListener("click", async () => {
          try { await post("prompts/" + v.id, { action: action }); await drawPrompts(); }
          catch (e) { say(e.message); }
        });
        actions.append(b);
      }
      card.append(actions);
      list.append(card);
    }
    if (!data.variants.length) { list.append(el("p", "No prompt variants yet.")); }
    show(at, el("h1", "Prompts"), list);
  }

  // --- routing and live updates -------------------------------------------------------
  function draw() {
    const route = location.hash.slice(1) || "overview";
    const page = route.split("/")[0];
    say("");
    document.getElementById("count").textContent = approvals.length ? String(approvals.length) : "";
    for (const a of document.querySelectorAll("nav a")) {
      a.classList.toggle("here", a.getAttribute("href") === "#" + page);
    }
    if (page === "approvals") { drawApprovals(); }
    else if (page === "audit") { drawAudit().catch((e) => say(e.message)); }
    else if (page === "conversations") {
      const key = decodeURIComponent(route.slice("conversations/".length));
      drawConversations(route.includes("/") ? key : "").catch((e) => say(e.message));
    }
    else if (page === "prompts") { drawPrompts().catch((e) => say(e.message)); }
    else if (pages[page]) { pages[page](route).catch((e) => say(e.message)); }
    else { drawOverview(); }
  }

  function live() {
    events = new EventSource("api/events");
    events.addEventListener("approvals", (e) => {
      approvals = JSON.parse(e.data).approvals;
      document.body.dataset.live = "true";
      document.getElementById("count").textContent = approvals.length ? String(approvals.length) : "";
      if (location.hash.slice(1) === "approvals") { drawApprovals(); }
    });
    events.addEventListener("overview", (e) => {
      overview = JSON.parse(e.data);
      if ((location.hash.slice(1) || "overview") === "overview") { drawOverview(); }
    });
    // The other pages hear that their data changed and redraw (never while the admin types).
    function redraw(page, always) {
      const route = location.hash.slice(1) || "overview";
      if (route.split("/")[0] !== page || (!always && route.includes("/"))) { return; }
      const typing = document.activeElement;
      if (typing && typing.tagName === "INPUT" && typing.value && view.contains(typing)) { return; }
      draw();
    }
    for (const page of ["plugins", "people", "schedules"]) {
      events.addEventListener(page, () => redraw(page, false));
    }
    events.addEventListener("conversations", () => redraw("conversations", true));
    events.addEventListener("prompts", () => redraw("prompts", false));
    events.addEventListener("audit", () => {
      const table = view.querySelector("table.audit");
      if (table && (location.hash.slice(1) === "audit")) { fillAudit(table).catch((e) => say(e.message)); }
    });
    events.addEventListener("reload", () => { draw(); });  // missed too much: draw afresh
    events.addEventListener("error", async () => {
      // The stream ends when the session does: find out whether that is why.
      if (leaving) { return; }
      try { await api("session"); } catch (e) { /* api() went to the login page */ }
    });
  }

  async function start() {
    const me = await api("session");
    csrf = me.csrf;
    document.getElementById("who").textContent = me.name + " (" + me.user + ")";
    document.getElementById("logout").addEventListener("click", async () => {
      if (events) { events.close(); }  // before the session ends under it
      try { await post("logout"); } catch (e) { /* leaving anyway: nothing to show */ }
      leave();
    });
    window.addEventListener("hashchange", draw);
    draw();
    live();
    document.body.dataset.ready = "true";
  }
  start().catch((e) => say(e.message));
})();
