// `hgm serve`'s page: polls the run's state, redraws the report's tree with plotly, and turns the
// steering buttons into POSTs that record the same rows as `hgm steer` (hand-written: no library
// makes "a button on a plot's point" into "a row in our store").
window.addEventListener("load", function () {
  var cfg = JSON.parse(document.getElementById("hgm-serve").textContent);
  var tree = document.getElementById("tree");
  var panel = document.getElementById("panel");
  var controls = document.getElementById("controls");
  var message = document.getElementById("message");
  var state = null, selected = null, drawn = false;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) { e.textContent = text; }
    return e;
  }
  function button(label, id, body, inputs) {
    var b = el("button", {id: id, type: "button"}, label);
    b.addEventListener("click", function () {
      var data = Object.assign({}, body);
      (inputs || []).forEach(function (pair) { data[pair[0]] = document.getElementById(pair[1]).value; });
      steer(data);
    });
    return b;
  }
  function steer(body) {
    fetch(cfg.base + "steer", {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
      .then(function (res) {
        message.textContent = res[0] ? res[1].message : "error: " + res[1].error;
        message.className = res[0] ? "ok" : "error";
        refresh();
      });
  }
  function runControls() {
    controls.innerHTML = "";
    controls.appendChild(state.paused ? button("resume", "resume", {action: "resume"})
                                      : button("pause", "pause", {action: "pause"}));
    controls.appendChild(el("input", {id: "budget-n", type: "number", min: "1", value: "10", size: "4"}));
    controls.appendChild(button("add evaluations", "budget", {action: "budget"}, [["evals", "budget-n"]]));
    controls.appendChild(el("input", {id: "note-text", placeholder: "note", size: "30"}));
    controls.appendChild(button("note", "note", {action: "note"}, [["text", "note-text"]]));
    state.requests.forEach(function (r) {
      var row = el("div", {"class": "request"},
                   "request #" + r.id + " from node " + r.node + ": " + r.kind + " " + r.what + " ");
      if (r.kind !== "file") { row.appendChild(button("grant", "grant-" + r.id, {action: "grant", request: r.id})); }
      row.appendChild(el("input", {id: "decline-why-" + r.id, placeholder: "why", size: "20"}));
      row.appendChild(button("decline", "decline-" + r.id, {action: "decline", request: r.id},
                             [["why", "decline-why-" + r.id]]));
      controls.appendChild(row);
    });
  }
  function nodeControls(id) {
    var box = el("div", {id: "node-actions"});
    var pending = state.pending.indexOf(id) >= 0;
    var marks = state.marks[String(id)] || [];
    box.appendChild(el("p", {}, "node " + id + (pending ? " waits for approval" : "") +
                                (marks.length ? " [" + marks.join(", ") + "]" : "")));
    if (pending) {
      box.appendChild(button("approve", "approve", {action: "approve", node: id}));
      box.appendChild(el("input", {id: "reject-why", placeholder: "why (required)", size: "24"}));
      box.appendChild(button("reject", "reject", {action: "reject", node: id}, [["why", "reject-why"]]));
    }
    box.appendChild(button("veto", "veto", {action: "veto", node: id}));
    box.appendChild(el("input", {id: "pin-count", type: "number", min: "1", value: "1", size: "3"}));
    box.appendChild(button("pin", "pin", {action: "pin", node: id}, [["count", "pin-count"]]));
    box.appendChild(el("input", {id: "hint-text", placeholder: "hint for its next diagnosis", size: "30"}));
    box.appendChild(button("hint", "hint", {action: "hint", node: id}, [["text", "hint-text"]]));
    return box;
  }
  function show(id) {
    selected = id;
    panel.innerHTML = "";
    panel.appendChild(nodeControls(id));
    var html = el("div", {});
    html.innerHTML = state.panels[String(id)] || "";
    panel.appendChild(html);
  }
  window.hgmShowNode = show;
  function refresh() {
    fetch(cfg.base + "state").then(function (r) { return r.json(); }).then(function (s) {
      state = s;
      document.getElementById("live-status").textContent = "status " + s.status + " · evaluations " + s.evals +
        " · " + s.agents + " agents" + (s.paused ? " · PAUSED" : "") +
        (s.pending.length ? " · waiting for approval: node " + s.pending.join(", ") : "");
      Plotly.react(tree, s.figure.data, s.figure.layout, cfg.config);
      if (!drawn) {
        tree.on("plotly_click", function (ev) {
          var p = ev.points && ev.points[0];
          if (p && p.customdata !== undefined && p.customdata !== null) { show(p.customdata); }
        });
        drawn = true;
      }
      document.getElementById("steering-box").innerHTML = s.steering;
      if (!controls.contains(document.activeElement)) { runControls(); }  // keep what is being typed
      if (selected !== null && !panel.contains(document.activeElement)) { show(selected); }
      document.body.setAttribute("data-refreshed", String(Date.now()));
    });
  }
  refresh();
  setInterval(refresh, 2000);
});
