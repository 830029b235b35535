/* Quick exit: leave for a neutral site without leaving this page in the back-button history.
   The link works without this script; this only makes leaving safer (and Escape twice also leaves). */
(function () {
  "use strict";
  function leave(href) { window.location.replace(href); }
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
