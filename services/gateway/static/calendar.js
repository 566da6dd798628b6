/* The network's calendar: FullCalendar fed by /api/occurrences, filters, details, three languages.
 *
 * Times are drawn in the viewer's own zone (the device's): a 10:00 training in Safi reads 10:00 to a
 * viewer in Morocco on both sides of the Ramadan clock change, and a meeting set in Paris is drawn at
 * the Moroccan viewer's wall time with its own zone and time shown next to it. Its words come from the
 * server's catalogue (the page's #calendar-words); labels are written by the server. All-day events are
 * whole days wherever one is. Organisers are shown by their association's name, not their slug.
 */
(function () {
  "use strict";

  const FC_LOCALES = {ar: "ar-ma", fr: "fr", en: "en"};

  const root = document.getElementById("calendar");
  if (!root || !window.FullCalendar) { return; }
  const lang = FC_LOCALES[root.dataset.lang] ? root.dataset.lang : "fr";
  // Kinds, statuses and the load error in the page's language, from the server's catalogue (calendar.html).
  const wordsNode = document.getElementById("calendar-words");
  const L = wordsNode ? JSON.parse(wordsNode.textContent) : {kinds: {}, statuses: {}, error: ""};
  const rtl = document.documentElement.dir === "rtl";
  const form = document.getElementById("calendar-filters");
  const dialog = document.getElementById("event-details");

  const namesNode = document.getElementById("association-names");
  const NAMES = namesNode ? JSON.parse(namesNode.textContent) : {};
  const viewerZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const intlLocale = lang === "ar" ? "ar-MA" : lang;


  function filters() {
    const values = {};
    new FormData(form).forEach(function (value, key) { if (value) { values[key] = value; } });
    return values;
  }

  function wall(iso) { return iso.length === 10 ? iso : iso.slice(0, 19); }  // drop the offset

  function dayShift(date, days) { return new Date(date.getTime() + days * 86400000).toISOString(); }

  function loadEvents(info, success, failure) {
    // The view's range is in wall time; widen it by a day so no zone offset hides an edge event.
    const params = new URLSearchParams(Object.assign(
      {start: dayShift(info.start, -1), end: dayShift(info.end, 1)}, filters()));
    // Page by page until `next` is null: a busy month is never cut short.
    function fetchAll(cursor, found) {
      if (cursor) { params.set("cursor", cursor); }
      return fetch("/api/occurrences?" + params.toString(), {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (response) { if (!response.ok) { throw new Error(response.status); } return response.json(); })
        .then(function (page) {
          const all = found.concat(page.items);
          return page.next ? fetchAll(page.next, all) : all;
        });
    }
    fetchAll(null, [])
      .then(function (occurrences) {
        success(occurrences.map(function (o) {
          // Timed: the instant (drawn in the viewer's zone); all-day: the days themselves.
          return {id: o.occurrence_id, groupId: o.event_id, title: o.title,
                  start: o.all_day ? wall(o.start_local) : o.start, end: o.all_day ? wall(o.end_local) : o.end,
                  allDay: o.all_day,
                  classNames: ["tansiq-" + o.kind, "tansiq-" + o.status], extendedProps: o};
        }));
      })
      .catch(function (error) { root.setAttribute("data-error", L.error); failure(error); });
  }

  function ownZoneTime(o) {
    // The event's own wall time and zone, when the viewer lives in another zone.
    if (o.all_day || o.tz === viewerZone) { return ""; }
    const own = new Intl.DateTimeFormat(intlLocale, {hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: o.tz});
    return own.format(new Date(o.start)) + " " + o.tz;
  }

  function whenText(o) {
    let range;
    if (o.all_day) {
      const days = new Intl.DateTimeFormat(intlLocale, {dateStyle: "full", timeZone: "UTC"});
      const start = new Date(wall(o.start_local) + "T00:00:00Z");
      const end = new Date(new Date(wall(o.end_local) + "T00:00:00Z").getTime() - 86400000);  // end is exclusive
      return days.formatRange ? days.formatRange(start, end) : days.format(start) + " – " + days.format(end);
    }
    const format = new Intl.DateTimeFormat(intlLocale, {dateStyle: "full", timeStyle: "short"});
    const start = new Date(o.start), end = new Date(o.end);
    range = format.formatRange ? format.formatRange(start, end) : format.format(start) + " – " + format.format(end);
    const own = ownZoneTime(o);
    return range + " (" + (own || viewerZone) + ")";
  }

  function organiserName(slug) { return NAMES[slug] || slug; }

  function showDetails(event) {
    const o = event.extendedProps;
    document.getElementById("event-title").textContent = o.title;
    document.getElementById("event-when").textContent = whenText(o);
    document.getElementById("event-kind").textContent = L.kinds[o.kind] || o.kind;
    const venue = o.venue ? [o.venue.name, o.venue.address].filter(Boolean).join(", ") + " · " : "";
    document.getElementById("event-where").textContent = venue + o.city;
    document.getElementById("event-organiser").textContent =
      [o.organiser].concat(o.co_organisers || []).map(organiserName).join(", ");
    document.getElementById("event-open").href = "/calendar/events/" + encodeURIComponent(o.event_id) + "?lang=" + lang;
    document.getElementById("event-status").textContent = L.statuses[o.status] || o.status;
    document.getElementById("event-description").textContent = o.description || "";
    document.getElementById("event-ical").href = "/ical/event/" + encodeURIComponent(o.event_id) + ".ics";
    const map = document.getElementById("event-map");
    if (o.venue && o.venue.latitude != null && o.venue.longitude != null) {
      map.hidden = false;
      map.href = "https://www.openstreetmap.org/?mlat=" + o.venue.latitude + "&mlon=" + o.venue.longitude + "#map=17/" +
        o.venue.latitude + "/" + o.venue.longitude;
    } else {
      map.hidden = true;
    }
    if (dialog.open) { return; }
    if (dialog.showModal) { dialog.showModal(); } else { dialog.setAttribute("open", ""); }
  }

  function updateFeedLink() {
    const f = filters();
    const path = f.association ? "/ical/association/" + encodeURIComponent(f.association) + ".ics"
      : f.city ? "/ical/city/" + encodeURIComponent(f.city) + ".ics" : "/ical/network.ics";
    document.getElementById("ical-link").href = "webcal://" + window.location.host + path;
    const address = document.querySelector("#calendar-feed input[readonly]");
    if (address) { address.value = window.location.origin + path; }
  }

  // /calendar?date=...&event=<id> (where /events/<id> sends notifications' readers): open that event
  // once its occurrences are loaded, then never again.
  let pending = new URLSearchParams(window.location.search).get("event");

  function openPending(events) {
    if (!pending) { return; }
    const found = events.find(function (event) { return event.extendedProps.event_id === pending; });
    if (found) {
      pending = null;
      showDetails(found);
    }
  }

  const narrow = window.matchMedia("(max-width: 640px)").matches;
  const views = {month: "dayGridMonth", week: "timeGridWeek", list: "listMonth"};
  const calendar = new FullCalendar.Calendar(root, {
    locale: FC_LOCALES[lang],
    direction: rtl ? "rtl" : "ltr",
    timeZone: "local",
    initialView: views[root.dataset.initialView] || (narrow ? "listMonth" : "dayGridMonth"),
    initialDate: root.dataset.initialDate || undefined,
    headerToolbar: {start: "prev,next today", center: "title", end: "dayGridMonth,timeGridWeek,listMonth"},
    height: "auto",
    dayMaxEvents: narrow ? 2 : 3,  // then "+N more": a busy day keeps its size (height is auto)
    eventTimeFormat: {hour: "2-digit", minute: "2-digit", hour12: false},
    dayHeaderFormat: narrow ? {weekday: "narrow"} : {weekday: "short"},  // seven columns fit a phone
    events: loadEvents,
    eventClick: function (info) { info.jsEvent.preventDefault(); showDetails(info.event); },
    eventsSet: openPending,
    // FullCalendar's arrow icons say role="img" without a text; the button around them has its title.
    datesSet: function () {
      root.querySelectorAll(".fc-icon[role=img]").forEach(function (icon) { icon.setAttribute("aria-hidden", "true"); });
    },
    eventDidMount: function (info) {
      const own = ownZoneTime(info.event.extendedProps);
      const title = info.el.querySelector(".fc-event-title, .fc-list-event-title");
      if (title) { title.dir = "auto"; }  // a French title in an Arabic page reads (and is cut) left to right
      if (own && title) {
        const zone = document.createElement("span");
        zone.className = "tansiq-zone";
        zone.dir = "ltr";
        zone.textContent = " (" + own + ")";
        title.appendChild(zone);
      }
    },
  });
  calendar.render();

  form.addEventListener("change", function () {
    updateFeedLink();
    calendar.refetchEvents();
  });
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  updateFeedLink();
  window.tansiqCalendar = calendar;  // for the browser test and the curious
})();
