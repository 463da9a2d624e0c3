// Batch page: upload with a progress bar, then show the answer page in place; on the result page
// turn the data: link into a Blob download (browsers cap data: URLs at a few MiB).
"use strict";
(function () {
  function blobDownloads(root) {
    const link = root.querySelector("#download");
    if (!link || !link.href.startsWith("data:")) return;
    const comma = link.href.indexOf(",");
    const binary = atob(link.href.slice(comma + 1));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    link.href = URL.createObjectURL(new Blob([bytes], { type: "text/csv" }));
  }

  function show(html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const main = doc.querySelector("main");
    if (!main) { document.open(); document.write(html); document.close(); return; }
    document.querySelector("main").replaceWith(main);
    document.title = doc.title;
    blobDownloads(document);
    const focus = main.querySelector("#result-heading, #error-summary, h1");
    if (focus) { focus.setAttribute("tabindex", "-1"); focus.focus(); }
    wire();
  }

  function wire() {
    const form = document.getElementById("batch-form");
    if (!form || form.dataset.wired) return;
    form.dataset.wired = "1";
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return; // the plain form post works too
      event.preventDefault();
      const box = document.getElementById("batch-progress");
      const bar = document.getElementById("batch-bar");
      const label = document.getElementById("batch-label");
      const button = form.querySelector("button[type=submit]");
      box.hidden = false;
      button.disabled = true;
      bar.value = 0;
      label.textContent = "Uploading…";
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        bar.value = Math.round((e.loaded / e.total) * 100);
        label.textContent = "Uploading: " + bar.value + " %";
      });
      xhr.upload.addEventListener("load", function () {
        bar.removeAttribute("value"); // indeterminate while the server answers
        label.textContent = "Answering every row and recording the batch…";
      });
      xhr.addEventListener("load", function () {
        const type = xhr.getResponseHeader("content-type") || "";
        if (type.startsWith("text/html")) { show(xhr.responseText); return; }
        // Refused before any page could answer (e.g. 413: the file is over the size limit).
        let detail = "";
        try { detail = JSON.parse(xhr.responseText).detail || ""; } catch (e) { detail = ""; }
        bar.value = 0;
        button.disabled = false;
        label.textContent = "Not answered (" + xhr.status + "): " + (detail || "the server refused the upload") + ".";
      });
      xhr.addEventListener("error", function () {
        box.hidden = true;
        button.disabled = false;
        label.textContent = "";
        alert("The upload failed (network). Nothing was answered; try again.");
      });
      xhr.send(new FormData(form));
    });
  }

  wire();
  blobDownloads(document);
  const heading = document.getElementById("result-heading") || document.getElementById("error-summary");
  if (heading) heading.focus();
})();
