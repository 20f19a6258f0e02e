// Modelyard console: the little behaviour that is not htmx. No inline script anywhere (the CSP forbids it).
"use strict";
document.addEventListener("submit", function (event) {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);

// Runs table: tick 2-10 runs, then "Compare" sends their ids.
document.addEventListener("change", function (event) {
  if (!event.target.matches("input[data-run-pick]")) return;
  const picked = Array.from(document.querySelectorAll("input[data-run-pick]:checked")).map(function (box) { return box.value; });
  const button = document.getElementById("compare-button");
  if (button) {
    button.disabled = picked.length < 2 || picked.length > 10;
    button.textContent = "Compare " + picked.length + " runs";
    const field = document.getElementById("compare-ids");
    if (field) field.value = picked.join(",");
  }
});

// Traffic editor: keep the total visible while weights are typed.
document.addEventListener("input", function (event) {
  if (!event.target.matches("input[data-weight]")) return;
  let total = 0;
  document.querySelectorAll("input[data-weight]").forEach(function (box) { total += Number(box.value) || 0; });
  const out = document.getElementById("weight-total");
  if (out) {
    out.textContent = total + "%";
    out.className = total === 100 ? "ok" : "bad";
  }
});

// Uploads: say at once when a file is over the server's limit (the server refuses it anyway, with 413).
document.addEventListener("change", function (event) {
  const input = event.target;
  if (!input.matches("input[type=file]")) return;
  const form = input.closest("form[data-max-bytes]");
  if (!form) return;
  const limit = Number(form.getAttribute("data-max-bytes"));
  const tooBig = Array.from(input.files || []).some(function (file) { return file.size > limit; });
  const warning = document.getElementById("size-warning");
  if (warning) warning.hidden = !tooBig;
  form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = tooBig; });
});
