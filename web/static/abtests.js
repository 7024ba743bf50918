// A/B test pages: show only the title fields of the chosen number of
// variants, and upload each variant's thumbnail straight to blob storage
// as the store signed it: an S3 form POST whose policy bounds size and
// type, or a PUT to the edge's signed URL (never through our forms), then load the
// test's page again so the server's checks of the stored file (type, size,
// dimensions) show. A plain reload would resubmit the form that rendered
// the page (a refused start, for one).
(function () {
  var variants = document.getElementById("variants");
  if (variants && variants.tagName === "SELECT") {
    var show = function () {
      var n = parseInt(variants.value, 10);
      document.querySelectorAll(".variant-title").forEach(function (el) {
        el.hidden = parseInt(el.dataset.variant, 10) >= n;
      });
    };
    variants.addEventListener("change", show);
    show();
  }
  document.querySelectorAll("input[data-upload]").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files[0];
      var status = input.closest("td").querySelector(".upload-status");
      if (!file) return;
      if (file.type !== "image/jpeg" && file.type !== "image/png") {
        status.textContent = "Choose a JPEG or PNG image (this is " + (file.type || "unknown") + ").";
        status.className = "upload-status problem";
        return;
      }
      if (file.size > parseInt(input.dataset.max, 10)) {
        status.textContent = "This image is " + (file.size / 1048576).toFixed(1) + " MB; YouTube takes at most 2 MB.";
        status.className = "upload-status problem";
        return;
      }
      status.textContent = "Uploading…";
      status.className = "upload-status muted";
      var up = JSON.parse(input.dataset.upload);
      var req = { method: up.method, body: file, headers: { "Content-Type": file.type } };
      if (up.method === "POST") {
        // S3 form: the policy's fields, the file's type, the file last.
        var form = new FormData();
        Object.keys(up.fields || {}).forEach(function (k) { form.append(k, up.fields[k]); });
        form.append("Content-Type", file.type);
        form.append("file", file);
        req = { method: "POST", body: form };
      }
      fetch(up.url, req)
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          location.assign(input.dataset.page);
        })
        .catch(function (e) {
          status.textContent = "Upload failed (" + e.message + "); try again.";
          status.className = "upload-status problem";
        });
    });
  });
})();
