/* djtasks: the schedule form's "next five runs" follow the timing as it is typed.

   On each change of a timing field the form's values go to the admin's
   preview URL (a GET: nothing is saved) and the answer, a list of times or
   the reason there is none, is written in with textContent only.
*/
(function () {
  "use strict";

  const TIMING = /^(cron|interval|run_at|time_zone|start_at|end_at)(_\d)?$/;

  function show(preview, answer) {
    const list = preview.querySelector("ol");
    const note = preview.querySelector("p");
    list.replaceChildren();
    answer.runs.forEach(function (run) {
      const item = document.createElement("li");
      item.textContent = run;
      list.appendChild(item);
    });
    note.textContent = answer.error || "";
  }

  function init() {
    const preview = document.getElementById("djtasks-preview");
    const form = preview && preview.closest("form");
    if (!form) return;
    let timer = null;

    async function refresh() {
      const params = new URLSearchParams(new FormData(form));
      params.delete("csrfmiddlewaretoken");
      try {
        const response = await fetch(preview.dataset.url + "?" + params, {
          credentials: "same-origin",
        });
        if (response.ok) show(preview, await response.json());
      } catch (error) {
        // Offline for a moment: the next change tries again.
      }
    }

    function changed(event) {
      if (!TIMING.test(event.target.name || "")) return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 400); // once typing pauses, not per key
    }

    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
