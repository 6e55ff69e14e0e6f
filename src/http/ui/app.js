// hornbill's dashboard: plain JavaScript over the Junebug JSON API, same origin.
// Everything that comes from the API goes into the page as text (text nodes, textContent,
// attributes), never as markup.
"use strict";

(() => {
  const AUTH_KEY = "hornbill.authorization";
  const CHANNELS_EVERY = 2000;
  const LOG_EVERY = 1500;
  const LOOKUP_EVERY = 2000;
  // The API lives beside /ui/: relative, so a proxy prefix in front keeps working.
  const BASE = new URL("../", location.href);

  const $ = (id) => document.getElementById(id);
  const charts = window.hornbillCharts; // chart.js, loaded first
  const list = (v) => (Array.isArray(v) ? v : []);

  /** An element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function show(id, text) {
    const e = $(id);
    e.textContent = text || "";
    e.hidden = !text;
  }

  // ---- API ----------------------------------------------------------------------------

  class NeedsCredentials extends Error {}

  /** One request: resolves to {status, env, date} (env: Junebug's envelope, or null;
   * date: the server's clock from its Date header, in ms, or null). */
  async function api(method, path, body) {
    // X-Requested-With: the server then names its Basic challenge so that the browser does
    // not open a login dialog of its own (this page asks).
    const headers = { Accept: "application/json", "X-Requested-With": "hornbill-dashboard" };
    const auth = sessionStorage.getItem(AUTH_KEY);
    if (auth) headers.Authorization = auth;
    const init = { method, headers, cache: "no-store", credentials: "same-origin" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(new URL(path, BASE), init);
    } catch (e) {
      setApiState(false, "cannot reach the server");
      throw e;
    }
    let env = null;
    try {
      env = await resp.json();
    } catch (_) {
      env = null;
    }
    if (resp.status === 401) {
      if (auth) sessionStorage.removeItem(AUTH_KEY);
      askForCredentials(auth ? "Those credentials were refused." : null);
      throw new NeedsCredentials("credentials needed");
    }
    setApiState(true);
    const date = Date.parse(resp.headers.get("Date") || "");
    return { status: resp.status, env, date: Number.isNaN(date) ? null : date };
  }

  /** A failed answer as one line: Junebug's description and its errors' messages. */
  function describe(status, env) {
    if (!env || typeof env !== "object") return `HTTP ${status}`;
    let text = env.description || env.code || `HTTP ${status}`;
    const errors = env.result && Array.isArray(env.result.errors) ? env.result.errors : [];
    const details = errors
      .map((e) => [Array.isArray(e.type) ? e.type.join(",") : e.type, e.message]
        .filter((x) => x !== undefined && x !== null && x !== "")
        .join(": "))
      .filter(Boolean);
    if (details.length) text += ` (${details.join("; ")})`;
    return text;
  }

  function setApiState(ok, why) {
    const s = $("api-state");
    s.textContent = ok ? "connected" : `offline: ${why}`;
    s.className = ok ? "muted" : "error";
  }

  const channelPath = (cid) => `channels/${encodeURIComponent(cid)}`;

  // ---- Credentials --------------------------------------------------------------------

  function askForCredentials(reason) {
    const box = $("login");
    if (reason) $("login-reason").textContent = reason;
    if (box.hidden) {
      box.hidden = false;
      $("login-token").focus();
    }
    $("forget").hidden = true;
  }

  function utf8Base64(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("login-token").value.trim();
    const user = $("login-user").value;
    const password = $("login-password").value;
    let value = null;
    if (token) value = `Token ${token}`;
    else if (user) value = `Basic ${utf8Base64(`${user}:${password}`)}`;
    if (!value) {
      $("login-reason").textContent = "Enter a token, or a username and password.";
      return;
    }
    sessionStorage.setItem(AUTH_KEY, value);
    $("login-form").reset();
    $("login").hidden = true;
    $("forget").hidden = false;
    tick();
  });

  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(AUTH_KEY);
    $("forget").hidden = true;
    tick();
  });

  const waitingForCredentials = () => !$("login").hidden;

  // ---- Formatting ---------------------------------------------------------------------

  const LEVELS = { 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL" };
  const levelName = (n) => LEVELS[n] || String(n);
  const levelClass = (n) => (n >= 40 ? "error" : n >= 30 ? "warning" : "info");

  function rate(v) {
    if (typeof v !== "number") return "–";
    return v === 0 ? "0" : v.toFixed(v < 10 ? 2 : 1);
  }

  function clock(epochSeconds) {
    const d = new Date(epochSeconds * 1000);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  const now = () => clock(Date.now() / 1000);

  function statusBadge(level) {
    const text = level || "unknown";
    return el("span", { class: `badge ${level || "none"}` }, text);
  }

  // ---- Cluster ------------------------------------------------------------------------

  let cluster = null; // the latest GET /cluster result; null before the first or after a failure
  const holders = new Map(); // channel id -> id of the node that holds its lease

  /** GET /cluster into the Cluster panel and `holders`; never throws. */
  async function refreshCluster() {
    try {
      const { status, env, date } = await api("GET", "cluster");
      const result = env && env.result;
      if (status !== 200 || !result || typeof result !== "object") throw new Error(describe(status, env));
      cluster = result;
      holders.clear();
      for (const n of list(result.nodes)) {
        for (const cid of list(n.channels)) holders.set(String(cid), String(n.id));
      }
      // Seconds since last seen by the server's clock (its Date header): the browser's may differ.
      fillCluster(list(result.nodes), (date ?? Date.now()) / 1000);
      show("cluster-error", "");
    } catch (e) {
      cluster = null;
      holders.clear();
      if (!(e instanceof NeedsCredentials)) show("cluster-error", `Cluster: ${e.message}`);
    }
  }

  function fillCluster(nodes, serverNow) {
    const me = String(cluster.node_id ?? "");
    const backend = $("cluster-backend");
    backend.textContent = `${cluster.backend ?? "?"} backend · lease ${cluster.lease_ttl ?? "?"} s`;
    backend.dataset.backend = String(cluster.backend ?? "");
    $("cluster-rows").replaceChildren(...nodes.map((n) => {
      const id = String(n.id ?? "");
      const channels = list(n.channels).map(String);
      const routers = list(n.routers).map(String);
      const seen = typeof n.last_seen === "number" ? Math.max(0, serverNow - n.last_seen) : null;
      const started = typeof n.started === "number" ? new Date(n.started * 1000).toISOString() : null;
      return el("tr", { "data-node": id, class: id === me ? "self" : null },
        el("td", { title: started && `started ${started}` }, el("code", {}, id),
          id === me ? el("span", { class: "tag", title: "the node that answers this page" }, "this node") : null),
        el("td", {}, el("code", {}, String(n.url ?? ""))),
        el("td", { class: "num" }, seen === null ? "–" : `${seen.toFixed(0)} s ago`),
        el("td", { class: "num channels", title: channels.join("\n") || null }, channels.length),
        el("td", { class: "num routers", title: routers.join("\n") || null }, routers.length));
    }));
    $("no-nodes").hidden = nodes.length > 0;
    $("cluster-updated").textContent = `answered by ${me}, ${now()}`;
  }

  /** Who holds channel `cid`: a node id, "—" when none does yet, "?" without a cluster view. */
  function holderText(cid) {
    if (!cluster) return el("span", { class: "muted", title: "the cluster view is unavailable" }, "?");
    const id = holders.get(cid);
    if (!id) return el("span", { class: "muted", title: "no node holds this channel yet" }, "—");
    const self = id === String(cluster.node_id);
    return el("code", { class: self ? "holder self" : "holder", "data-node": id,
      title: self ? "held by the node that answers this page" : "held by another node" }, id);
  }

  // ---- Channels -----------------------------------------------------------------------

  const rows = new Map(); // channel id -> {row, chartRow, cells, chart}
  let selected = null;

  function channelRow(cid) {
    let r = rows.get(cid);
    if (r) return r;
    const select = el("button", { type: "button", class: "link", "data-select": cid,
      onclick: () => selectChannel(cid) }, cid);
    const label = el("div", { class: "muted small" });
    const cells = {
      type: el("td"), status: el("td"), node: el("td", { class: "node small" }),
      components: el("td", { class: "small" }),
      messages: el("td", { class: "num" }), events: el("td", { class: "num" }),
      delivery: el("td", { class: "num" }), queue: el("td", { class: "num" }),
      inFlight: el("td", { class: "num" }), label,
    };
    const row = el("tr", { "data-channel": cid },
      el("td", {}, select, label), cells.type, cells.status, cells.node, cells.components,
      cells.messages, cells.events, cells.delivery, cells.queue, cells.inFlight);
    // Under it, the width of the table: its last 15 minutes.
    const chart = charts.create(210, 40, false);
    const chartRow = el("tr", { class: "chart-row", "data-chart-for": cid },
      el("td", { colspan: row.children.length }, chart));
    r = { row, chartRow, cells, chart };
    rows.set(cid, r);
    return r;
  }

  function fillRow(cid, ch) {
    const { row, chartRow, cells, chart } = channelRow(cid);
    row.classList.toggle("selected", cid === selected);
    chartRow.classList.toggle("selected", cid === selected);
    cells.node.replaceChildren(holderText(cid));
    charts.draw(chart, cid, Date.now());
    if (!ch) {
      cells.status.replaceChildren(el("span", { class: "error" }, "unavailable"));
      return;
    }
    const st = ch.status || {};
    cells.label.textContent = typeof ch.label === "string" ? ch.label : "";
    cells.type.textContent = [ch.type, ch.application ? `app ${ch.application}` : null]
      .filter(Boolean).join(" · ");
    cells.status.replaceChildren(statusBadge(st.status));
    const comps = Object.entries(st.components || {}).map(([name, c]) =>
      el("div", { class: "component" }, statusBadge(c && c.status), " ",
        el("b", {}, name), c && c.type ? ` ${c.type}` : "",
        c && c.message ? el("span", { class: "muted" }, ` — ${c.message}`) : ""));
    cells.components.replaceChildren(...(comps.length ? comps : [el("span", { class: "muted" }, "none reported")]));
    cells.messages.textContent = `${rate(st.inbound_message_rate)} · ${rate(st.outbound_message_rate)}`;
    cells.events.textContent = `${rate(st.submitted_event_rate)} · ${rate(st.rejected_event_rate)}`;
    cells.delivery.textContent =
      `${rate(st.delivery_succeeded_rate)} · ${rate(st.delivery_failed_rate)} · ${rate(st.delivery_pending_rate)}`;
    cells.queue.textContent = st.queue_length ?? "–";
    cells.inFlight.textContent = st.in_flight ?? "–";
  }

  let channelsBusy = false;
  async function refreshChannels() {
    if (channelsBusy || waitingForCredentials()) return;
    channelsBusy = true;
    try {
      // The cluster on the same beat; its failure does not hide the channels.
      const clusterDone = refreshCluster();
      const { status, env } = await api("GET", "channels/");
      if (status !== 200) throw new Error(describe(status, env));
      const ids = Array.isArray(env.result) ? env.result.map(String) : [];
      const views = await Promise.all(ids.map(async (cid) => {
        const r = await api("GET", channelPath(cid));
        return r.status === 200 ? r.env.result : null;
      }));
      await clusterDone;
      const sampled = Date.now();
      ids.forEach((cid, i) => {
        if (views[i]) charts.record(cid, views[i].status, sampled);
      });
      charts.keepOnly(ids);
      const body = $("channel-rows");
      for (const [cid, r] of rows) {
        if (!ids.includes(cid)) {
          r.row.remove();
          r.chartRow.remove();
          rows.delete(cid);
        }
      }
      ids.forEach((cid, i) => {
        if (views[i]) logProtocol.set(cid, views[i].log_protocol === true);
        fillRow(cid, views[i]);
        const r = rows.get(cid);
        body.append(r.row, r.chartRow); // keeps the API's order; moves, not copies
      });
      $("no-channels").hidden = ids.length > 0;
      if (selected) showSelected();
      $("channels-updated").textContent = `updated ${now()}`;
      show("channels-error", "");
    } catch (e) {
      if (!(e instanceof NeedsCredentials)) show("channels-error", `Channels: ${e.message}`);
    } finally {
      channelsBusy = false;
    }
  }

  const detailChart = charts.create(270, 90, true);
  $("history-chart").append(detailChart);

  /** The selected channel's holder and chart, from what the last poll kept. */
  /** Each channel's `log_protocol`, as the last poll saw it. */
  const logProtocol = new Map();
  let protocolBusy = false;

  function showSelected() {
    $("selected-holder").replaceChildren(holderText(selected));
    if (!protocolBusy) $("log-protocol").checked = logProtocol.get(selected) === true;
    charts.draw(detailChart, selected, Date.now());
  }

  function selectChannel(cid) {
    if (selected !== cid) {
      selected = cid;
      lastLog = null;
      $("log-list").replaceChildren();
      $("send-result").replaceChildren();
      $("lookup-result").replaceChildren();
      lookup = null;
      show("log-error", "");
    }
    $("selected-channel").textContent = cid;
    showSelected();
    $("channel-panel").hidden = false;
    for (const [id, r] of rows) {
      r.row.classList.toggle("selected", id === cid);
      r.chartRow.classList.toggle("selected", id === cid);
    }
    history.replaceState(null, "", `#channel=${encodeURIComponent(cid)}`);
    pollLog();
  }

  // ---- Log tail -----------------------------------------------------------------------

  let lastLog = null;
  let logBusy = false;

  function logEntry(entry) {
    const mid = typeof entry.message_id === "string" ? entry.message_id : null;
    const ts = typeof entry.timestamp === "number" ? entry.timestamp : null;
    return el("li", { class: `entry ${levelClass(entry.level)}`, "data-message-id": mid },
      el("time", { title: ts === null ? null : new Date(ts * 1000).toISOString() },
        ts === null ? "" : clock(ts)),
      el("span", { class: "level" }, levelName(entry.level)),
      mid ? el("button", { type: "button", class: "link mid", title: "look this message up",
        onclick: () => lookUp(mid) }, mid.slice(0, 8)) : el("span", { class: "mid" }),
      el("span", { class: "text" }, entry.message ?? ""),
      entry.exception ? el("pre", { class: "small" }, JSON.stringify(entry.exception, null, 1)) : null);
  }

  async function pollLog() {
    const cid = selected;
    if (!cid || logBusy || $("log-pause").checked || waitingForCredentials()) return;
    logBusy = true;
    try {
      const { status, env } = await api("GET", `${channelPath(cid)}/logs?n=50`);
      if (cid !== selected) return;
      if (status !== 200) throw new Error(describe(status, env));
      const entries = Array.isArray(env.result) ? env.result : [];
      const text = JSON.stringify(entries);
      if (text !== lastLog) {
        lastLog = text;
        $("log-list").replaceChildren(...entries.map(logEntry));
      }
      $("log-updated").textContent = `${entries.length} entries, updated ${now()}`;
      show("log-error", "");
    } catch (e) {
      if (!(e instanceof NeedsCredentials) && cid === selected) show("log-error", `Log: ${e.message}`);
    } finally {
      logBusy = false;
    }
  }

  // ---- Send ---------------------------------------------------------------------------

  $("send-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const cid = selected;
    if (!cid) return;
    const body = { content: $("send-content").value };
    const to = $("send-to").value.trim();
    const from = $("send-from").value.trim();
    const priority = $("send-priority").value;
    if (to) body.to = to;
    if (from) body.from = from;
    if (priority) body.priority = priority;
    const media = $("send-media").value.trim();
    if (media) body.attachments = [{ url: media }];
    const out = $("send-result");
    const button = $("send-button");
    button.disabled = true;
    out.replaceChildren(el("span", { class: "muted" }, "sending…"));
    try {
      const { status, env } = await api("POST", `${channelPath(cid)}/messages/`, body);
      const mid = env && env.result && env.result.message_id;
      if (status === 201 && typeof mid === "string") {
        out.replaceChildren(el("p", { class: "ok", "data-state": "ok" }, "Submitted: ",
          el("code", { id: "send-message-id" }, mid)));
        lookUp(mid); // its events and log entries, as they arrive
      } else {
        out.replaceChildren(el("p", { class: "error", "data-state": "error", id: "send-error" },
          `Not sent: ${describe(status, env)}`));
      }
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", "data-state": "error", id: "send-error" },
        e instanceof NeedsCredentials ? "Not sent: credentials needed" : `Not sent: ${e.message}`));
    } finally {
      button.disabled = false;
    }
  });

  // A modify turns the channel's protocol lines on or off, without a restart.
  $("log-protocol").addEventListener("change", async (ev) => {
    const cid = selected;
    if (!cid) return;
    const on = ev.target.checked;
    protocolBusy = true;
    try {
      const { status, env } = await api("POST", channelPath(cid), { log_protocol: on });
      if (status !== 200) throw new Error(describe(status, env));
      logProtocol.set(cid, on);
      show("log-error", "");
    } catch (e) {
      ev.target.checked = !on;
      show("log-error", `Protocol lines: ${e instanceof NeedsCredentials ? "credentials needed" : e.message}`);
    } finally {
      protocolBusy = false;
    }
  });

  // ---- Message lookup -----------------------------------------------------------------

  let lookup = null; // {cid, mid} on show, refreshed while shown
  let lookupBusy = false;

  function lookUp(mid) {
    $("lookup-id").value = mid;
    lookup = { cid: selected, mid };
    lastLookup = null;
    refreshLookup();
  }

  $("lookup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const mid = $("lookup-id").value.trim();
    if (mid) lookUp(mid);
  });

  let lastLookup = null;

  /** A message's log entries, oldest first: the per-message endpoint when the server has
   * it, else the entries of the channel's recent log that name the message. */
  async function messageLogs(cid, mid) {
    const own = await api("GET", `${channelPath(cid)}/messages/${encodeURIComponent(mid)}/logs`);
    if (own.status === 200 && Array.isArray(own.env.result)) {
      return { entries: own.env.result, source: "" };
    }
    const all = await api("GET", `${channelPath(cid)}/logs?n=1000`);
    if (all.status !== 200) throw new Error(describe(all.status, all.env));
    const entries = (Array.isArray(all.env.result) ? all.env.result : [])
      .filter((e) => e.message_id === mid)
      .reverse();
    return { entries, source: " (from the channel's recent log)" };
  }

  async function refreshLookup() {
    const q = lookup;
    if (!q || !q.cid || lookupBusy || waitingForCredentials()) return;
    lookupBusy = true;
    const out = $("lookup-result");
    try {
      const { status, env } = await api("GET", `${channelPath(q.cid)}/messages/${encodeURIComponent(q.mid)}`);
      if (q !== lookup) return;
      if (status !== 200) {
        out.replaceChildren(el("p", { class: "error" }, describe(status, env)));
        return;
      }
      const r = env.result || {};
      const events = Array.isArray(r.events) ? r.events : [];
      const logs = await messageLogs(q.cid, q.mid);
      if (q !== lookup) return;
      const text = JSON.stringify([r, logs]);
      if (text === lastLookup) return;
      lastLookup = text;
      out.replaceChildren(
        el("p", {}, "Message ", el("code", {}, String(r.id ?? q.mid)), ": ",
          r.last_event_type
            ? el("span", { id: "lookup-last-event" }, `last event ${r.last_event_type} at ${r.last_event_timestamp}`)
            : el("span", { class: "muted", id: "lookup-last-event" }, "no events (yet), or not a message of this channel")),
        events.length
          ? el("table", { id: "lookup-events", class: "small" },
            el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Event"), el("th", {}, "Details"))),
            el("tbody", {}, events.map((e) => el("tr", {},
              el("td", {}, e.timestamp ?? ""), el("td", {}, e.event_type ?? ""),
              el("td", {}, el("code", {}, JSON.stringify(e.event_details ?? {})))))))
          : null,
        el("h4", {}, `Log entries${logs.source}`),
        logs.entries.length
          ? el("ol", { class: "log", id: "lookup-logs" }, logs.entries.map(logEntry))
          : el("p", { class: "muted" }, "none"));
    } catch (e) {
      if (!(e instanceof NeedsCredentials) && q === lookup) {
        out.replaceChildren(el("p", { class: "error" }, e.message));
      }
    } finally {
      lookupBusy = false;
    }
  }

  // ---- Start --------------------------------------------------------------------------

  function tick() {
    refreshChannels();
    pollLog();
  }

  $("log-pause").addEventListener("change", () => pollLog());
  if (sessionStorage.getItem(AUTH_KEY)) $("forget").hidden = false;
  const wanted = /^#channel=(.+)$/.exec(location.hash);
  if (wanted) selectChannel(decodeURIComponent(wanted[1]));
  tick();
  setInterval(refreshChannels, CHANNELS_EVERY);
  setInterval(pollLog, LOG_EVERY);
  setInterval(refreshLookup, LOOKUP_EVERY);
})();
