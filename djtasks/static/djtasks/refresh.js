/* djtasks: refresh a page by itself while it shows unfinished work.

   A page that wants it renders a marker:
     <div id="djtasks-live" data-region="CSS selector" data-seconds="3" hidden></div>
   Every few seconds, while the tab is visible, the script fetches the same
   URL and swaps the region's content for the fresh one. It stops once the
   fresh page has no marker (nothing unfinished is left), and waits while a
   person is choosing rows for an action. No framework, no network but the
   page's own URL; the fresh HTML is the server's own rendering, escaped there.
*/
(function () {
  "use strict";

  function marker(doc) {
    return doc.getElementById("djtasks-live");
  }

  // Rows ticked for an action: a refresh must not undo the person's choice.
  function choosingRows() {
    return document.querySelector("input.action-select:checked") !== null;
  }

  // Table rows are updated cell by cell, so the checkboxes (and the admin's
  // listeners on them) stay; anything else is replaced whole.
  function swap(region, fresh) {
    const sameRows =
      region.tagName === "TBODY" && region.rows.length === fresh.rows.length;
    if (!sameRows) {
      region.innerHTML = fresh.innerHTML;
      return;
    }
    Array.from(fresh.rows).forEach(function (row, i) {
      Array.from(row.cells).forEach(function (cell, j) {
        const old = region.rows[i].cells[j];
        if (!old) return;
        const box = old.querySelector("input.action-select");
        const freshBox = cell.querySelector("input.action-select");
        if (box && freshBox) {
          box.value = freshBox.value;
        } else {
          old.innerHTML = cell.innerHTML;
        }
      });
      region.rows[i].className = row.className;
    });
  }

  function start(live) {
    const selector = live.dataset.region;
    const seconds = Math.max(1, Number(live.dataset.seconds) || 3);
    let timer = null;

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(tick, seconds * 1000);
    }

    async function tick() {
      if (document.hidden) return; // visibilitychange starts it again
      if (choosingRows()) return schedule();
      let doc;
      try {
        const response = await fetch(window.location.href, {
          credentials: "same-origin",
          headers: { "X-Requested-With": "djtasks-refresh" },
        });
        if (!response.ok) return schedule();
        doc = new DOMParser().parseFromString(await response.text(), "text/html");
      } catch (error) {
        return schedule(); // the server is restarting: try again later
      }
      const region = document.querySelector(selector);
      const fresh = doc.querySelector(selector);
      if (region && fresh && !choosingRows()) swap(region, fresh);
      if (marker(doc)) {
        schedule();
      } else if (marker(document)) {
        marker(document).remove(); // nothing unfinished: no more refreshes
      }
      document.dispatchEvent(new CustomEvent("djtasks:refreshed"));
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && marker(document)) tick();
    });
    schedule();
  }

  function init() {
    const live = marker(document);
    if (live) start(live);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
