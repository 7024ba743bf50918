// The live event app (/events/{id}/live): counts down to the start in the
// lobby and reloads into the stage when it comes (and into the history at
// the end); plays the stream with hls.js (natively where the browser plays
// HLS itself) and shows how far behind live the viewer is; posts a
// heartbeat at load and every minute while the event runs, which is how
// connected time is counted.
(function () {
  "use strict";
  var app = document.getElementById("live-app");
  if (!app) return;
  var start = Number(app.dataset.start), end = Number(app.dataset.end);
  // The server's clock decides the phase: keep its offset from ours.
  var skew = Number(app.dataset.now) - Date.now();
  function now() { return Date.now() + skew; }
  var phase = app.dataset.phase;

  function two(n) { return (n < 10 ? "0" : "") + n; }
  function left(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d > 0 ? d + " d " : "") + two(h) + ":" + two(m) + ":" + two(s % 60);
  }

  // Phase changes: the page is rendered for its phase, so it reloads.
  var countdown = document.getElementById("countdown");
  setInterval(function () {
    var t = now();
    if (countdown) countdown.textContent = left(start - t);
    if ((phase === "lobby" && t >= start) || (phase === "live" && t >= end)) {
      phase = "";
      // A little after the boundary, so the server agrees it has passed.
      setTimeout(function () { location.reload(); }, 1500);
    }
  }, 1000);

  // Heartbeats: one at load, then one a minute, only during the event.
  // Every tab sends them; the server counts one per person and minute.
  var first = true;
  function beat() {
    var t = now();
    if (phase !== "live" || t < start || t >= end) return;
    var body = first ? "first=1" : "";
    fetch(app.dataset.heartbeat, {
      method: "POST", credentials: "same-origin", redirect: "manual",
      headers: { "X-CSRF-Token": app.dataset.csrf, "Content-Type": "application/x-www-form-urlencoded" },
      body: body,
    }).then(function (r) {
      if (r.status === 204) {
        first = false;
        app.dataset.heartbeats = String(Number(app.dataset.heartbeats || 0) + 1);
      }
    }).catch(function () { /* offline: the next minute tries again */ });
  }
  beat();
  setInterval(beat, 60000);

  // The stream.
  var video = document.getElementById("live-video");
  var delay = document.getElementById("live-delay");
  if (!video || !delay) return;
  var src = video.dataset.src, hls = null;
  if (window.Hls && window.Hls.isSupported()) {
    // No worker: the site's policy allows scripts from itself only.
    hls = new window.Hls({ enableWorker: false, lowLatencyMode: true });
    hls.on(window.Hls.Events.ERROR, function (_, data) {
      if (!data.fatal) return;
      delay.textContent = "The stream is unavailable (" + data.details + "); retrying…";
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else setTimeout(function () { hls.loadSource(src); }, 3000);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = src;
  } else {
    delay.textContent = "This browser cannot play the live stream (HLS).";
    return;
  }
  video.play && video.play().catch(function () { /* autoplay refused: the controls start it */ });

  // How far behind live the viewer is: hls.js estimates it (latency);
  // natively, the distance to the end of what can be played.
  function behind() {
    if (hls) return typeof hls.latency === "number" && hls.latency > 0 ? hls.latency : null;
    var r = video.seekable;
    return r && r.length ? r.end(r.length - 1) - video.currentTime : null;
  }
  setInterval(function () {
    var s = behind();
    if (s === null || video.readyState < 2) return;
    video.dataset.delay = s.toFixed(1);
    delay.textContent = (video.paused ? "Paused · " : "Live · ") + s.toFixed(1) + " s behind live";
  }, 1000);
})();
