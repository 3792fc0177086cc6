// Live refresh: the server says when its state changed; the page reloads itself unless
// someone is filling in a form. Without JavaScript (or EventSource) the pages are the same,
// only not refreshed.
(function () {
  if (!window.EventSource) return;
  var typing = function () {
    var inputs = document.querySelectorAll("form.actions-form input, section.actions input[name=why], section.actions input[name=token]");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].value) return true;
    }
    var a = document.activeElement;
    return !!(a && a.form);
  };
  var source = new EventSource("/events");
  source.addEventListener("open", function () {
    var live = document.getElementById("live");
    if (live) live.hidden = false;
  });
  source.addEventListener("changed", function () {
    if (!typing()) window.location.reload();
  });
  document.addEventListener("click", function (e) {
    var node = e.target.closest && e.target.closest("svg g.stage[data-stage]");
    if (!node) return;
    var parts = window.location.pathname.split("/");
    if (parts[1] === "campaigns" && parts.length >= 3) {
      window.location.href = "/stages/" + parts[2] + "/" + encodeURIComponent(node.getAttribute("data-stage"));
    }
  });
})();
