// The exports page: reloads every two seconds while an export runs, so its
// progress and per-contact failures show without a click.
(function () {
  "use strict";
  if (!document.getElementById("refreshing")) return;
  setTimeout(function () { location.reload(); }, 2000);
})();
