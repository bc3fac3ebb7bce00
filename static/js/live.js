// Live views as progressive enhancement: every element with data-stream-url opens a
// WebSocket to that URL and applies the JSON messages it receives: new event lines, and a
// server-rendered fragment of the state panel whenever the state changed. Without JavaScript
// (or when the socket closes) the page still shows the full state on reload.
(function () {
  "use strict";

  function socketUrl(path) {
    var url = new URL(path, window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  function part(root, name) {
    return root.querySelector('[data-live="' + name + '"]');
  }

  function apply(root, data) {
    var panel = part(root, "panel");
    // The server re-renders the whole state panel (attempts, times, result, valid buttons)
    // whenever it changed: swap it in, so the live page matches what a reload would show.
    if (panel && typeof data.panel === "string") { panel.innerHTML = data.panel; }
    var state = part(root, "state");
    var message = part(root, "message");
    var progress = part(root, "progress");
    var events = part(root, "events");
    if (state && data.state) { state.textContent = data.state; }
    if (message && typeof data.message === "string") { message.textContent = data.message; }
    if (progress && typeof data.progress === "number") {
      progress.value = data.progress;
      progress.textContent = data.progress + "%";
    }
    if (events && Array.isArray(data.events)) {
      data.events.forEach(function (event) {
        var item = document.createElement("li");
        item.className = "task-event level-" + String(event.level || "info").replace(/[^a-z]/g, "");
        item.textContent = (event.at ? event.at + " " : "") + (event.message || event.line || "");
        events.appendChild(item);
      });
      if (data.events.length) { events.lastElementChild.scrollIntoView({block: "nearest"}); }
    }
  }

  function connect(root) {
    var socket = new WebSocket(socketUrl(root.getAttribute("data-stream-url")));
    root.classList.add("live-connected");
    socket.addEventListener("message", function (msg) {
      var data;
      try { data = JSON.parse(msg.data); } catch (err) { return; /* ignore a malformed frame */ }
      apply(root, data);
      if (data.finished) { socket.close(1000, "done"); }
    });
    socket.addEventListener("close", function () {
      root.classList.remove("live-connected");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-stream-url]").forEach(connect);
  });
}());
