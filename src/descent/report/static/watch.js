/* descent watch: draws the events of one or more runs (see descent/watch/log.py).
 *
 * Live: events come from /events (Server-Sent Events), replayed from the start on
 * every load. Report: report.html carries them in <script id="descent-events">.
 * Events are taken in as they arrive; the page is redrawn at most every RENDER_MS.
 */
(function () {
  "use strict";

  const RENDER_MS = 250;
  const MAX_TABLE_ROWS = 500;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const $ = (id) => document.getElementById(id);

  const state = {
    runs: new Map(),      // run id -> everything drawn for it
    canStop: false,
    stopping: false,
    connected: false,
    report: false,
    over: false,          // the server said the log is complete (event "bye")
    notes: [],
    version: 0,           // bumped by every event: render only when it moved
  };

  // -- taking events in ------------------------------------------------------------
  function getRun(id) {
    let r = state.runs.get(id);
    if (!r) {
      r = {
        id: id, title: id, task: "train", config: {}, header: {}, color: PALETTE[state.runs.size % 10],
        records: [], batch: {x: [], loss: []}, lr: {x: [], y: []},
        weights: null, weightsVersion: 0, data: null, curve: null, curveVersion: 0,
        params: null, sweep: null, end: null, groups: null, groupData: null, groupsVersion: 0,
      };
      state.runs.set(id, r);
    }
    return r;
  }

  // Append (x, y) keeping x increasing: an equal x replaces the last point, a smaller
  // one (a run that started over) drops the points from there on.
  function pushXY(xs, ys, x, y) {
    while (xs.length && xs[xs.length - 1] >= x) { xs.pop(); ys.pop(); }
    xs.push(x);
    ys.push(y);
  }

  function ingest(ev) {
    state.version++;
    if (ev.type === "note") { state.notes.push(ev.text); return; }
    const r = getRun(ev.run);
    switch (ev.type) {
      case "run":
        r.header = ev;
        r.title = ev.title || ev.run;
        r.task = ev.task || "train";
        r.config = ev.config || {};
        r.end = null;
        if (ev.task === "sweep") r.sweep = {lrs: ev.lrs || [], monitor: ev.monitor, epochs: [], values: []};
        break;
      case "epoch": {
        const rec = ev.record;
        while (r.records.length && r.records[r.records.length - 1].epoch >= rec.epoch) r.records.pop();
        r.records.push(rec);
        if (ev.lr !== undefined && ev.lr !== null) pushXY(r.lr.x, r.lr.y, rec.epoch, ev.lr);
        break;
      }
      case "batch":
        pushXY(r.batch.x, r.batch.loss, ev.x, ev.loss);
        if (ev.lr !== undefined && ev.lr !== null) pushXY(r.lr.x, r.lr.y, ev.x, ev.lr);
        break;
      case "weights": r.weights = ev; r.weightsVersion++; break;
      case "data": r.data = sortedPairs(ev.x, ev.y); break;
      case "curve": r.curve = sortedPairs(ev.x, ev.y); r.curveVersion++; break;
      case "params": r.params = ev.values; break;
      case "sweep": {
        if (!r.sweep) r.sweep = {lrs: ev.lrs, monitor: ev.monitor, epochs: [], values: []};
        r.sweep.lrs = ev.lrs;
        r.sweep.monitor = ev.monitor;
        r.sweep.diverged = ev.diverged;
        while (r.sweep.epochs.length && r.sweep.epochs[r.sweep.epochs.length - 1] >= ev.epoch) {
          r.sweep.epochs.pop();
          r.sweep.values.pop();
        }
        r.sweep.epochs.push(ev.epoch);
        r.sweep.values.push(ev.values);
        break;
      }
      case "groups": r.groups = ev; r.groupsVersion++; break;
      case "group_data": r.groupData = ev.samples || []; break;
      case "end": r.end = ev; break;
      default: break;
    }
  }

  function sortedPairs(xs, ys) {
    const idx = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
    return {x: idx.map((i) => xs[i]), y: idx.map((i) => ys[i])};
  }

  // -- charts ----------------------------------------------------------------------
  const charts = {};

  // series: [{label, stroke, dash, width, points, x: [...], y: [...]}]; one x per
  // series, joined onto one x axis (uPlot.join) unless `scatter` (mode 2).
  function drawChart(key, el, series, opts) {
    opts = opts || {};
    const width = Math.max(el.clientWidth || 0, 300);
    const height = opts.height || 240;
    const logY = !!opts.logY;
    let data;
    const clean = (y) => y.map((v) => (v === null || v === undefined || !isFinite(v) || (logY && v <= 0) ? null : v));
    if (opts.scatter) {
      data = [null].concat(series.map((s) => [s.x, clean(s.y)]));
    } else {
      const tables = series.map((s) => [s.x, clean(s.y)]);
      data = tables.length ? uPlot.join(tables) : [[]];
    }
    let points = 0;
    series.forEach((s) => { s.y.forEach((v) => { if (v !== null && v !== undefined) points++; }); });
    el.dataset.points = String(points);
    el.dataset.series = String(series.length);
    const signature = JSON.stringify([series.map((s) => [s.label, s.stroke, s.dash, s.width, !!s.points]), logY, opts.scatter]);
    let c = charts[key];
    if (c && c.signature === signature) {
      c.plot.setData(data);
      if (c.width !== width) { c.plot.setSize({width: width, height: height}); c.width = width; }
      return;
    }
    if (c) c.plot.destroy();
    el.textContent = "";
    const uSeries = [opts.scatter ? {} : {label: opts.xLabel || "epoch", value: (u, v) => (v === null ? "–" : fmt(v))}];
    series.forEach((s) => {
      const one = {
        label: s.label, stroke: s.stroke, width: s.width || 1.5, spanGaps: true,
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
      };
      if (s.dash) one.dash = s.dash;
      if (s.points) one.paths = dots(s.stroke);
      one.points = {show: false};
      if (opts.scatter) one.facets = [{scale: "x", auto: true}, {scale: "y", auto: true}];
      uSeries.push(one);
    });
    const uOpts = {
      width: width, height: height, series: uSeries,
      scales: {x: {time: false}, y: logY ? {distr: 3} : {}},
      axes: [{label: opts.xLabel || "epoch"},
             {label: opts.yLabel || "", size: 60, values: (u, splits) => splits.map(tick)}],
      legend: {live: !opts.scatter},
      cursor: {drag: {x: true, y: false}},
    };
    if (opts.scatter) uOpts.mode = 2;
    const plot = new uPlot(uOpts, data, el);
    charts[key] = {plot: plot, signature: signature, width: width};
  }

  // A scatter series: a dot per point, drawn on the chart's canvas (uPlot's own
  // point markers are for lines).
  function dots(color) {
    return (u, si) => {
      const xs = u.data[si][0], ys = u.data[si][1];
      const ctx = u.ctx, r = 2.5 * (window.devicePixelRatio || 1), b = u.bbox;
      ctx.save();
      ctx.beginPath();
      ctx.rect(b.left, b.top, b.width, b.height);
      ctx.clip();
      ctx.fillStyle = color;
      ctx.beginPath();
      for (let i = 0; i < xs.length; i++) {
        if (ys[i] === null) continue;
        const x = u.valToPos(xs[i], "x", true), y = u.valToPos(ys[i], "y", true);
        ctx.moveTo(x + r, y);
        ctx.arc(x, y, r, 0, 2 * Math.PI);
      }
      ctx.fill();
      ctx.restore();
      return null;
    };
  }

  function lineStyle(r, kind, multi) {
    // one run: a colour per kind; several runs: a colour per run, a style per kind
    const single = {train: PALETTE[0], valid: PALETTE[1], batch: "rgba(31,119,180,0.35)"};
    const color = multi ? r.color : single[kind];
    const s = {stroke: kind === "batch" && multi ? color + "59" : color, width: kind === "batch" ? 1 : 2};
    if (kind === "valid" && multi) s.dash = [6, 4];
    return s;
  }

  function renderLoss(runs) {
    runs = runs.filter((r) => r.records.length || r.batch.x.length);
    const multi = runs.length > 1;
    const series = [];
    runs.forEach((r) => {
      if (!r.records.length && !r.batch.x.length) return;
      const name = multi ? r.title + " " : "";
      const ep = r.records.map((rec) => rec.epoch);
      if (r.batch.x.length) series.push(Object.assign({label: name + "batches", x: r.batch.x, y: r.batch.loss}, lineStyle(r, "batch", multi)));
      if (r.records.length) series.push(Object.assign({label: name + "train_loss", x: ep, y: r.records.map((rec) => rec.train_loss)}, lineStyle(r, "train", multi)));
      if (r.records.some((rec) => "valid_loss" in rec)) {
        series.push(Object.assign({label: name + "valid_loss", x: ep, y: r.records.map((rec) => (rec.valid_loss === undefined ? null : rec.valid_loss))}, lineStyle(r, "valid", multi)));
      }
    });
    show("loss-card", series.length > 0);
    const steps = runs.length > 0 && runs.every((r) => r.task === "groups");  // fit --by: per step
    if (series.length) drawChart("loss", $("loss-chart"), series, {yLabel: steps ? "sum of rss / rows" : "loss", logY: false, xLabel: steps ? "step" : undefined});
  }

  const SKIP = new Set(["epoch", "train_loss", "valid_loss", "time"]);

  function renderMetrics(runs) {
    runs = runs.filter((r) => r.records.some((rec) => Object.keys(rec).some((k) => !SKIP.has(k))));
    const multi = runs.length > 1;
    const series = [];
    let n = 0;
    runs.forEach((r) => {
      const keys = [];
      r.records.forEach((rec) => Object.keys(rec).forEach((k) => { if (!SKIP.has(k) && !keys.includes(k)) keys.push(k); }));
      const ep = r.records.map((rec) => rec.epoch);
      keys.forEach((k) => {
        series.push({label: (multi ? r.title + " " : "") + k, stroke: PALETTE[(2 + n++) % 10], width: 2,
                     x: ep, y: r.records.map((rec) => (rec[k] === undefined ? null : rec[k]))});
      });
    });
    show("metrics-card", series.length > 0);
    if (series.length) drawChart("metrics", $("metrics-chart"), series, {yLabel: "metric"});
  }

  function renderLr(runs) {
    runs = runs.filter((r) => r.lr.x.length);
    const multi = runs.length > 1;
    const series = runs.map((r) => ({label: (multi ? r.title + " " : "") + "lr", stroke: multi ? r.color : PALETTE[2], width: 2, x: r.lr.x, y: r.lr.y}));
    show("lr-card", series.length > 0);
    if (series.length) drawChart("lr", $("lr-chart"), series, {yLabel: "learning rate"});
  }

  function renderSweep(runs) {
    runs = runs.filter((r) => r.sweep && r.sweep.epochs.length);
    const series = [];
    const multi = runs.length > 1;
    runs.forEach((r) => {
      if (!r.sweep || !r.sweep.epochs.length) return;
      r.sweep.lrs.forEach((lr, i) => {
        series.push({label: (multi ? r.title + " " : "") + "lr " + fmt(lr), stroke: PALETTE[series.length % 10], width: 2,
                     x: r.sweep.epochs, y: r.sweep.values.map((vals) => (vals ? vals[i] : null))});
      });
    });
    show("sweep-card", series.length > 0);
    if (series.length) {
      const monitor = runs.find((r) => r.sweep) ? runs.find((r) => r.sweep).sweep.monitor : "loss";
      drawChart("sweep", $("sweep-chart"), series, {yLabel: monitor + " (log)", logY: true});
    }
  }

  function renderFit(runs) {
    runs = runs.filter((r) => r.data || r.curve || r.params);
    const series = [];
    const multi = runs.length > 1;
    let version = 0;
    runs.forEach((r) => {
      version += r.curveVersion;
      if (r.data) series.push({label: (multi ? r.title + " " : "") + "data", stroke: "#555", points: true, x: r.data.x, y: r.data.y});
      if (r.curve) series.push({label: (multi ? r.title + " " : "") + "fit", stroke: multi ? r.color : PALETTE[3], width: 2.5, x: r.curve.x, y: r.curve.y});
    });
    show("fit-card", series.length > 0);
    if (!series.length) return;
    const el = $("fit-chart");
    drawChart("fit", el, series, {scatter: true, xLabel: "x", yLabel: "y"});
    el.dataset.version = String(version);
    const rows = [];
    runs.forEach((r) => {
      if (!r.params) return;
      Object.keys(r.params).forEach((k) => rows.push([(multi ? r.title + " " : "") + k, fmt(r.params[k])]));
    });
    fillKv($("params"), rows);
  }

  // descent fit --by: how the groups stand, the first rows of their table, and a few
  // groups' curves moving toward their points (one small chart each).
  function renderGroups(runs) {
    runs = runs.filter((r) => r.groups || r.groupData);
    show("groups-card", runs.length > 0);
    if (!runs.length) return;
    const r = runs[0];
    const g = r.groups || {rows: [], counts: {}, names: [], samples: []};
    const counts = Object.keys(g.counts || {}).map((k) => g.counts[k] + " " + k).join(", ");
    $("groups-counts").textContent = "(" + (g.n_groups || 0) + (counts ? ": " + counts : "") +
      (g.step !== null && g.step !== undefined ? ", step " + g.step : "") + ")";
    const charts = $("groups-charts");
    const data = r.groupData || [];
    const curves = new Map((g.samples || []).map((c) => [c.group, c]));
    while (charts.children.length < data.length) {  // every box first, so each measures its share
      const box = document.createElement("div");
      box.className = "group-chart";
      box.appendChild(document.createElement("h3"));
      box.appendChild(document.createElement("div"));
      charts.appendChild(box);
    }
    data.forEach((d, i) => {
      const box = charts.children[i];
      box.firstChild.textContent = d.group;
      const series = [{label: "data", stroke: "#555", points: true, x: d.x, y: d.y}];
      const c = curves.get(d.group);
      if (c) series.push({label: "fit", stroke: PALETTE[3], width: 2, x: c.x, y: c.y});
      drawChart("group-" + i, box.lastChild, series, {scatter: true, height: 170, xLabel: "x", yLabel: "y"});
    });
    charts.dataset.version = String(r.groupsVersion);
    const names = g.names || [];
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    ["group"].concat(names, ["rss", "stopped"]).forEach((k) => {
      const th = document.createElement("th");
      th.textContent = k;
      if (k === "group" || k === "stopped") th.className = "text";
      head.appendChild(th);
    });
    const body = table.createTBody();
    (g.rows || []).forEach((row) => {
      const tr = body.insertRow();
      const first = tr.insertCell();
      first.className = "text";
      first.textContent = row.group;
      const bound = row.at_bound || {};
      names.forEach((n) => {
        const td = tr.insertCell();
        td.textContent = fmt(row.params[n]) + (bound[n] ? " (" + bound[n] + " bound)" : "");
      });
      tr.insertCell().textContent = fmt(row.rss);
      const last = tr.insertCell();
      last.className = "text stopped " + row.stopped;
      last.textContent = row.stopped;
    });
    if (g.n_groups > (g.rows || []).length) {
      const tr = body.insertRow();
      tr.className = "note";
      const td = tr.insertCell();
      td.colSpan = names.length + 3;
      td.textContent = "… " + (g.n_groups - g.rows.length) + " more groups in groups.csv";
    }
    const box = $("groups-table");
    box.textContent = "";
    box.appendChild(table);
    box.dataset.rows = String((g.rows || []).length);
  }

  // matplotlib's "bwr": -1 blue, 0 white, +1 red
  function bwr(v) {
    const fade = Math.round(255 * (1 - Math.min(Math.abs(v), 1)));
    return v > 0 ? [255, fade, fade] : [fade, fade, 255];
  }

  function renderWeights(runs) {
    const withW = runs.filter((r) => r.weights);
    show("weights-card", withW.length > 0);
    const box = $("weights");
    withW.forEach((r) => {
      let div = box.querySelector('[data-run="' + CSS.escape(String(r.id)) + '"]');
      if (!div) {
        div = document.createElement("div");
        div.className = "weights-run";
        div.dataset.run = String(r.id);
        box.appendChild(div);
      }
      if (div.dataset.version === String(r.weightsVersion)) return;
      div.dataset.version = String(r.weightsVersion);
      const w = r.weights;
      const k = w.shape[0], h = w.shape[1], wd = w.shape[2];
      const raw = atob(w.data);
      const q = new Int8Array(raw.length);
      for (let i = 0; i < raw.length; i++) q[i] = (raw.charCodeAt(i) << 24) >> 24;
      div.textContent = "";
      if (withW.length > 1) {
        const t = document.createElement("div");
        t.textContent = r.title;
        div.appendChild(t);
      }
      const grid = document.createElement("div");
      grid.className = "weights-grid";
      for (let c = 0; c < k; c++) {
        const fig = document.createElement("figure");
        const canvas = document.createElement("canvas");
        canvas.width = wd;
        canvas.height = h;
        const ctx = canvas.getContext("2d");
        const img = ctx.createImageData(wd, h);
        for (let p = 0; p < h * wd; p++) {
          const rgb = bwr(q[c * h * wd + p] / 127);
          img.data[4 * p] = rgb[0]; img.data[4 * p + 1] = rgb[1]; img.data[4 * p + 2] = rgb[2]; img.data[4 * p + 3] = 255;
        }
        ctx.putImageData(img, 0, 0);
        const cap = document.createElement("figcaption");
        cap.textContent = w.labels[c] + "  ±" + fmt(w.scale[c]);
        fig.appendChild(canvas);
        fig.appendChild(cap);
        grid.appendChild(fig);
      }
      div.appendChild(grid);
      const ep = document.createElement("figcaption");
      ep.textContent = "at epoch " + fmt(w.epoch);
      div.appendChild(ep);
    });
    box.dataset.version = String(withW.reduce((a, r) => a + r.weightsVersion, 0));
  }

  function renderEpochs(runs) {
    const withRec = runs.filter((r) => r.records.length);
    show("epochs-card", withRec.length > 0);
    if (!withRec.length) return;
    const multi = withRec.length > 1;
    const cols = [];
    withRec.forEach((r) => r.records.forEach((rec) => Object.keys(rec).forEach((k) => { if (!cols.includes(k)) cols.push(k); })));
    const box = $("epochs");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    (multi ? ["run"] : []).concat(cols).forEach((k) => {
      const th = document.createElement("th");
      th.textContent = k;
      if (k === "run") th.className = "text";
      head.appendChild(th);
    });
    const body = table.createTBody();
    withRec.forEach((r) => {
      const rows = r.records.slice(-MAX_TABLE_ROWS);
      if (rows.length < r.records.length) {
        const tr = body.insertRow();
        tr.className = "note";
        const td = tr.insertCell();
        td.colSpan = cols.length + (multi ? 1 : 0);
        td.textContent = "… " + (r.records.length - rows.length) + " earlier epochs";
      }
      rows.forEach((rec) => {
        const tr = body.insertRow();
        if (multi) { const td = tr.insertCell(); td.className = "text"; td.textContent = r.title; }
        cols.forEach((k) => {
          const v = rec[k];
          tr.insertCell().textContent = v === undefined ? "" : k === "time" ? v.toFixed(3) + "s" : fmt(v);
        });
      });
    });
    box.textContent = "";
    box.appendChild(table);
    box.dataset.rows = String(withRec.reduce((a, r) => a + r.records.length, 0));
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function renderConfig(runs) {
    const box = $("config");
    const shown = runs.filter((r) => Object.keys(r.config).length || r.header.model);
    show("config-card", shown.length > 0);
    box.textContent = "";
    shown.forEach((r) => {
      const d = document.createElement("details");
      d.open = shown.length === 1;
      const s = document.createElement("summary");
      s.textContent = r.title;
      d.appendChild(s);
      const t = document.createElement("table");
      t.className = "kv";
      const rows = Object.keys(r.config).map((k) => [k, typeof r.config[k] === "object" ? JSON.stringify(r.config[k]) : String(r.config[k])]);
      ["model", "optimizer", "loss", "epochs"].forEach((k) => {
        if (r.header[k] !== undefined && !(k in r.config)) rows.push([k, String(r.header[k])]);
      });
      fillKv(t, rows);
      d.appendChild(t);
      box.appendChild(d);
    });
  }

  function renderSummary(runs) {
    const ended = runs.filter((r) => r.end);
    show("summary-card", ended.length > 0);
    const box = $("summary");
    box.textContent = "";
    ended.forEach((r) => {
      const p = document.createElement("p");
      const b = document.createElement("span");
      b.className = "stopped " + r.end.stopped;
      b.textContent = (ended.length > 1 ? r.title + ": " : "") + "stopped: " + r.end.stopped;
      p.appendChild(b);
      const length = r.task === "groups" ? (r.end.steps ? " (" + r.end.steps + " steps)" : "")
        : " (" + r.end.epochs + " epochs" + (r.end.steps !== undefined ? ", " + r.end.steps + " steps" : "") + ")";
      p.appendChild(document.createTextNode(" — " + (r.end.message || "") + length));
      box.appendChild(p);
      const final = r.end.final || {};
      const rows = Object.keys(final).map((k) => [k, fmt(final[k])]);
      if (rows.length) {
        const t = document.createElement("table");
        t.className = "kv";
        fillKv(t, rows);
        box.appendChild(t);
      }
    });
    box.dataset.stopped = ended.map((r) => r.end.stopped).join(",");
  }

  function renderHeader(runs) {
    const titles = runs.map((r) => r.title);
    const title = titles.length ? titles.join(" · ") : "descent";
    $("title").textContent = title;
    document.title = (state.report ? "descent report — " : "descent watch — ") + title;
    const status = $("status");
    const allEnded = runs.length > 0 && runs.every((r) => r.end);
    let text, cls;
    if (state.report) { text = "report"; cls = "ended"; }
    else if (allEnded) { text = "finished"; cls = "ended"; }
    else if (state.over) { text = "the command has ended"; cls = "ended"; }
    else if (state.connected) { text = "live"; cls = "live"; }
    else { text = "connection lost, retrying…"; cls = "lost"; }
    if (state.notes.length && !allEnded) text += " — " + state.notes[state.notes.length - 1];
    const live = runs.filter((r) => !r.end && r.records.length);
    if (!allEnded && live.length === 1) {
      const r = live[0];
      text += " — epoch " + r.records[r.records.length - 1].epoch + (r.header.epochs ? " of " + r.header.epochs : "");
    }
    status.textContent = text;
    status.className = "status " + cls;
    const stop = $("stop");
    stop.hidden = state.report || !state.canStop || allEnded || state.over;
    stop.disabled = state.stopping;
  }

  // -- helpers ---------------------------------------------------------------------
  // An axis label: small and large numbers (a learning rate of 1e-4) in e-notation.
  function tick(v) {
    if (v === null || v === undefined) return "";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v) && Math.abs(v) < 1e9) return String(v);
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(5)));
  }

  function fillKv(table, rows) {
    table.textContent = "";
    rows.forEach((row) => {
      const tr = table.insertRow();
      tr.insertCell().textContent = row[0];
      tr.insertCell().textContent = row[1];
    });
  }

  function show(id, on) { $(id).hidden = !on; }

  // -- rendering, at most every RENDER_MS --------------------------------------------
  let rendered = -1, timer = null;
  function render() {
    timer = null;
    if (rendered === state.version) return;
    rendered = state.version;
    const runs = Array.from(state.runs.values());
    renderHeader(runs);
    renderSummary(runs);
    renderLoss(runs);
    renderMetrics(runs);
    renderLr(runs);
    renderSweep(runs);
    renderFit(runs);
    renderGroups(runs);
    renderWeights(runs);
    renderEpochs(runs);
    renderConfig(runs);
    document.body.dataset.version = String(state.version);
  }
  function schedule() { if (timer === null) timer = setTimeout(render, RENDER_MS); }

  window.addEventListener("resize", () => { state.version++; schedule(); });

  // -- the Stop button -------------------------------------------------------------
  function token() { return new URLSearchParams(location.search).get("token") || ""; }

  $("stop").addEventListener("click", () => {
    state.stopping = true;
    state.notes.push("stopping…");
    state.version++;
    render();
    fetch("api/stop", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token: token()}),
      credentials: "omit",
    }).then((resp) => {
      if (!resp.ok) throw new Error("the server answered " + resp.status);
    }).catch((err) => {
      state.stopping = false;
      state.notes.push("Stop failed: " + err.message);
      state.version++;
      schedule();
    });
  });

  // -- start -----------------------------------------------------------------------
  window.descentWatch = {state: state, charts: charts, render: render};
  const embedded = $("descent-events");
  if (embedded) {
    state.report = true;
    JSON.parse(embedded.textContent).forEach(ingest);
    render();
    document.body.dataset.ready = "1";
    return;
  }
  const source = new EventSource("events?token=" + encodeURIComponent(token()));
  source.addEventListener("hello", (e) => {
    const hello = JSON.parse(e.data);
    state.canStop = hello.can_stop;
    state.connected = true;
    state.version++;
    schedule();
    document.body.dataset.ready = "1";
  });
  source.onmessage = (e) => { ingest(JSON.parse(e.data)); schedule(); };
  // The run is over and every event is here: no reconnecting to a server that has gone.
  source.addEventListener("bye", () => { source.close(); state.over = true; state.version++; schedule(); });
  source.onerror = () => { state.connected = false; state.version++; schedule(); };
})();
