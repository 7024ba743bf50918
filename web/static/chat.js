// The live event chat (web/chat ChatPanel): one WebSocket per panel. Frames
// carry messages rendered and escaped by the server, each with its stream
// sequence; the client keeps the last sequence it has and reconnects with
// ?after=<seq> (backing off up to 15 s), so a dropped connection or a
// restarted edge resumes without a gap or a repeat. Scrolling to the top
// (or the button) asks for the 20 messages before the first one shown.
// Posts carry an id of the client's making: a post resent after a
// reconnect is stored once.
(function () {
  "use strict";
  if (window.jetfleetChat) return; // the panel may be on a page twice
  window.jetfleetChat = true;

  function newID() {
    var a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.from(a, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    });
  }

  function panel(el) {
    var log = el.querySelector(".chat-log");
    var status = el.querySelector(".chat-status");
    var earlierBtn = el.querySelector(".chat-earlier");
    var form = el.querySelector(".chat-form");
    var errorBox = el.querySelector(".chat-error");
    var last = 0, first = 0, more = true, loadingEarlier = false;
    var ws = null, backoff = 500, outbox = []; // posts not yet acknowledged

    function fragment(items) {
      var t = document.createElement("template");
      t.innerHTML = items.map(function (it) { return it.html; }).join("");
      localTimes(t.content);
      return t.content;
    }
    function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 60; }

    function append(items) {
      items = items.filter(function (it) { return it.seq > last; });
      if (!items.length) return;
      var stick = nearBottom();
      log.appendChild(fragment(items));
      last = items[items.length - 1].seq;
      if (!first) first = items[0].seq;
      if (stick) log.scrollTop = log.scrollHeight;
      earlierBtn.hidden = !more;
    }
    function prepend(items, hasMore) {
      loadingEarlier = false;
      more = hasMore;
      earlierBtn.hidden = !more;
      items = items.filter(function (it) { return !first || it.seq < first; });
      if (!items.length) return;
      var h = log.scrollHeight;
      log.insertBefore(fragment(items), log.firstChild);
      first = items[0].seq;
      log.scrollTop += log.scrollHeight - h; // keep what the reader was looking at
    }
    function earlier() {
      if (loadingEarlier || !more || !first || !ws || ws.readyState !== 1) return;
      loadingEarlier = true;
      ws.send(JSON.stringify({ type: "earlier", before: first }));
    }
    function showError(msg) {
      if (!errorBox) { status.textContent = msg; return; }
      errorBox.textContent = msg;
      errorBox.hidden = !msg;
    }

    function connect() {
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + el.dataset.chatUrl;
      if (last) url += "&after=" + last;
      ws = new WebSocket(url);
      ws.onmessage = function (ev) {
        var f = JSON.parse(ev.data);
        switch (f.type) {
          case "hello":
            backoff = 500;
            // Where this socket starts: resume from here if it drops
            // before the first message arrives.
            if (!last && f.after) last = f.after;
            status.textContent = "";
            if (f.read_only && form) form.hidden = true;
            outbox.forEach(function (p) { ws.send(JSON.stringify(p)); });
            break;
          case "messages": append(f.items); break;
          case "earlier": prepend(f.items, f.more); break;
          case "ack":
            outbox = outbox.filter(function (p) { return p.id !== f.id; });
            break;
          case "error":
            if (f.id) outbox = outbox.filter(function (p) { return p.id !== f.id; });
            loadingEarlier = false;
            showError(f.error);
            break;
        }
      };
      ws.onclose = function (ev) {
        status.textContent = ev.reason ? "Reconnecting (" + ev.reason + ")…" : "Reconnecting…";
        var wait = backoff * (0.5 + Math.random());
        backoff = Math.min(backoff * 2, 15000);
        setTimeout(connect, wait);
      };
    }

    log.addEventListener("scroll", function () { if (log.scrollTop < 40) earlier(); });
    earlierBtn.addEventListener("click", earlier);
    if (form) {
      var text = form.querySelector("textarea");
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var t = text.value.trim();
        if (!t) return;
        var p = { type: "post", id: newID(), text: t };
        outbox.push(p);
        showError("");
        if (ws && ws.readyState === 1) ws.send(JSON.stringify(p));
        text.value = "";
      });
      text.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
      });
    }
    connect();
  }

  function start() { document.querySelectorAll("section.chat[data-chat-url]").forEach(panel); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
