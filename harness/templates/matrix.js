(function () {
  "use strict";
  var details = JSON.parse(document.getElementById("cells").textContent);
  var table = document.getElementById("matrix");
  var form = document.getElementById("filters");
  var shown = document.getElementById("shown");
  var aside = document.getElementById("detail");
  var body = document.getElementById("detail-body");
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var selected = null;

  function boxes(name) {
    return Array.prototype.slice.call(form.querySelectorAll("input[name='" + name + "']"));
  }
  function checked(name) {
    return boxes(name).filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
  }

  function apply() {
    var runtimes = checked("runtime"), sections = checked("section");
    var only = form.querySelector("input[name='only']").checked;
    table.querySelectorAll("[data-runtime]").forEach(function (el) {
      el.hidden = runtimes.indexOf(el.getAttribute("data-runtime")) < 0;
    });
    var visible = 0;
    rows.forEach(function (tr) {
      var off = Array.prototype.some.call(tr.querySelectorAll("td.cell"), function (td) {
        return !td.hidden && (td.classList.contains("v-regression") || td.classList.contains("v-unexpected-pass") ||
          td.classList.contains("v-changed") || td.classList.contains("v-no-expectation"));
      });
      tr.hidden = sections.indexOf(tr.getAttribute("data-section")) < 0 || (only && !off);
      if (!tr.hidden) { visible += 1; }
    });
    shown.textContent = "showing " + visible + " of " + rows.length + " scenarios, " + runtimes.length +
      " of " + boxes("runtime").length + " runtimes";
    writeHash();
  }

  function writeHash() {
    var parts = [];
    if (checked("runtime").length !== boxes("runtime").length) { parts.push("runtimes=" + checked("runtime").join(",")); }
    if (checked("section").length !== boxes("section").length) { parts.push("sections=" + checked("section").join(",")); }
    if (form.querySelector("input[name='only']").checked) { parts.push("only=1"); }
    if (selected) { parts.push("cell=" + encodeURIComponent(selected)); }
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash && history.replaceState) {
      history.replaceState(null, "", location.pathname + location.search + hash);
    }
  }

  function readHash() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) { params[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); }
    });
    if (params.runtimes !== undefined) {
      var rts = params.runtimes.split(",");
      boxes("runtime").forEach(function (b) { b.checked = rts.indexOf(b.value) >= 0; });
    }
    if (params.sections !== undefined) {
      var secs = params.sections.split(",");
      boxes("section").forEach(function (b) { b.checked = secs.indexOf(b.value) >= 0; });
    }
    form.querySelector("input[name='only']").checked = params.only === "1";
    return params.cell;
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  function pair(dl, term, value, href) {
    if (value === null || value === undefined || value === "") { return null; }
    dl.appendChild(el("dt", term));
    var dd = el("dd");
    if (href) { var a = el("a", value); a.href = href; dd.appendChild(a); } else { dd.textContent = String(value); }
    dl.appendChild(dd);
    return dd;
  }

  // An outcome's badge: its icon from the page's sprite (inline SVG, no emoji font needed) and its word.
  function badge(cls, word) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg"), use = document.createElementNS(ns, "use");
    svg.setAttribute("class", "sym");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    use.setAttribute("href", "#i-" + cls);
    svg.appendChild(use);
    var span = el("span", null, "badge " + cls);
    span.appendChild(svg);
    span.appendChild(document.createTextNode(" " + word));
    return span;
  }

  function show(key) {
    var d = details[key];
    if (!d) { return; }
    if (selected) {
      var old = table.querySelector("td.cell.selected");
      if (old) { old.classList.remove("selected"); }
    }
    selected = key;
    table.querySelectorAll("td.cell").forEach(function (td) {
      if (td.getAttribute("data-cell") === key) { td.classList.add("selected"); }
    });
    body.textContent = "";
    body.appendChild(el("h3", d.title + " · " + d.runtime));
    body.appendChild(el("p", d.scenario + " · " + d.severity, "sid"));
    var dl = el("dl");
    var observed = pair(dl, "observed", d.in_run ? " (" + d.meaning + ")" : "not in this run");
    if (d.in_run) { observed.insertBefore(badge(d.cls, d.outcome), observed.firstChild); }
    pair(dl, "note", d.note);
    pair(dl, "expected", d.expected);
    pair(dl, "why", d.reason);
    pair(dl, "verdict", d.verdict);
    if (d.documented) {
      pair(dl, "documented", d.documented + (d.documented_failed.length ? " (failed: " + d.documented_failed.join("; ") + ")" : ""));
      pair(dl, "documented expected", d.documented_expected);
      pair(dl, "documented verdict", d.documented_verdict);
    }
    pair(dl, "expectation link", d.link, d.link);
    pair(dl, "run", d.run_id);
    pair(dl, "duration", d.duration_s === null ? null : d.duration_s + " s");
    pair(dl, "evidence dir", d.evidence_dir);
    pair(dl, "evidence", d.evidence_file, d.evidence_file);
    body.appendChild(dl);
    body.appendChild(el("p", d.summary));
    if (d.examples.length) {
      body.appendChild(el("p", "Evidence (baseline first):", "head"));
      d.examples.forEach(function (ex) {
        if (d.examples.length > 1 || ex.heading.indexOf("no parameters") !== 0) { body.appendChild(el("p", ex.heading, "head")); }
        var ul = el("ul", null, "ev");
        ex.lines.forEach(function (line) { ul.appendChild(el("li", line)); });
        if (ex.hidden) { ul.appendChild(el("li", "and " + ex.hidden + " more keys observed alike")); }
        body.appendChild(ul);
      });
      if (d.omitted) { body.appendChild(el("p", d.omitted + " more examples in results.json")); }
    }
    if (d.workaround) { body.appendChild(el("p", "Workaround: " + d.workaround)); }
    d.links.forEach(function (l) {
      var p = el("p"), a = el("a", l.label); a.href = l.href; p.appendChild(a); body.appendChild(p);
    });
    aside.hidden = false;
    writeHash();
  }

  table.addEventListener("click", function (e) {
    var td = e.target.closest("td.cell");
    if (td) { show(td.getAttribute("data-cell")); }
  });
  table.addEventListener("keydown", function (e) {
    var td = e.target.closest("td.cell");
    if (td && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); show(td.getAttribute("data-cell")); }
  });
  document.getElementById("close").addEventListener("click", function () {
    aside.hidden = true;
    var old = table.querySelector("td.cell.selected");
    if (old) { old.classList.remove("selected"); }
    selected = null;
    writeHash();
  });
  form.addEventListener("change", apply);

  var initial = readHash();
  apply();
  if (initial) { show(initial); }
  document.body.setAttribute("data-ready", "1");
})();
