// The /media page: uploads the chosen file as the request body (so it
// streams to storage), refreshes the progress of unfinished videos every
// two seconds, and plays ready videos with hls.js (or natively where the
// browser plays HLS itself).
(function () {
  "use strict";
  var form = document.getElementById("media-upload");
  var list = document.getElementById("media-items");
  if (!form || !list) return;

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = form.querySelector("input[type=file]").files[0];
    if (!file) return;
    var bar = document.getElementById("media-upload-progress");
    var status = document.getElementById("media-upload-status");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRF-Token", form.querySelector("input[name=csrf_token]").value);
    xhr.setRequestHeader("X-File-Name", encodeURIComponent(file.name));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Uploading " + file.name + "…";
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    };
    xhr.onload = function () {
      bar.hidden = true;
      status.textContent = xhr.responseText.trim();
      form.reset();
      refresh();
    };
    xhr.onerror = function () {
      bar.hidden = true;
      status.textContent = "The upload failed: the connection was lost. Try again.";
    };
    xhr.send(file);
  });

  function pending() {
    return list.querySelector('.media-item:not([data-state="ready"]):not([data-state="failed"])') !== null;
  }

  // refresh replaces the cards that are not playing yet, so a video being
  // watched is never reset.
  function refresh() {
    fetch("/media/items", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var tpl = document.createElement("template");
        tpl.innerHTML = html;
        var fresh = tpl.content.getElementById("media-items");
        if (!fresh) return;
        var cards = fresh.querySelectorAll(".media-item");
        if (cards.length === 0) return;
        var empty = list.querySelector("p.muted");
        if (empty) empty.remove();
        var prev = null;
        cards.forEach(function (card) {
          var old = document.getElementById(card.id);
          if (old && old.dataset.state === "ready" && card.dataset.state === "ready") {
            prev = old;
            return;
          }
          if (old) old.replaceWith(card);
          else if (prev) prev.after(card);
          else list.prepend(card);
          prev = card;
        });
        attachPlayers();
      })
      .catch(function () {});
  }

  function attachPlayers() {
    list.querySelectorAll("video[data-src]:not([data-attached])").forEach(function (v) {
      v.dataset.attached = "1";
      var src = v.dataset.src;
      if (window.Hls && window.Hls.isSupported()) {
        var hls = new window.Hls({ enableWorker: false });
        hls.loadSource(src);
        hls.attachMedia(v);
      } else if (v.canPlayType("application/vnd.apple.mpegurl")) {
        v.src = src;
      } else {
        v.insertAdjacentHTML("afterend", '<p class="error">This browser cannot play HLS video.</p>');
      }
    });
  }

  window.addEventListener("load", attachPlayers);
  setInterval(function () { if (pending()) refresh(); }, 2000);
})();
