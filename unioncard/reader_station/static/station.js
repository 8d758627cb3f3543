// The desk page: keyboard (wedge scanner or person) in, verdicts out, big and loud.
(function () {
  "use strict";
  var token = document.body.getAttribute("data-token");
  var labels = document.getElementById("labels").dataset;
  var input = document.getElementById("scan");
  var form = document.getElementById("scanform");
  var seq = 0, shown = 0;
  // A wedge scanner types a whole code in a burst; a burst that stops without Enter was cut off.
  var BURST_GAP_MS = 40, CUT_OFF_MS = 600;
  var lastKey = 0, burstKeys = 0, cutTimer = null;

  function post(url, body) {
    return fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-Station-Token": token},
                       body: JSON.stringify(body || {})}).then(function (r) { return r.json(); });
  }
  var audio = null;
  function beep(colour) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var tones = {green: [[880, 0.15]], amber: [[660, 0.12], [660, 0.12]], red: [[220, 0.6]]}[colour] || [];
      var t = audio.currentTime;
      tones.forEach(function (tone) {
        var osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = tone[0]; gain.gain.value = 0.2;
        osc.connect(gain); gain.connect(audio.destination);
        osc.start(t); osc.stop(t + tone[1]); t += tone[1] + 0.08;
      });
    } catch (e) { /* no sound device: the colours still speak */ }
  }
  // Times on the desk are the venue's (the event's UTC offset), as on the hall's clock.
  var venueOffset = 180, venueDay = "";
  function venue(iso) {
    var t = Date.parse(iso || "");
    if (isNaN(t)) { return null; }
    var d = new Date(t + venueOffset * 60000).toISOString();
    return {day: d.slice(0, 10), date: d.slice(8, 10) + "." + d.slice(5, 7) + "." + d.slice(0, 4), time: d.slice(11, 16)};
  }
  function formatNumber(n) { return n ? n.replace(/(\d{4})(?=\d)/g, "$1 ") : ""; }
  function show(v) {
    if (!v || v.code === "status" || (v.seq && v.seq <= shown)) { return; }
    if (v.seq) { shown = v.seq; }
    var panel = document.getElementById("verdict");
    panel.className = "verdict " + v.colour;
    panel.setAttribute("data-code", v.code);
    document.getElementById("headline").textContent = labels[v.colour] || "";
    document.getElementById("name").textContent = v.name || "";
    document.getElementById("role").textContent = v.role_label || "";
    document.getElementById("reason").textContent = v.reason || "";
    document.getElementById("number").textContent = v.source === "document" ? v.number : formatNumber(v.number);
    var bar = document.getElementById("printbar");
    if (bar) { bar.remove(); }
    if (v.nonce && (v.print_mode === "button" || v.print_mode === "auto")) {
      bar = document.createElement("div"); bar.id = "printbar"; bar.className = "printbar";
      if (v.print_mode === "button") {
        var pb = document.createElement("button"); pb.type = "button"; pb.id = "printbutton"; pb.textContent = labels.print;
        pb.addEventListener("click", function () { printFor(v.nonce, ""); pb.disabled = true; });
        bar.appendChild(pb);
      } else { bar.textContent = labels.printing; }
      panel.appendChild(bar);
    }
    beep(v.colour);
    refreshStatus();
  }
  function submit(text, source, problem) {
    post("/scan", {text: text, source: source, problem: problem}).then(show).catch(offline);
  }
  function offline() { document.getElementById("sync").textContent = labels.offline; }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    clearTimeout(cutTimer);
    var text = input.value;
    var source = burstKeys >= 4 ? "wedge" : "typed";
    input.value = ""; burstKeys = 0;
    if (text.trim()) { submit(text, source); }
  });
  input.addEventListener("keydown", function (e) {
    if (e.ctrlKey && (e.key === "z" || e.key === "Z" || e.key === "я" || e.key === "Я")) {
      e.preventDefault(); undo(); return;
    }
    if (e.key === "Enter" || e.key.length !== 1) { return; }
    var now = Date.now();
    burstKeys = (now - lastKey < BURST_GAP_MS) ? burstKeys + 1 : 1;
    lastKey = now;
    clearTimeout(cutTimer);
    cutTimer = setTimeout(function () {
      if (burstKeys >= 4 && input.value) {
        input.value = ""; burstKeys = 0;
        submit("", "wedge", "partial_scan");
      }
    }, CUT_OFF_MS);
  });
  document.addEventListener("click", function () {
    var tag = document.activeElement.tagName;
    if (tag !== "BUTTON" && tag !== "INPUT") { input.focus(); }
  });
  window.addEventListener("focus", function () { input.focus(); });

  function printFor(nonce, reason) {
    post("/print", {nonce: nonce, reason: reason}).then(function (answer) {
      if (answer.error) { show({colour: "amber", code: answer.error.code, reason: answer.error.message}); }
      else { refreshStatus(); }
    }).catch(offline);
  }
  document.getElementById("operatorform").addEventListener("submit", function (e) {
    e.preventDefault();
    post("/operator", {name: document.getElementById("operator").value}).then(function (answer) {
      if (answer.error) { show({colour: "amber", code: answer.error.code, reason: answer.error.message}); }
      else { document.getElementById("operator").value = answer.operator; input.focus(); }
    }).catch(offline);
  });
  document.getElementById("modeform").addEventListener("submit", function (e) {
    e.preventDefault();
    post("/mode", {session: document.getElementById("mode").value,
                   direction: document.getElementById("direction").value}).then(function (answer) {
      if (answer.error) { show({colour: "amber", code: answer.error.code, reason: answer.error.message}); }
      else { refreshStatus(); input.focus(); }
    }).catch(offline);
  });
  var findInput = document.getElementById("find"), findTimer = null;
  function find() {
    post("/find", {text: findInput.value}).then(function (answer) {
      var list = document.getElementById("found"), note = document.getElementById("findnote");
      list.textContent = "";
      note.textContent = answer.state === "no_list" ? labels.noList : answer.state === "too_short" ?
        (findInput.value.trim() ? labels.tooShort : "") : (answer.matches.length ? (answer.more ? labels.more : "") : labels.none);
      (answer.matches || []).forEach(function (m) {
        var li = document.createElement("li");
        var who = document.createElement("span"); who.className = "who"; who.textContent = m.name + (m.role_label ? " · " + m.role_label : "");
        var org = document.createElement("span"); org.className = "org"; org.textContent = (m.organisation || "") + " · " + m.number;
        li.appendChild(who); li.appendChild(org);
        if (m.blocked) { var b = document.createElement("span"); b.className = "blocked"; b.textContent = labels.blocked; li.appendChild(b); }
        var go = document.createElement("button"); go.type = "button"; go.textContent = labels.document;
        go.addEventListener("click", function () {
          post("/document", {person: m.person}).then(function (v) {
            if (v.error) { show({colour: "amber", code: v.error.code, reason: v.error.message}); return; }
            show(v); findInput.value = ""; list.textContent = ""; note.textContent = "";
          }).catch(offline);
        });
        li.appendChild(go);
        list.appendChild(li);
      });
    }).catch(offline);
  }
  findInput.addEventListener("input", function () { clearTimeout(findTimer); findTimer = setTimeout(find, 150); });
  document.getElementById("findform").addEventListener("submit", function (e) { e.preventDefault(); find(); });

  function undo(nonce) {
    post("/undo", nonce ? {nonce: nonce} : {}).then(function (answer) {
      if (answer.error) {
        show({colour: "amber", code: answer.error.code, reason: answer.error.message});
      } else {
        show({colour: "amber", code: "undone", reason: labels.undoneMsg});
      }
      input.focus();
    });
  }
  document.getElementById("undo").addEventListener("click", function () { undo(); });

  function refreshStatus() {
    fetch("/status").then(function (r) { return r.json(); }).then(function (s) {
      if (s.bundle) { venueOffset = s.bundle.utc_offset; venueDay = s.bundle.day; }
      var until = s.bundle ? venue(s.bundle.expires_at) : null;
      document.getElementById("event").textContent = s.bundle ? s.bundle.event + " · v" + s.bundle.version + " · " +
        labels.expires + " " + until.date + " " + until.time : (s.bundle_problem || "—");
      document.getElementById("desk").textContent = s.desk || "";
      var sync = document.getElementById("sync");
      sync.textContent = s.sync.message || "";
      sync.className = "sync-" + s.sync.state;
      document.getElementById("counts").textContent = labels.here + ": " + s.counts.here + " · " + labels.unsynced + ": " +
        s.counts.unsynced + " · " + labels.others + ": " + s.counts.other_desks;
      var modeinfo = document.getElementById("modeinfo");
      modeinfo.textContent = s.mode ? labels.atDoor + " «" + s.mode.name + "»: " + labels.entered + " " + s.mode.entered +
        " · " + labels.inside + " " + s.mode.inside : "";
      var printq = document.getElementById("printq");
      printq.textContent = s.prints && (s.prints.queued || s.prints.error) ? labels.queued + ": " + s.prints.queued +
        (s.prints.error ? " · " + labels.printerError + ": " + s.prints.error : "") : "";
      printq.className = s.prints && s.prints.error ? "error" : "";
      var warning = document.getElementById("warning");
      // Expiry first: a desk whose data run out refuses everyone, so that is the urgent one.
      var text = [s.expiry_warning, s.clock_warning].filter(Boolean).join(" · ") ||
        (s.bundle_problem && !s.bundle ? s.bundle_problem : "");
      warning.hidden = !text; warning.textContent = text || "";
      var list = document.getElementById("recent");
      if (list.querySelector("input")) { return; }  // someone is typing a reprint's reason
      list.textContent = "";
      (s.recent || []).forEach(function (r) {
        var li = document.createElement("li");
        var at = venue(r.at) || {time: "", day: ""};
        li.textContent = (at.day && at.day !== venueDay ? at.date + " " : "") + at.time + " · " + (r.name || formatNumber(r.number)) +
          (r.source === "document" ? " (" + labels.byDocument + ")" : "");
        if (r.undone) { li.className = "undone"; li.textContent += " (" + labels.undone + ")"; }
        else {
          var b = document.createElement("button");
          b.type = "button"; b.textContent = labels.undo;
          b.addEventListener("click", function () { undo(r.nonce); });
          li.appendChild(b);
          var again = document.createElement("button");
          again.type = "button"; again.textContent = labels.reprint; again.className = "reprint";
          again.addEventListener("click", function () {
            if (li.querySelector("input")) { return; }
            var why = document.createElement("input"); why.placeholder = labels.reason; why.maxLength = 200;
            var ok = document.createElement("button"); ok.type = "button"; ok.textContent = labels.print;
            ok.addEventListener("click", function () { printFor(r.nonce, why.value); });
            li.appendChild(why); li.appendChild(ok); why.focus();
          });
          li.appendChild(again);
        }
        list.appendChild(li);
      });
    }).catch(offline);
  }
  function poll() {
    fetch("/feed?after=" + seq).then(function (r) { return r.json(); }).then(function (answer) {
      var items = answer.items || [];
      items.forEach(function (item) { if (item.code === "status") { refreshStatus(); } else { show(item); } });
      seq = Math.max(seq, answer.seq || 0);
      setTimeout(poll, 50);
    }).catch(function () { offline(); setTimeout(poll, 2000); });
  }
  fetch("/status").then(function (r) { return r.json(); }).then(function (s) { seq = s.seq; shown = s.seq; refreshStatus(); poll(); });
  setInterval(refreshStatus, 15000);
  input.focus();
})();
