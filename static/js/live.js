// Live views as progressive enhancement: every element with data-stream-url opens a
// WebSocket to that URL and applies the JSON messages it receives: new event lines, and a
// server-rendered fragment of the state panel whenever the state changed. Without JavaScript
// (or when the socket closes) the page still shows the full state on reload.
(function () {
  "use strict";

  function socketUrl(path) {
    var url = new URL(path, window.location.href);
    // The page's own scheme decides (a ws:// URL built behind a TLS proxy must still become wss:).
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
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

  // Log streams: the page lists entries newest first and the stream adds new ones at the top. The
  // URL carries the filters and `after`; after a drop the client reconnects after the last id it
  // showed, so nothing is missed and nothing shown twice. Every value is inserted as text.
  var LOG_ROWS_KEPT = 200;  // the explorer has them all; a short table keeps a busy stream smooth
  var LOG_CELLS = ["ts", "level", "source", "category", "server", "user", "risk", "message"];
  var CELL_CLASS = {ts: "text-nowrap", risk: "text-end", message: "log-message"};

  function logRow(entry) {
    var row = document.createElement("tr");
    row.className = "log-entry level-" + String(entry.level || "info").replace(/[^a-z]/g, "");
    row.setAttribute("data-entry-id", String(entry.id));
    LOG_CELLS.forEach(function (name) {
      var cell = document.createElement("td");
      var value = entry[name] === undefined || entry[name] === null ? "" : String(entry[name]);
      if (CELL_CLASS[name]) { cell.className = CELL_CLASS[name]; }
      if (name === "ts" && typeof entry.url === "string") {
        var link = document.createElement("a");
        link.href = entry.url;
        link.textContent = value;
        cell.appendChild(link);
      } else {
        cell.textContent = value;
      }
      row.appendChild(cell);
    });
    return row;
  }

  function skippedRow(count) {
    var row = document.createElement("tr");
    var cell = document.createElement("td");
    row.className = "log-skipped";
    cell.colSpan = LOG_CELLS.length;
    cell.className = "text-muted small";
    cell.textContent = count + " entries skipped (too many at once); the explorer has them all.";
    row.appendChild(cell);
    return row;
  }

  function followLogs(root) {
    var body = part(root, "entries");
    var url = new URL(root.getAttribute("data-log-stream-url"), window.location.href);
    var lastId = Number(url.searchParams.get("after") || 0);
    var failures = 0;

    function show(data) {
      // One DOM insertion per message (a fragment), and never more rows built than are kept: a
      // burst of a thousand entries costs one layout, not a thousand.
      var fresh = (Array.isArray(data.entries) ? data.entries : []).filter(function (entry) {
        return typeof entry.id === "number" && entry.id > lastId;  // never the same twice
      });
      var batch = document.createDocumentFragment();
      fresh.slice(-LOG_ROWS_KEPT).forEach(function (entry) {
        batch.insertBefore(logRow(entry), batch.firstChild);
      });
      fresh.forEach(function (entry) { lastId = Math.max(lastId, entry.id); });
      if (typeof data.skipped === "number" && data.skipped > 0) {
        batch.appendChild(skippedRow(data.skipped));
      }
      body.insertBefore(batch, body.firstChild);
      while (body.rows.length > LOG_ROWS_KEPT) { body.deleteRow(-1); }
      if (body.rows.length) {
        root.querySelectorAll(".logs-empty").forEach(function (node) { node.remove(); });
      }
      root.setAttribute("data-last-id", String(lastId));
    }

    function open() {
      url.searchParams.set("after", String(lastId));
      var socket = new WebSocket(socketUrl(url.toString()));
      socket.addEventListener("open", function () {
        failures = 0;
        root.classList.add("live-connected");
      });
      socket.addEventListener("message", function (msg) {
        var data;
        try { data = JSON.parse(msg.data); } catch (err) { return; /* ignore a malformed frame */ }
        show(data);
      });
      socket.addEventListener("close", function (event) {
        root.classList.remove("live-connected");
        // 1008: the session ended or the stream was refused; reload to log in again.
        if (event.code === 1008 || failures >= 20) { return; }
        failures += 1;
        window.setTimeout(open, Math.min(10000, 250 * Math.pow(2, failures - 1)));
      });
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-stream-url]").forEach(connect);
    document.querySelectorAll("[data-log-stream-url]").forEach(followLogs);
  });
}());
