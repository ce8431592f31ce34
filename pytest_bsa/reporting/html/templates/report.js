(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("bsa-data").textContent);
  var items = data.instances;
  var body = document.getElementById("bsa-rows");
  var fText = document.getElementById("f-text");
  var fScenario = document.getElementById("f-scenario");
  var fCategory = document.getElementById("f-category");
  var fStatus = document.getElementById("f-status");
  var counter = document.getElementById("f-count");
  var rows = [];
  var byId = {};

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function pct(v) { return v === null || v === undefined ? "-" : (100 * v).toFixed(1); }
  function field(parent, name, text) {
    if (text === null || text === undefined || text === "") { return; }
    parent.appendChild(el("div", "field", name));
    parent.appendChild(el("div", "text", text));
  }

  function sampleBox(s) {
    var kind = s.error ? "err" : (s.safety === "unsafe" ? "unsafe" :
      (s.think === "incorrect" || s.think === "unjudged" ? "incorrect" : "ok"));
    var box = el("div", "sample " + kind);
    var head = "Sample " + s.i;
    if (s.error) {
      head += ": error";
    } else {
      head += ": answer " + (s.safety || "not judged") + (s.sl ? " (" + s.sl + ")" : "") +
        " · reasoning " + (s.think || "not judged") + (s.tl ? " (" + s.tl + ")" : "") +
        " · trace " + (s.rstate || "-") + (s.finish ? " · finish " + s.finish : "");
    }
    box.appendChild(el("h4", null, head));
    field(box, "error", s.error);
    field(box, "judge", s.expl);
    field(box, "reasoning", s.reasoning);
    field(box, "answer", s.answer);
    return box;
  }

  function buildDetail(it) {
    var tr = el("tr", "detail");
    var td = el("td");
    td.colSpan = 8;
    field(td, "query", it.query);
    field(td, "risk summary", it.risk);
    it.samples.forEach(function (s) { td.appendChild(sampleBox(s)); });
    tr.appendChild(td);
    return tr;
  }

  function toggle(r, open) {
    r.open = open === undefined ? !r.open : open;
    if (r.open && !r.detail) {
      r.detail = buildDetail(r.it);
      r.tr.parentNode.insertBefore(r.detail, r.tr.nextSibling);
    }
    if (r.detail) { r.detail.hidden = !r.open; }
    r.tr.firstChild.textContent = r.open ? "\u25BE" : "\u25B8";
    r.tr.setAttribute("aria-expanded", r.open ? "true" : "false");
  }

  var frag = document.createDocumentFragment();
  items.forEach(function (it, index) {
    var tr = el("tr", "row");
    tr.id = "i-" + it.id;
    tr.tabIndex = 0;
    tr.setAttribute("aria-expanded", "false");
    tr.dataset.index = String(index);
    tr.appendChild(el("td", null, "\u25B8"));
    tr.appendChild(el("td", "id", it.id));
    tr.appendChild(el("td", null, it.scenario));
    tr.appendChild(el("td", null, it.labels.join("; ")));
    tr.appendChild(el("td", "st-" + it.status, it.status));
    tr.appendChild(el("td", null, pct(it.safe1)));
    tr.appendChild(el("td", null, pct(it.think1)));
    tr.appendChild(el("td", "note", it.reasons.join("; ")));
    var r = {tr: tr, it: it, open: false, detail: null,
      search: [it.id, it.scenario, it.labels.join(" "), it.reasons.join(" "), it.query || "",
        it.risk || ""].join(" ").toLowerCase()};
    rows.push(r);
    byId[it.id] = r;
    frag.appendChild(tr);
  });
  body.appendChild(frag);

  body.addEventListener("click", function (ev) {
    var tr = ev.target.closest("tr.row");
    if (tr) { toggle(rows[Number(tr.dataset.index)]); }
  });
  body.addEventListener("keydown", function (ev) {
    var tr = ev.target.closest("tr.row");
    if (tr && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      toggle(rows[Number(tr.dataset.index)]);
    }
  });

  function apply() {
    var q = fText.value.trim().toLowerCase();
    var sc = fScenario.value, cat = fCategory.value, st = fStatus.value;
    var shown = 0;
    rows.forEach(function (r) {
      var it = r.it;
      var ok = (!q || r.search.indexOf(q) !== -1) && (!sc || it.scenario === sc) &&
        (!cat || it.categories.indexOf(cat) !== -1) && (!st || it.status === st);
      r.tr.hidden = !ok;
      if (r.detail) { r.detail.hidden = !ok || !r.open; }
      if (ok) { shown += 1; }
    });
    counter.textContent = "showing " + shown + " of " + rows.length;
  }
  [fText, fScenario, fCategory, fStatus].forEach(function (node) {
    node.addEventListener(node === fText ? "input" : "change", apply);
  });

  document.addEventListener("click", function (ev) {
    var link = ev.target.closest("a.jump");
    if (!link || !byId[link.dataset.id]) { return; }
    var r = byId[link.dataset.id];
    fText.value = ""; fScenario.value = ""; fCategory.value = ""; fStatus.value = "";
    apply();
    toggle(r, true);
  });

  apply();
  document.documentElement.setAttribute("data-bsa-ready", String(rows.length));
})();
