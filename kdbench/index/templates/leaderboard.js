// Sort a table by a column (click its header again to reverse); filter its rows by text.
document.querySelectorAll("table.board").forEach(function (table) {
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var down = th.getAttribute("aria-sort") !== "descending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var numeric = th.dataset.kind === "number";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (numeric) {
          var u = x.dataset.v === "" ? null : Number(x.dataset.v), v = y.dataset.v === "" ? null : Number(y.dataset.v);
          if (u === null || v === null) { return (u === null) - (v === null); }  // empty cells last
          return down ? v - u : u - v;
        }
        var s = x.textContent.localeCompare(y.textContent);
        return down ? -s : s;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var box = table.closest("section").querySelector("input.filter");
  box.addEventListener("input", function () {
    var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    Array.prototype.forEach.call(body.rows, function (r) {
      var text = r.textContent.toLowerCase();
      r.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
    });
  });
});
