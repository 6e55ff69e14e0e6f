// hornbill's dashboard: each channel's last 15 minutes, drawn by hand as inline SVG.
// The samples are the channel status objects the page already polls (their rates are those
// of the previous metric window), kept in this tab's memory only: per channel at most 15
// minutes of them (and never more than MAX_SAMPLES), dropped when the channel goes.
"use strict";

window.hornbillCharts = (() => {
  const SPAN_MS = 15 * 60 * 1000;
  // A hard cap whatever the polling pace (the page polls every 2 s: 450 in 15 minutes).
  const MAX_SAMPLES = 1000;
  // A longer silence between two samples (tab asleep, server unreachable) breaks the line.
  const GAP_MS = 10 * 1000;
  const SVG = "http://www.w3.org/2000/svg";

  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

  /** Sums the numbers among `values`; null when none is one. */
  function sum(values) {
    const ns = values.map(num).filter((v) => v !== null);
    return ns.length ? ns.reduce((a, b) => a + b, 0) : null;
  }

  // What a lane shows, from one status object.
  const SERIES = [
    { key: "in", label: "in", unit: "/s", title: "messages in per second",
      of: (st) => num(st.inbound_message_rate) },
    { key: "out", label: "out", unit: "/s", title: "messages out per second",
      of: (st) => num(st.outbound_message_rate) },
    { key: "events", label: "events", unit: "/s",
      title: "events per second: submitted, rejected and delivery reports",
      of: (st) => sum([st.submitted_event_rate, st.rejected_event_rate,
        st.delivery_succeeded_rate, st.delivery_failed_rate, st.delivery_pending_rate]) },
    { key: "queue", label: "queue", unit: "", title: "messages waiting to be sent",
      of: (st) => num(st.queue_length) },
  ];

  const histories = new Map(); // channel id -> [{t, in, out, events, queue}], oldest first

  /** Drops what is older than the span, then the oldest beyond the cap. */
  function prune(samples, now) {
    let drop = 0;
    while (drop < samples.length && samples[drop].t < now - SPAN_MS) drop += 1;
    drop = Math.max(drop, samples.length - MAX_SAMPLES);
    if (drop > 0) samples.splice(0, drop);
  }

  /** One sample of channel `cid` from its status object, taken at `now` (ms). */
  function record(cid, status, now) {
    let samples = histories.get(cid);
    if (!samples) {
      samples = [];
      histories.set(cid, samples);
    }
    const sample = { t: now };
    for (const s of SERIES) sample[s.key] = s.of(status || {});
    samples.push(sample);
    prune(samples, now);
  }

  /** Forgets every channel not in `ids`. */
  function keepOnly(ids) {
    const wanted = new Set(ids);
    for (const cid of histories.keys()) if (!wanted.has(cid)) histories.delete(cid);
  }

  function fmt(v, unit) {
    if (v === null) return "–";
    if (unit === "") return String(Math.round(v));
    return v === 0 ? "0" : v.toFixed(v < 10 ? 2 : 1);
  }

  function node(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** An empty chart: a <div class="chart"> of one <svg> lane per series, each `width` x
   * `height`; `axis` adds the time axis labels under each. */
  function create(width, height, axis) {
    const box = document.createElement("div");
    box.className = axis ? "chart axis" : "chart";
    for (const s of SERIES) {
      const svg = node("svg", { class: `lane s-${s.key}`, width, height,
        viewBox: `0 0 ${width} ${height}`, role: "img", "data-series": s.key });
      box.append(svg);
    }
    return box;
  }

  const camel = (key) => key[0].toUpperCase() + key.slice(1);

  /** Draws channel `cid`'s last 15 minutes into `box` (from `create`), as of `now` (ms):
   * per series a line over 15 minutes scaled to its own maximum, labelled with its latest
   * value and that maximum. Sets data-samples and, per series, data-max-KEY and
   * data-latest-KEY on the box, and data-points on each line, for tests and tools. */
  function draw(box, cid, now) {
    const samples = histories.get(cid) || [];
    prune(samples, now);
    const axis = box.classList.contains("axis");
    box.dataset.samples = String(samples.length);
    for (const svg of box.querySelectorAll("svg.lane")) {
      const s = SERIES.find((x) => x.key === svg.dataset.series);
      const width = Number(svg.getAttribute("width"));
      const height = Number(svg.getAttribute("height"));
      const top = 16;
      const bottom = height - (axis ? 14 : 2);
      const values = samples.map((p) => p[s.key]).filter((v) => v !== null);
      const max = values.length ? Math.max(...values) : null;
      const latest = samples.length ? samples[samples.length - 1][s.key] : null;
      const x = (t) => ((t - (now - SPAN_MS)) / SPAN_MS) * width;
      const y = (v) => (max ? bottom - (v / max) * (bottom - top) : bottom);
      let d = "";
      let points = 0;
      let last = null;
      for (const p of samples) {
        const v = p[s.key];
        if (v === null) {
          last = null;
          continue;
        }
        d += `${last === null || p.t - last > GAP_MS ? "M" : "L"}${x(p.t).toFixed(1)} ${y(v).toFixed(1)}`;
        points += 1;
        last = p.t;
      }
      const line = node("path", { class: "line", d: d || "M0 0" });
      line.dataset.points = String(points);
      const parts = [
        node("title", {}, `${s.title}, last 15 minutes: latest ${fmt(latest, s.unit)}, ` +
          `max ${fmt(max, s.unit)} (${samples.length} samples)`),
        node("text", { class: "label", x: 0, y: 11 }, `${s.label} ${fmt(latest, s.unit)}${s.unit}`),
        node("text", { class: "max", x: width, y: 11, "text-anchor": "end" },
          `max ${fmt(max, s.unit)}`),
        node("line", { class: "base", x1: 0, x2: width, y1: bottom, y2: bottom }),
        line,
      ];
      if (axis) {
        parts.push(node("text", { class: "axis", x: 0, y: height - 2 }, "−15 min"),
          node("text", { class: "axis", x: width, y: height - 2, "text-anchor": "end" }, "now"));
      }
      svg.replaceChildren(...parts);
      box.dataset[`max${camel(s.key)}`] = max === null ? "" : String(max);
      box.dataset[`latest${camel(s.key)}`] = latest === null ? "" : String(latest);
    }
  }

  return { record, keepOnly, create, draw, SPAN_MS, MAX_SAMPLES };
})();
