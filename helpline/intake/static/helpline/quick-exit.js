/* Quick exit: leave for a neutral site without leaving this page in the back-button history.
   The link works without this script; this only makes leaving safer (and Escape twice also leaves). */
(function () {
  "use strict";
  // A case opened in this browser is closed on the way out, without waiting for the answer: whoever picks up the
  // phone next needs the code again. (Without JavaScript it closes itself after half an hour unused.)
  function closeOpenCase() {
    var link = document.querySelector("[data-leave-url]");
    var token = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (!link || !token || !navigator.sendBeacon) { return; }
    var form = new FormData();
    form.append("csrfmiddlewaretoken", token.value);
    try { navigator.sendBeacon(link.getAttribute("data-leave-url"), form); } catch (ignored) { /* leave anyway */ }
  }
  function leave(href) { closeOpenCase(); window.location.replace(href); }
  var links = document.querySelectorAll("[data-quick-exit]");
  for (var i = 0; i < links.length; i++) {
    links[i].addEventListener("click", function (event) {
      event.preventDefault();
      leave(this.getAttribute("href"));
    });
  }
  var lastEscape = 0;
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !links.length) { return; }
    var now = Date.now();
    if (now - lastEscape < 1000) { leave(links[0].getAttribute("href")); }
    lastEscape = now;
  });
}());
