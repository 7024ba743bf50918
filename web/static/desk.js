// The live event's admin page and team pages: over the page's own
// WebSocket (named by the element's data-desk-ws) arrive
// frames {id, html}, rendered by the server, that replace the contents of
// the element with that id: the help queue whenever a team asks for help
// or a flag is claimed or resolved, the teams table (members connected,
// recent messages, help, submission) then and every few seconds with the
// analytics figures, a team's help card when its request is claimed or
// resolved.
// Waiting times count up every second. The socket reconnects
// after a drop (the server sends the whole queue on connect, so nothing is
// missed).
(function () {
  "use strict";
  // The element naming the socket: the admin page's help queue heading,
  // or a team page's help card.
  var live = document.querySelector("[data-desk-ws]");
  if (!live) return;
  var status = document.getElementById("help-live");

  function fmt(s) {
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  function tick() {
    var now = Math.floor(Date.now() / 1000);
    document.querySelectorAll(".wait[data-since]").forEach(function (el) {
      el.textContent = fmt(Math.max(0, now - parseInt(el.dataset.since, 10)));
    });
  }
  setInterval(tick, 1000);

  var delay = 500;
  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + live.dataset.deskWs;
    var ws = new WebSocket(url);
    ws.onopen = function () {
      delay = 500;
      if (status) {
        status.textContent = "live";
        status.className = "muted";
      }
    };
    ws.onmessage = function (ev) {
      var f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      var el = document.getElementById(f.id);
      if (el) el.innerHTML = f.html;
      tick();
    };
    ws.onclose = function () {
      if (status) {
        status.textContent = "reconnecting…";
        status.className = "problem";
      }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
