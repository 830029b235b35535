// The console's small behaviours: ticking deadlines, and a new critical case announced on screen and by sound.
// A file, not inline script: the Content-Security-Policy allows scripts from this site only.
(function () {
  "use strict";

  // --- Countdowns to the acknowledgement deadline --------------------------------------------------------
  function pad(n) { return String(n).padStart(2, "0"); }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.deadline) - now) / 1000);
      var sign = left < 0 ? "\u2212" : "";
      var s = Math.abs(left);
      el.textContent = sign + (s >= 3600 ? Math.floor(s / 3600) + ":" + pad(Math.floor(s % 3600 / 60)) : pad(Math.floor(s / 60))) + ":" + pad(s % 60);
      el.classList.toggle("late", left < 0);
    });
  }
  setInterval(tick, 1000);

  // --- Sound (Web Audio; browsers allow it only after the person has clicked or pressed a key) -----------
  var audio = null;
  function unlockSound() {
    if (!audio) {
      var Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) { return; }
      audio = new Context();
    }
    if (audio.state === "suspended") { audio.resume(); }
  }
  function beep() {
    document.documentElement.dataset.beeps = String(Number(document.documentElement.dataset.beeps || 0) + 1);
    if (!audio) { return; }
    [0, 0.35, 0.7].forEach(function (offset) {
      var oscillator = audio.createOscillator();
      var gain = audio.createGain();
      oscillator.type = "square";
      oscillator.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, audio.currentTime + offset);
      gain.gain.exponentialRampToValueAtTime(0.3, audio.currentTime + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + offset + 0.25);
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(audio.currentTime + offset);
      oscillator.stop(audio.currentTime + offset + 0.3);
    });
  }
  document.addEventListener("click", unlockSound, { once: true, capture: true });
  document.addEventListener("keydown", unlockSound, { once: true, capture: true });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-enable-sound]");
    if (button) { unlockSound(); beep(); button.closest(".sound-hint").hidden = true; }
  });

  // --- New cases in the live lists -------------------------------------------------------------------------
  var seenCases = null;
  var seenCritical = null;
  function idsOf(selector, attribute) {
    var ids = new Set();
    document.querySelectorAll(selector).forEach(function (el) { ids.add(el.getAttribute(attribute)); });
    return ids;
  }
  function caseLinks() { return document.querySelectorAll(".case-row .case-link"); }
  function checkForNews(isFirstLook) {
    var critical = idsOf("[data-critical]", "data-critical");
    var all = new Set();
    caseLinks().forEach(function (link) { all.add(link.getAttribute("href")); });
    if (!isFirstLook && seenCases) {
      caseLinks().forEach(function (link) {
        if (!seenCases.has(link.getAttribute("href"))) { link.closest(".case-row").classList.add("new-arrival"); }
      });
      var fresh = Array.from(critical).filter(function (id) { return !seenCritical.has(id); });
      if (fresh.length) { announce(fresh); }
    }
    seenCases = all;
    seenCritical = critical;
  }
  function announce(ids) {
    var alert = document.getElementById("critical-alert");
    if (!alert) { return; }
    var row = document.querySelector('[data-critical="' + ids[0] + '"]');
    var link = row ? row.querySelector(".case-link") : null;
    alert.textContent = "";
    var text = document.createElement("span");
    alert.appendChild(text);
    if (row && row.dataset.alertText) {
      // A home-visit alarm: its own words, and a link down to its row.
      var jump = document.createElement("a");
      jump.href = "#" + row.id;
      jump.textContent = row.dataset.alertText;
      alert.appendChild(jump);
    } else if (link) {
      text.textContent = (alert.dataset.text || "New critical case") + ": ";
      var a = document.createElement("a");
      a.href = link.getAttribute("href");
      a.textContent = row.querySelector(".ref").textContent;
      alert.appendChild(a);
    }
    alert.hidden = false;
    alert.classList.remove("flash-on");
    void alert.offsetWidth;  // restart the animation
    alert.classList.add("flash-on");
    beep();
  }
  // A poll must not replace a form control someone is using (a half-chosen reassignment would be lost). Links
  // and buttons keep their focus across a swap through their stable ids (htmx refocuses by id).
  document.addEventListener("htmx:beforeRequest", function (event) {
    var active = document.activeElement;
    if (active && event.detail.elt.contains(active) && active.matches("select, input, textarea")) {
      event.preventDefault();
    }
  });
  // A confirmation step someone has opened (ending a visit) stays open across a poll; the poll itself goes on, so
  // a board left with one open still shows new cases.
  var openSteps = [];
  document.addEventListener("htmx:beforeSwap", function () {
    openSteps = Array.from(document.querySelectorAll("details[data-keep-open][open]")).map(function (el) { return el.id; });
  });
  function reopenSteps() {
    openSteps.forEach(function (id) { var el = document.getElementById(id); if (el) { el.open = true; } });
  }
  // --- Typing is activity --------------------------------------------------------------------------------
  // The session ends after a spell without requests from the person; someone writing a long reply makes none,
  // so the page says "still here" now and then, but only after real key presses or clicks (never by itself).
  var lastInput = 0;
  var lastSaid = Date.now();
  ["keydown", "pointerdown", "input"].forEach(function (name) {
    document.addEventListener(name, function () { lastInput = Date.now(); }, { capture: true, passive: true });
  });
  setInterval(function () {
    var url = document.body.dataset.stillHere;
    if (!url || lastInput <= lastSaid || Date.now() - lastSaid < 4 * 60 * 1000) { return; }
    lastSaid = Date.now();
    var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    fetch(url, { method: "POST", headers: headers, credentials: "same-origin" });
  }, 30 * 1000);

  document.addEventListener("DOMContentLoaded", function () { tick(); checkForNews(true); });
  document.addEventListener("htmx:afterSettle", function () { reopenSteps(); tick(); checkForNews(false); });
})();
