// git-mirror dashboard: keeps the page current without a reload.
// Every few seconds it asks the server for the same page's <main> (?fragment=main) and
// swaps it in when it changed. Without this script the page is complete, only not live.
(function () {
  "use strict";
  var body = document.body;
  var every = Math.max(parseFloat(body.getAttribute("data-refresh")) || 2, 0.5) * 1000;
  var main = document.getElementById("board");
  var live = document.getElementById("live");
  var announce = document.getElementById("announce");
  if (!main || !window.fetch) { return; }
  var last = main.innerHTML;
  var busy = false;
  var state = heading();

  // The overall state, as its heading says it ("Healthy", "Needs attention", "Failing").
  function heading() {
    var h = main.querySelector("h1");
    return h ? h.textContent.trim() : "";
  }

  function url() {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "main");
    return u.toString();
  }

  function stamp(text, stale) {
    if (!live) { return; }
    live.textContent = text;
    live.classList.toggle("stale", !!stale);
  }

  function focusedId() {
    var el = document.activeElement;
    return el && main.contains(el) && el.getAttribute("href");
  }

  function tick() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url(), { credentials: "same-origin", cache: "no-store",
                   headers: { "Accept": "text/html" } })
      .then(function (res) {
        // The server's own error page (500, HTML) is shown like any other state.
        var page = (res.headers.get("Content-Type") || "").indexOf("text/html") === 0;
        if (!res.ok && !(res.status === 500 && page)) { throw new Error("HTTP " + res.status); }
        var title = res.headers.get("X-Page-Title");
        if (title) { document.title = decodeURIComponent(title); }
        return res.text();
      })
      .then(function (html) {
        if (html !== last) {
          var href = focusedId();
          main.innerHTML = html;
          last = html;
          var now = heading();
          if (announce && now !== state) {  // screen readers hear a change of state only
            announce.textContent = now;
          }
          state = now;
          if (href) {  // keep keyboard focus on the same link
            var again = main.querySelector('a[href="' + href.replace(/"/g, "") + '"]');
            if (again) { again.focus(); }
          }
        }
        stamp("live · updated " + new Date().toLocaleTimeString(), false);
      })
      .catch(function (err) {
        stamp("not updating: " + err.message + " (retrying)", true);
      })
      .then(function () { busy = false; });
  }

  window.setInterval(tick, every);
  document.addEventListener("visibilitychange", tick);
})();
