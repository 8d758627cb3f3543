// The self check-in kiosk: a member scans their own card and gets a badge. No search, no undo:
// anything but green sends them to the staff.
(function () {
  "use strict";
  var token = document.body.getAttribute("data-token");
  var labels = document.getElementById("labels").dataset;
  var input = document.getElementById("scan");
  var resetTimer = null;
  function idle() {
    var panel = document.getElementById("verdict");
    panel.className = "verdict idle"; panel.removeAttribute("data-code");
    document.getElementById("headline").textContent = labels.idle;
    document.getElementById("name").textContent = "";
    document.getElementById("reason").textContent = labels.idleReason;
  }
  function show(v) {
    var panel = document.getElementById("verdict");
    var ok = v.colour === "green" && !v.kiosk_call_staff;
    panel.className = "verdict " + (ok ? "green" : "amber");
    panel.setAttribute("data-code", ok ? v.code : "call_staff");
    document.getElementById("headline").textContent = ok ? labels.green : labels.staff;
    document.getElementById("name").textContent = ok ? (v.name || "") : "";
    document.getElementById("reason").textContent = ok ? labels.printing : labels.callStaff;
    clearTimeout(resetTimer);
    resetTimer = setTimeout(idle, 8000);
  }
  document.getElementById("scanform").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value; input.value = "";
    if (!text.trim()) { return; }
    fetch("/scan", {method: "POST", headers: {"Content-Type": "application/json", "X-Station-Token": token},
                    body: JSON.stringify({text: text, source: "wedge"})})
      .then(function (r) { return r.json(); }).then(show)
      .catch(function () { show({colour: "red"}); });
  });
  document.addEventListener("click", function () { input.focus(); });
  window.addEventListener("focus", function () { input.focus(); });
  input.focus();
})();
