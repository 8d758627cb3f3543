// Live arrival counts on the event page: refreshed every 5 s without reloading the page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-url");
  var format = function (n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0"); };
  function setText(id, value) {
    var node = document.getElementById(id);
    if (node && value !== null && value !== undefined) { node.textContent = format(value); }
  }
  function fillRows(id, rows) {
    var body = document.getElementById(id);
    if (!body) { return; }
    var labels = {};
    Array.prototype.forEach.call(body.rows, function (row) { labels[row.getAttribute("data-key")] = row.cells[0].textContent; });
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-key", r[0]);
      [labels[r[0]] || r[0], format(r[1]), r[2] === null ? "—" : format(r[2])].forEach(function (text, i) {
        var td = document.createElement("td");
        if (i > 0) { td.className = "num"; }
        td.textContent = text;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }
  function refresh() {
    fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
      if (!data) { return; }
      setText("arrived", data.arrived);
      setText("expected", data.expected);
      setText("duplicates", data.duplicates);
      setText("undone", data.undone);
      fillRows("by_role", data.by_role);
      fillRows("by_region", data.by_region);
    }).catch(function () {});
  }
  setInterval(refresh, 5000);
})();
