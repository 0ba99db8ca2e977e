/* Tip form: Quick Exit (button and Esc) and the "danger now" banner. The form works without it. */
(function () {
  "use strict";

  var exitUrl = document.body.getAttribute("data-exit-url") || "https://www.weather.gov";

  function leave(event) {
    if (event) {
      event.preventDefault();
    }
    // Blank the page at once, then replace this history entry: Back does not return here.
    document.title = "";
    document.documentElement.className += " leaving";
    window.location.replace(exitUrl);
  }

  var exits = document.querySelectorAll("[data-quick-exit]");
  for (var i = 0; i < exits.length; i++) {
    exits[i].addEventListener("click", leave);
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" || event.key === "Esc" || event.keyCode === 27) {
      leave(event);
    }
  });

  var hints = document.querySelectorAll("[data-js-only]");
  for (var j = 0; j < hints.length; j++) {
    hints[j].hidden = false;
  }

  var banner = document.getElementById("danger-banner");
  var radios = document.querySelectorAll('input[name="danger_now"]');
  function toggleBanner() {
    var yes = document.getElementById("f-danger_now-yes");
    if (banner) {
      banner.hidden = !(yes && yes.checked);
    }
  }
  for (var k = 0; k < radios.length; k++) {
    radios[k].addEventListener("change", toggleBanner);
  }
  toggleBanner();
})();
