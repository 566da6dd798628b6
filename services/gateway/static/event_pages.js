/* The calendar's event pages: small comforts on top of forms that work without JavaScript.
 * Copy buttons for the share and feed addresses; the recurrence fields only when the event
 * repeats; the time inputs hidden for all-day events; the event's time in the reader's own zone. */
(function () {
  "use strict";

  document.querySelectorAll(".copy-link").forEach(function (button) {
    const input = button.parentElement.querySelector("input[readonly]");
    if (!input || !navigator.clipboard) { return; }
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(input.value).then(function () {
        button.textContent = "✓ " + label;
        window.setTimeout(function () { button.textContent = label; }, 2000);
      }, function () { input.select(); });
    });
  });

  const freq = document.getElementById("freq");
  if (freq) {
    const repeated = document.querySelector(".recurring-only");
    const sync = function () { repeated.hidden = !freq.value; };
    freq.addEventListener("change", sync);
    sync();
  }
  const allDay = document.getElementById("all-day");
  if (allDay) {
    const syncTimes = function () {
      document.querySelectorAll(".time-field").forEach(function (field) { field.hidden = allDay.checked; });
    };
    allDay.addEventListener("change", syncTimes);
    syncTimes();
  }

  // "Your time": only when the reader's zone is not the event's own.
  const lang = document.documentElement.lang === "ar" ? "ar-MA" : document.documentElement.lang;
  const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  document.querySelectorAll(".viewer-time").forEach(function (node) {
    if (!viewerZone || viewerZone === node.dataset.zone) { return; }
    const format = new Intl.DateTimeFormat(lang, {dateStyle: "medium", timeStyle: "short"});
    const start = new Date(node.dataset.start), end = new Date(node.dataset.end);
    const range = format.formatRange ? format.formatRange(start, end) : format.format(start) + " – " + format.format(end);
    node.textContent = node.dataset.prefix + " " + range + " (" + viewerZone + ")";
    node.hidden = false;
  });
})();
