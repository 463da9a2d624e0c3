// Lookup page: show, while typing, the UTC instant a time means in the chosen zone.
// The server decides (it refuses times that DST makes ambiguous or impossible); this is a preview.
"use strict";
(function () {
  const form = document.getElementById("lookup-form");
  if (!form) return;
  const time = form.querySelector("#f-time");
  const zone = form.querySelector("#f-tz");
  const out = document.getElementById("utc-preview");
  const pattern = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})?$/;

  function offsetMinutes(instant, tz) {
    // Minutes to add to UTC to get the zone's wall clock at that instant.
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(new Date(instant));
    const get = (type) => Number(parts.find((p) => p.type === type).value);
    const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
    return Math.round((wall - Math.floor(instant / 1000) * 1000) / 60000);
  }

  function iso(ms, fraction) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, (fraction || "") + "Z");
  }

  function preview() {
    const text = time.value.trim();
    const m = pattern.exec(text);
    if (!text) { out.textContent = ""; return; }
    if (!m) { out.textContent = "Write the time as 2026-03-14 21:07:33 (seconds included)."; return; }
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    let instant;
    if (m[8]) {
      const sign = m[8][0] === "-" ? -1 : 1;
      const offset = /^[Zz]$/.test(m[8]) ? 0 : sign * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6)));
      instant = wall - offset * 60000;
    } else {
      const tz = zone.value.trim() || "UTC";
      try {
        const first = wall - offsetMinutes(wall, tz) * 60000;
        instant = wall - offsetMinutes(first, tz) * 60000;
      } catch (e) {
        out.textContent = "Unknown time zone “" + tz + "”.";
        return;
      }
    }
    out.textContent = "That time is the instant " + iso(instant, m[7]) + " (UTC)" + (m[8] ? ": its offset is used." : ", if it happened once in that zone.");
  }

  time.addEventListener("input", preview);
  zone.addEventListener("input", preview);
  if (!out.dataset.server) preview();

  // After a lookup, take the reader to the answer.
  const heading = document.getElementById("answer-heading") || document.getElementById("error-summary");
  if (heading) heading.focus();
})();
