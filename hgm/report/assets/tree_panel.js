// Hand-written glue, because no plotting library turns "click a point" into "show an HTML page
// about it": plotly emits plotly_click with the point's customdata (the node id); this shows the
// node's pre-rendered panel (HTML written by hgm/report/panels.py) beside the tree. Links inside a
// panel to other nodes (parent, children) use data-node and go through the same function.
window.addEventListener("load", function () {
  var panels = JSON.parse(document.getElementById("hgm-panels").textContent);
  var panel = document.getElementById("panel");
  var tree = document.getElementById("tree");
  function show(id) {
    var html = panels[String(id)];
    if (html === undefined) { return; }
    panel.innerHTML = html;
    panel.setAttribute("data-node", String(id));
    panel.scrollTop = 0;
  }
  window.hgmShowNode = show;
  tree.on("plotly_click", function (ev) {
    var p = ev.points && ev.points[0];
    if (p && p.customdata !== undefined && p.customdata !== null) { show(p.customdata); }
  });
  panel.addEventListener("click", function (ev) {
    var a = ev.target.closest("a[data-node]");
    if (a) { ev.preventDefault(); show(a.getAttribute("data-node")); }
  });
});
