// Progressive enhancement for the event form: show the fall questions only for a fall.
// Without JavaScript every question stays visible and the server ignores the fall answers
// of other event types.
(function () {
  "use strict";
  var type = document.getElementById("event_type");
  var fall = document.getElementById("fall-details");
  if (!type || !fall) {
    return;
  }
  function sync() {
    fall.hidden = type.value !== "fall";
  }
  type.addEventListener("change", sync);
  sync();
})();
