// The login page: the token is in the URL fragment (never sent to the server by the browser).
// It is posted once, on a click, so a link preview that runs no script cannot spend it.
"use strict";
(function () {
  const button = document.getElementById("login");
  const status = document.getElementById("status");
  let token = "";

  function take() { // on load, and when a new link is opened in this same tab
    if (location.hash.length < 2) { return; }
    token = decodeURIComponent(location.hash.slice(1));
    history.replaceState(null, "", location.pathname); // out of the address bar and history
    button.hidden = false;
    button.disabled = false;
    status.textContent = "";
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Logging in…";
    try {
      const r = await fetch("api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: token }),
        credentials: "same-origin",
      });
      const data = await r.json();
      if (r.ok && data.ok) { location.replace("./"); return; }
      status.textContent = data.error || "Login failed.";
    } catch (e) {
      status.textContent = "Cannot reach the server.";
    }
    button.hidden = true;
  });
  window.addEventListener("hashchange", take);
  take();
  document.body.dataset.ready = "true";
})();
