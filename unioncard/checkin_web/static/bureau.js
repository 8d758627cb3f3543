// Live progress of a batch: ask the server every two seconds while the batch is open.
(function () {
  var script = document.currentScript;
  var url = script && script.dataset.progress;
  var bar = document.getElementById("batch-progress");
  if (!url || !bar) return;
  function tick() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (s) {
      bar.max = s.to_make; bar.value = s.done;
      document.getElementById("batch-count").textContent = s.done + " / " + s.to_make;
      document.getElementById("batch-spoiled").textContent = s.spoiled;
      if (s.status === "open" || s.running) setTimeout(tick, 2000);
      else if (s.done === s.to_make) location.reload();
    }).catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 2000);
})();
