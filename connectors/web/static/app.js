// opencomputer web chat. No framework, no build step, no innerHTML: every text the server or
// the model wrote reaches the page through textContent or the small Markdown renderer below,
// which only ever creates elements it names itself.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const form = $("composer");
  const input = $("text");
  const sendButton = $("send");
  const errorLine = $("error");
  const statusLine = $("status");
  const VOTES = ["👍", "👎"];
  const PLACEHOLDER = "…";
  const nodes = new Map(); // message id -> element
  let csrf = null;
  let maxChars = 8000;
  let typing = null;

  // --- Markdown, safely: a subset rendered into DOM nodes --------------------------------
  const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s\n][^*\n]*\*)|(\[[^\]\n]+\]\([^)\s]+\))/;

  function inline(parent, text) {
    while (text) {
      const m = INLINE.exec(text);
      if (!m) {
        parent.append(text);
        return;
      }
      if (m.index > 0) parent.append(text.slice(0, m.index));
      const token = m[0];
      if (m[1]) {
        const code = document.createElement("code");
        code.textContent = token.slice(1, -1);
        parent.append(code);
      } else if (m[2]) {
        const strong = document.createElement("strong");
        inline(strong, token.slice(2, -2));
        parent.append(strong);
      } else if (m[3]) {
        const em = document.createElement("em");
        inline(em, token.slice(1, -1));
        parent.append(em);
      } else {
        const close = token.indexOf("](");
        link(parent, token.slice(1, close), token.slice(close + 2, -1));
      }
      text = text.slice(m.index + token.length);
    }
  }

  function link(parent, label, target) {
    let url = null;
    try {
      url = new URL(target);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) {
      parent.append(`[${label}](${target})`); // javascript:, data:… stay visible text
      return;
    }
    const a = document.createElement("a");
    a.href = url.href;
    a.rel = "noopener noreferrer nofollow";
    a.target = "_blank";
    a.textContent = label;
    parent.append(a);
  }

  function markdown(text) {
    const root = document.createDocumentFragment();
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    let para = null;
    let list = null;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line.trimStart().startsWith("```")) {
        const body = [];
        for (i++; i < lines.length && !lines[i].trimStart().startsWith("```"); i++) {
          body.push(lines[i]);
        }
        const pre = document.createElement("pre");
        const code = document.createElement("code");
        code.textContent = body.join("\n");
        pre.append(code);
        root.append(pre);
        para = list = null;
        continue;
      }
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
      if (bullet || numbered) {
        const tag = bullet ? "UL" : "OL";
        if (!list || list.tagName !== tag) {
          list = document.createElement(tag);
          root.append(list);
        }
        const li = document.createElement("li");
        inline(li, (bullet || numbered)[1]);
        list.append(li);
        para = null;
        continue;
      }
      list = null;
      if (!line.trim()) {
        para = null;
        continue;
      }
      const heading = /^#{1,6}\s+(.*)$/.exec(line);
      if (heading) {
        const p = document.createElement("p");
        const strong = document.createElement("strong");
        inline(strong, heading[1]);
        p.append(strong);
        root.append(p);
        para = null;
        continue;
      }
      if (para) {
        para.append(document.createElement("br"));
      } else {
        para = document.createElement("p");
        root.append(para);
      }
      inline(para, line);
    }
    return root;
  }

  // --- the conversation ------------------------------------------------------------------
  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  }

  function show(message) {
    const follow = nearBottom();
    let node = nodes.get(message.id);
    if (!node) {
      node = document.createElement("div");
      node.className = `msg ${message.role === "bot" ? "bot" : "user"}`;
      node.dataset.id = message.id;
      const body = document.createElement("div");
      body.className = "body";
      node.append(body);
      if (message.role === "bot") node.append(votes(message.id));
      nodes.set(message.id, node);
      log.append(node);
    }
    node.classList.remove("pending", "failed");
    const body = node.querySelector(".body");
    if (message.role === "bot") {
      body.replaceChildren(markdown(message.text));
      node.querySelector(".votes").hidden = message.text === PLACEHOLDER;
      if (message.vote) setVote(node, message.vote);
      stopTyping();
    } else {
      body.textContent = message.text;
    }
    if (typing) log.append(typing);
    if (follow) log.scrollTop = log.scrollHeight;
    return node;
  }

  function votes(id) {
    const box = document.createElement("div");
    box.className = "votes";
    for (const emoji of VOTES) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = emoji;
      button.dataset.emoji = emoji;
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-label", emoji === "👍" ? "Good answer" : "Bad answer");
      button.addEventListener("click", () => vote(id, emoji, button));
      box.append(button);
    }
    return box;
  }

  function setVote(node, emoji) {
    for (const button of node.querySelectorAll(".votes button")) {
      button.setAttribute("aria-pressed", String(button.dataset.emoji === emoji));
    }
  }

  function replaceAll(messages) {
    const unsent = [...nodes.values()].filter((n) => n.classList.contains("pending"));
    nodes.clear();
    log.replaceChildren();
    for (const message of messages) show(message);
    for (const node of unsent) {
      if (!nodes.has(node.dataset.id)) {
        nodes.set(node.dataset.id, node);
        log.append(node);
      }
    }
    log.scrollTop = log.scrollHeight;
  }

  function startTyping() {
    if (typing) return;
    typing = document.createElement("div");
    typing.className = "typing";
    typing.textContent = "typing…";
    log.append(typing);
    setTimeout(stopTyping, 6000);
  }

  function stopTyping() {
    if (typing) typing.remove();
    typing = null;
  }

  // --- talking to the server ---------------------------------------------------------------
  function fail(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  async function post(path, payload) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf || "" },
        body: JSON.stringify(payload),
      });
    } catch {
      return "could not reach the server; check the connection and send again";
    }
    if (response.ok) return null;
    try {
      return (await response.json()).error || `error ${response.status}`;
    } catch {
      return `error ${response.status}`;
    }
  }

  async function vote(id, emoji, button) {
    const added = button.getAttribute("aria-pressed") !== "true";
    const problem = await post("chat/reactions", { message_id: id, emoji, added });
    fail(problem || "");
    if (!problem) setVote(nodes.get(id), added ? emoji : null);
  }

  async function send(text) {
    if (text.length > maxChars) {
      fail(`This message is longer than ${maxChars} characters; shorten it.`);
      return;
    }
    const id = crypto.randomUUID();
    const node = show({ id, role: "user", text });
    node.classList.add("pending");
    input.value = "";
    grow();
    const problem = await post("chat/messages", { id, text });
    fail(problem || "");
    node.classList.remove("pending");
    if (problem) node.classList.add("failed");
  }

  function connect() {
    const events = new EventSource("chat/events");
    events.addEventListener("open", () => {
      statusLine.textContent = "connected";
    });
    events.addEventListener("history", (e) => {
      replaceAll(JSON.parse(e.data).messages);
      statusLine.textContent = "connected";
      document.body.dataset.ready = "true";
    });
    events.addEventListener("message", (e) => show(JSON.parse(e.data)));
    events.addEventListener("typing", startTyping);
    events.addEventListener("error", () => {
      statusLine.textContent = "reconnecting…";
      if (events.readyState === EventSource.CLOSED) setTimeout(start, 3000);
    });
  }

  async function start() {
    try {
      const response = await fetch("chat/session", { credentials: "same-origin", cache: "no-store" });
      const session = await response.json();
      if (!response.ok) {  // e.g. 429: too many new sessions from this address
        statusLine.textContent = "not connected";
        fail(session.error || `error ${response.status}`);
        return;
      }
      csrf = session.csrf;
      maxChars = session.max_chars || maxChars;
    } catch {
      statusLine.textContent = "offline; retrying…";
      setTimeout(start, 3000);
      return;
    }
    sendButton.disabled = false;
    connect();
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = `${input.scrollHeight}px`;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text && csrf) send(text);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", grow);
  start();
})();
