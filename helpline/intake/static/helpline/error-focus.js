/* A page sent back with something to correct (or not sent): the focus goes to the summary that says what, so a
   screen reader reads it and the keyboard starts there. (role="alert" is announced, but the focus stayed on body.) */
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (!summary) { return; }
  if (!summary.hasAttribute("tabindex")) { summary.setAttribute("tabindex", "-1"); }
  summary.focus();
}());
