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

  function sameAttributes(a, b) {
    if (a.attributes.length !== b.attributes.length) return false;
    return Array.from(a.attributes).every(function (attr) {
      return b.getAttribute(attr.name) === attr.value;
    });
  }

  // Change only what changed: a node equal to its fresh copy stays as it is
  // (so what a person looks at, or a test holds, is not replaced every few
  // seconds), text is updated in place, and an element whose tag,
  // attributes or shape differ is replaced by its fresh copy. The admin's
  // row checkboxes keep their node (actions.js holds on to them): only
  // their value follows.
  function patch(old, fresh) {
    if (old.nodeType === Node.TEXT_NODE && fresh.nodeType === Node.TEXT_NODE) {
      if (old.nodeValue !== fresh.nodeValue) old.nodeValue = fresh.nodeValue;
      return;
    }
    if (old.nodeType !== Node.ELEMENT_NODE || fresh.nodeType !== Node.ELEMENT_NODE) {
      if (old.nodeType !== fresh.nodeType) old.replaceWith(document.importNode(fresh, true));
      return;
    }
    if (old.outerHTML === fresh.outerHTML) return;
    if (old.matches("input.action-select") && fresh.matches("input.action-select")) {
      old.value = fresh.value;
      return;
    }
    const sameShape =
      old.tagName === fresh.tagName &&
      sameAttributes(old, fresh) &&
      old.childNodes.length === fresh.childNodes.length;
    if (!sameShape) {
      old.replaceWith(document.importNode(fresh, true));
      return;
    }
    Array.from(fresh.childNodes).forEach(function (child, i) {
      patch(old.childNodes[i], child);
    });
  }

  function swap(region, fresh) {
    if (region.childNodes.length !== fresh.childNodes.length) {
      region.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
      return;
    }
    Array.from(fresh.childNodes).forEach(function (child, i) {
      patch(region.childNodes[i], child);
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
