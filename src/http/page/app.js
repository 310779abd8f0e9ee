/* feedback-loop dashboard: the page's only script (plain ES2020, no library, no build step).
 *
 * The same code runs the live page served at `/` and the offline HTML report. A `source`
 * object hides where the data comes from: the HTTP API (polled every 2 s) or the JSON inlined
 * in the report (no network request at all). Both answer in the API's shapes, and everything
 * after that is shared: selectors, KPI tiles, inline-SVG charts drawn here (no chart library),
 * the drift table, alerts and pipeline health. README.md documents the data contract and the
 * DOM hooks (ids, data-* attributes) that the browser tests rely on.
 */
(() => {
  'use strict';

  // ------------------------------------------------------------------ constants

  const POLL_MS = 2000;
  const DEFAULT_LIMIT = 240;
  // One colour per version, by the version's rank in the model's sorted list (null first).
  const PALETTE = ['#2563eb', '#ea580c', '#059669', '#9333ea', '#db2777', '#0891b2', '#ca8a04', '#475569'];
  const DANGER = '#dc2626';

  const METRICS = {
    classification: [
      { key: 'accuracy', label: 'Accuracy', bounds: [0, 1], higher: true },
      { key: 'f1', label: 'F1', bounds: [0, 1], higher: true },
      { key: 'roc_auc', label: 'ROC AUC', bounds: [0, 1], higher: true },
      { key: 'precision', label: 'Precision', bounds: [0, 1], higher: true },
      { key: 'recall', label: 'Recall', bounds: [0, 1], higher: true },
      { key: 'log_loss', label: 'Log loss', bounds: [0, null], higher: false },
      { key: 'brier', label: 'Brier', bounds: [0, 1], higher: false },
    ],
    regression: [
      { key: 'mae', label: 'MAE', bounds: [0, null], higher: false },
      { key: 'rmse', label: 'RMSE', bounds: [0, null], higher: false },
      { key: 'mape', label: 'MAPE', bounds: [0, null], higher: false },
      { key: 'r2', label: 'R²', bounds: [null, 1], higher: true },
    ],
  };

  const COUNT_KINDS = [
    { key: 'joined', label: 'Joined', color: '#64748b' },
    { key: 'expired_predictions', label: 'Expired', color: '#f59e0b' },
    { key: 'orphan_outcomes', label: 'Orphaned', color: '#a855f7' },
    { key: 'late', label: 'Late', color: '#06b6d4' },
    { key: 'invalid', label: 'Invalid', color: '#ef4444' },
    { key: 'duplicates', label: 'Duplicates', color: '#84cc16' },
  ];

  const DRIFT_STATS = [
    { key: 'psi', label: 'PSI', get: (f) => f.psi },
    { key: 'ks', label: 'KS statistic', get: (f) => f.ks?.statistic },
    { key: 'ks_p', label: 'KS p-value', get: (f) => f.ks?.p_value, pvalue: 'ks' },
    { key: 'js', label: 'Jensen-Shannon', get: (f) => f.js },
    { key: 'chi_p', label: 'χ² p-value', get: (f) => f.chi_square?.p_value, pvalue: 'chi_square' },
    { key: 'wasserstein', label: 'Wasserstein', get: (f) => f.wasserstein },
  ];
  const DRIFT_OUTPUTS = ['prediction', 'score', 'label'];

  const DETECTORS = [
    { key: 'adwin', label: 'ADWIN', shape: 'circle' },
    { key: 'ddm', label: 'DDM', shape: 'square' },
    { key: 'page_hinkley', label: 'Page-Hinkley', shape: 'triangle' },
  ];
  const SEVERITY_RANK = { critical: 0, error: 1, warning: 2, info: 3 };
  const SEVERITY_COLOR = { critical: DANGER, warning: '#d97706', info: '#0ea5e9' }; // firing episodes

  // ------------------------------------------------------------------ small helpers

  const $ = (sel) => document.querySelector(sel);
  const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  const r1 = (v) => Math.round(v * 10) / 10;
  const vkey = (v) => (v == null ? '-' : String(v)); // the null version is "-", as in alert ids
  const tms = (iso) => { const t = typeof iso === 'string' ? Date.parse(iso) : NaN; return Number.isFinite(t) ? t : null; };
  const collator = new Intl.Collator('en', { numeric: true });
  const naturalCmp = (a, b) => collator.compare(String(a), String(b));
  const cmpVersion = (a, b) => (a == null || b == null ? (a == null ? 0 : 1) - (b == null ? 0 : 1) : naturalCmp(a, b));
  const segKey = (seg) => (seg && typeof seg === 'object' ? Object.entries(seg).map(([k, v]) => `${k}=${v}`).join(',') || null : null);
  const segObj = (key) => { const i = key.indexOf('='); return { [key.slice(0, i)]: key.slice(i + 1) }; };
  const isAlert = (e) => e && typeof e.alert_id === 'string';
  const isTrigger = (e) => e && typeof e.trigger_id === 'string';

  /** An element as a string: attributes escaped, null/false attributes left out. */
  function h(name, attrs = {}, inner = '') {
    let a = '';
    for (const [k, v] of Object.entries(attrs)) if (v != null && v !== false) a += ` ${k}="${esc(v)}"`;
    return `<${name}${a}>${inner}</${name}>`;
  }

  function fmt(v) {
    v = num(v);
    if (v == null) return '—';
    const a = Math.abs(v);
    if (a === 0) return '0';
    if (a >= 1000) return Math.round(v).toLocaleString('en-US');
    if (a >= 10) return v.toFixed(1);
    if (a >= 0.01) return v.toFixed(3);
    if (a >= 0.0001) return v.toPrecision(2);
    return v.toExponential(1);
  }
  const fmtInt = (v) => (num(v) == null ? '—' : Math.round(v).toLocaleString('en-US'));
  const fmtPct = (v) => (num(v) == null ? '—' : `${(v * 100).toFixed(1)}%`);
  const isoOf = (t) => new Date(t).toISOString();
  const hhmm = (iso) => (iso.slice(17, 19) === '00' ? iso.slice(11, 16) : iso.slice(11, 19));
  function fmtWindow(w) {
    const s = tms(w?.start), e = tms(w?.end);
    if (e == null) return '—';
    const ei = isoOf(e);
    return `${ei.slice(0, 10)} ${s != null ? hhmm(isoOf(s)) + '–' : ''}${hhmm(ei)} UTC`;
  }
  const fmtStamp = (iso) => { const t = tms(iso); return t == null ? '—' : `${isoOf(t).slice(5, 10)} ${hhmm(isoOf(t))}`; };
  function fmtTick(t, step, span) {
    const iso = isoOf(t);
    if (step >= 864e5) return iso.slice(5, 10);
    if (span > 864e5 && iso.slice(11, 19) === '00:00:00') return iso.slice(5, 10);
    return step < 6e4 ? iso.slice(11, 19) : iso.slice(11, 16);
  }

  /** An axis label with as many decimals as the tick step needs (0.84, not 0.840). */
  const fmtAxis = (v, step) => (step >= 1 ? Math.round(v).toLocaleString('en-US') : v.toFixed(Math.min(8, Math.ceil(-Math.log10(step) - 1e-9))));
  function niceStep(span, count) {
    const raw = span / count, mag = 10 ** Math.floor(Math.log10(raw)), e = raw / mag;
    return mag * (e >= 7.5 ? 10 : e >= 3.5 ? 5 : e >= 1.5 ? 2 : 1);
  }
  /** A y domain with round ends and ~5 ticks around the values, kept within the bounds. */
  function niceDomain(vals, bounds, zero) {
    let lo = vals.length ? Math.min(...vals) : 0, hi = vals.length ? Math.max(...vals) : 1;
    if (zero) lo = Math.min(lo, 0);
    if (hi - lo < 1e-12) { const d = Math.abs(hi) * 0.1 || 0.5; lo -= zero && lo === 0 ? 0 : d; hi += d; }
    const pad = (hi - lo) * 0.08;
    if (!(zero && lo === 0)) lo -= pad;
    hi += pad;
    if (bounds[0] != null) lo = Math.max(lo, bounds[0]);
    if (bounds[1] != null) hi = Math.min(hi, bounds[1]);
    const step = niceStep(hi - lo || 1, 4);
    lo = Math.floor(lo / step + 1e-9) * step;
    hi = Math.ceil(hi / step - 1e-9) * step;
    const ticks = [];
    for (let v = lo; v <= hi + step / 2; v += step) ticks.push(+v.toFixed(12));
    return { lo, hi: hi > lo ? hi : lo + step, ticks, step };
  }
  const TIME_STEPS = [1e3, 5e3, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 108e5, 216e5, 432e5, 864e5, 1728e5, 6048e5];
  function timeTicks(t0, t1, max) {
    const span = t1 - t0;
    const step = TIME_STEPS.find((s) => span / s <= max) || Math.ceil(span / max / 864e5) * 864e5;
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
    return { ticks, step };
  }

  // ------------------------------------------------------------------ data sources
  // Both answer in the API's shapes (README.md, "Data contract").

  function liveSource(limit) {
    async function get(path, params) {
      const qs = params ? new URLSearchParams(params).toString() : '';
      const res = await fetch(`api/v1/${path}${qs ? `?${qs}` : ''}`, { cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error(`/api/v1/${path}: HTTP ${res.status}`);
      return res.json();
    }
    return {
      mode: 'live',
      models: () => get('models'),
      windows(model, version, segment) {
        const p = {};
        if (version != null) p.version = version;
        if (segment) p.segment = segment;
        p.limit = String(limit);
        return get(`models/${encodeURIComponent(model)}/windows`, p);
      },
      alerts: () => get('alerts'),
      status: () => get('status'),
    };
  }

  function reportSource(data) {
    const models = Array.isArray(data.models) ? data.models : [];
    const seriesOf = (model) => (models.find((m) => m && m.model === model) || {}).series || [];
    return {
      mode: 'report',
      async models() {
        const latest = [], segments = {};
        for (const m of models) {
          for (const s of (m && m.series) || []) {
            const k = segKey(s.segment);
            if (k) {
              const [dim, val] = Object.entries(segObj(k))[0];
              const dims = (segments[m.model] = segments[m.model] || {});
              dims[dim] = dims[dim] || [];
              if (!dims[dim].includes(val)) dims[dim].push(val);
            } else if (Array.isArray(s.windows) && s.windows.length) {
              latest.push(s.windows[s.windows.length - 1]);
            }
          }
        }
        return { models: latest, segments };
      },
      async windows(model, version, segment) {
        const s = seriesOf(model).find((x) => vkey(x.version) === vkey(version) && segKey(x.segment) === (segment || null));
        return { model, version, segment: segment ? segObj(segment) : null, windows: (s && s.windows) || [] };
      },
      async alerts() { return data.alerts || { firing: [], events: [] }; },
      async status() { return data.status || null; },
    };
  }

  // ------------------------------------------------------------------ state

  const state = {
    mode: null,
    source: null,
    title: null,
    generatedAt: null,
    catalog: new Map(), // model -> { name, versions: [version|null], segments: {dim: [value]}, task }
    data: null, // { model, segment, base: Map(vkey -> records), shown: Map(vkey -> records) }
    alerts: null,
    status: null,
    sel: {
      model: null, segment: null, metric: null,
      hidden: new Map(), // model -> Set of version keys not drawn
      countsVersion: null, driftVersion: null, driftFeature: null, driftStat: 'psi',
    },
    gen: 0,
    timer: null,
    sig: '',
    updatedAt: null,
    dataError: null, // the report's inline JSON did not parse
  };

  function buildCatalog(payload) {
    const cat = new Map();
    for (const r of (payload && payload.models) || []) {
      if (!r || typeof r.model !== 'string') continue;
      const m = cat.get(r.model) || { name: r.model, versions: [], segments: {}, task: null };
      const v = r.model_version ?? null;
      if (!m.versions.some((x) => vkey(x) === vkey(v))) m.versions.push(v);
      m.task = m.task || (r.regression ? 'regression' : r.classification ? 'classification' : null);
      cat.set(r.model, m);
    }
    const segs = (payload && payload.segments) || {};
    for (const m of cat.values()) {
      m.versions.sort(cmpVersion);
      for (const [dim, vals] of Object.entries(segs[m.name] || {})) {
        if (Array.isArray(vals)) m.segments[dim] = vals.map(String).sort(naturalCmp);
      }
    }
    return new Map([...cat].sort((a, b) => naturalCmp(a[0], b[0])));
  }

  function ensureSelection() {
    const sel = state.sel;
    if (!state.catalog.has(sel.model)) { sel.model = state.catalog.keys().next().value ?? null; sel.segment = null; }
    const m = state.catalog.get(sel.model);
    if (sel.segment) {
      const [dim, val] = Object.entries(segObj(sel.segment))[0];
      if (!(m && (m.segments[dim] || []).includes(val))) sel.segment = null;
    }
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    state.sel.model = p.get('model');
    state.sel.segment = p.get('segment') || null;
    state.sel.metric = p.get('metric');
  }
  function writeHash() {
    const p = new URLSearchParams();
    for (const k of ['model', 'segment', 'metric']) if (state.sel[k]) p.set(k, state.sel[k]);
    try { history.replaceState(null, '', `#${p.toString()}`); } catch (e) { /* not allowed here: keep going */ }
  }

  // ------------------------------------------------------------------ refresh

  async function refresh() {
    const gen = ++state.gen;
    clearTimeout(state.timer);
    const src = state.source;
    try {
      const [models, alerts, status] = await Promise.all([
        src.models(),
        src.alerts().catch(() => null),
        src.status().catch(() => null),
      ]);
      if (gen !== state.gen) return;
      state.catalog = buildCatalog(models);
      ensureSelection();
      const model = state.catalog.get(state.sel.model);
      let data = null;
      if (model) {
        const seg = state.sel.segment;
        const usable = (p) => ((p && p.windows) || []).filter((r) => r && tms(r.window && r.window.end) != null);
        const fetchAll = (segment) => Promise.all(model.versions.map((v) => src.windows(model.name, v, segment).then((p) => [vkey(v), usable(p)])));
        const [base, shown] = await Promise.all([fetchAll(null), seg ? fetchAll(seg) : null]);
        data = { model: model.name, segment: seg, base: new Map(base), shown: new Map(shown || base) };
      }
      if (gen !== state.gen) return;
      state.data = data;
      state.alerts = alerts;
      state.status = status;
      const sig = JSON.stringify([models, data && [data.model, data.segment, [...data.shown], [...data.base]], alerts, status]);
      if (sig !== state.sig) { state.sig = sig; render(); }
      state.updatedAt = new Date();
      document.body.dataset.updatedAt = state.updatedAt.toISOString();
      document.body.dataset.state = 'ready';
      if (state.dataError) setBanner(state.dataError);
      else setBanner(status && status.publishes === false ? NOT_PUBLISHING : null, 'info');
      renderUpdated();
    } catch (err) {
      if (gen !== state.gen) return;
      document.body.dataset.state = 'error';
      const since = state.updatedAt ? `; showing data from ${state.updatedAt.toLocaleTimeString()}` : '';
      setBanner(state.mode === 'live'
        ? `Cannot reach the feedback-loop API (${err.message || err}). Retrying every ${POLL_MS / 1000} s${since}.`
        : `Cannot read the report data: ${err.message || err}`);
    } finally {
      if (gen === state.gen && state.mode === 'live') state.timer = setTimeout(refresh, POLL_MS);
    }
  }

  function setBanner(text, kind = 'bad') {
    const b = $('#banner');
    b.hidden = !text;
    b.textContent = text || '';
    b.classList.toggle('info', kind === 'info');
    b.dataset.kind = text ? kind : '';
  }

  // Another instance of the group publishes the windows: this one's charts stay empty or
  // stop (GET api/v1/status, `publishes`).
  const NOT_PUBLISHING = 'This instance does not publish windows now: another instance of its consumer group does '
    + '(in "single" mode the one holding every input partition, in "partitioned" mode the one holding partition 0). '
    + 'Open that instance\'s page to see them.';

  function renderUpdated() {
    const el = $('#updated-at');
    if (state.mode === 'report') {
      el.textContent = state.generatedAt ? `Generated ${fmtStamp(state.generatedAt)}` : 'Offline report';
      el.title = state.generatedAt ? `Generated at ${state.generatedAt}` : '';
    } else if (state.updatedAt) {
      el.textContent = `Updated ${state.updatedAt.toLocaleTimeString()}`;
    }
  }

  // ------------------------------------------------------------------ view model

  function colorOf(model, key) {
    const i = model ? model.versions.findIndex((v) => vkey(v) === key) : 0;
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  }
  const byEnd = (records) => new Map(records.map((r) => [tms(r.window.end), r]));
  const pointsOf = (records, get) => records.map((r) => ({ t: tms(r.window.end), v: num(get(r)), r }));

  function makeView() {
    const d = state.data;
    const model = d && state.catalog.get(d.model);
    if (!model) return null;
    const hidden = state.sel.hidden.get(model.name) || new Set();
    const all = model.versions.map((v) => {
      const key = vkey(v), shown = d.shown.get(key) || [], base = d.base.get(key) || [];
      return { version: v, key, color: colorOf(model, key), shown, base, shownAt: byEnd(shown), baseAt: byEnd(base) };
    });
    const visible = all.filter((s) => !hidden.has(s.key));
    const recs = all.flatMap((s) => s.base.concat(s.shown));
    const task = recs.some((r) => r.regression) ? 'regression'
      : recs.some((r) => r.classification) ? 'classification' : model.task || 'classification';
    // Metrics never computed for this model (ROC AUC of a multiclass model) get no tile.
    const has = (m) => recs.some((r) => num(r[task] && r[task][m.key]) != null || num(r.estimated?.metrics?.[m.key]?.value) != null);
    const metrics = METRICS[task].some(has) ? METRICS[task].filter(has) : METRICS[task];
    if (!metrics.some((m) => m.key === state.sel.metric)) state.sel.metric = metrics[0].key;
    const ends = [];
    let windowMs = null;
    for (const s of visible) {
      for (const r of s.shown.concat(s.base)) {
        const e = tms(r.window.end), st = tms(r.window.start);
        ends.push(e);
        if (windowMs == null && st != null && e > st) windowMs = e - st;
      }
    }
    windowMs = windowMs || 6e4;
    const lo = ends.length ? Math.min(...ends) : Date.now() - 6e5, hi = ends.length ? Math.max(...ends) : Date.now();
    return {
      model, name: model.name, segment: d.segment, task, metrics, all, visible, windowMs,
      x: [lo - windowMs / 2, hi + windowMs / 2],
      windows: visible.reduce((n, s) => n + s.shown.length, 0),
      lastEnd: ends.length ? isoOf(hi) : null,
    };
  }

  // ------------------------------------------------------------------ charts (inline SVG)

  function linePath(pts, X, Y) {
    let d = '', pen = false;
    for (const p of pts) {
      if (p.v == null) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${r1(X(p.t))},${r1(Y(p.v))}`;
      pen = true;
    }
    return d;
  }
  function bandPath(pts, X, Y) {
    let d = '', run = [];
    const flush = () => {
      if (run.length) {
        const xy = (p, v) => `${r1(X(p.t))},${r1(Y(v))}`;
        d += `M${run.map((p) => xy(p, p.hi)).join('L')}L${run.slice().reverse().map((p) => xy(p, p.lo)).join('L')}Z`;
      }
      run = [];
    };
    for (const p of pts) { if (p.lo == null || p.hi == null) flush(); else run.push(p); }
    flush();
    return d;
  }
  function shape(kind, x, y, r, attrs) {
    x = r1(x); y = r1(y);
    const poly = (pts) => h('path', { ...attrs, d: `M${pts.map(([dx, dy]) => `${r1(x + dx * r)},${r1(y + dy * r)}`).join('L')}Z` });
    if (kind === 'square') return h('rect', { ...attrs, x: x - r, y: y - r, width: 2 * r, height: 2 * r });
    if (kind === 'triangle') return poly([[0, -1.25], [1.2, 0.85], [-1.2, 0.85]]);
    if (kind === 'diamond') return poly([[0, -1.35], [1.35, 0], [0, 1.35], [-1.35, 0]]);
    return h('circle', { ...attrs, cx: x, cy: y, r });
  }

  const svgRoot = (W, H, attrs, parts) =>
    h('svg', { xmlns: 'http://www.w3.org/2000/svg', width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', ...attrs }, parts.join(''));

  /**
   * Draws `spec` into `box` as one <svg>: time x axis, y axis (optional right axis in [0, 1]),
   * bands, stacked bars, lines (null = gap), horizontal reference lines and markers, plus a
   * crosshair with a tooltip from `spec.tip(t)`. Redrawn when the box's width changes.
   */
  function chart(box, spec) {
    box._spec = spec;
    box._draw = drawChart;
    drawChart(box);
  }

  function drawChart(box) {
    const s = box._spec;
    const W = Math.max(280, Math.floor(box.clientWidth || 640)), H = s.height || 220;
    box._width = W;
    const M = { l: 50, r: s.y2 ? 46 : 14, t: 14, b: 24 };
    const pw = W - M.l - M.r, ph = H - M.t - M.b;
    const [x0, x1] = s.x;
    const X = (t) => M.l + ((t - x0) / (x1 - x0 || 1)) * pw;
    const vals = [];
    for (const l of s.lines || []) if (!l.axis2) for (const p of l.pts) if (p.v != null) vals.push(p.v);
    for (const b of s.bands || []) for (const p of b.pts) { if (p.lo != null) vals.push(p.lo); if (p.hi != null) vals.push(p.hi); }
    for (const st of s.stacks || []) vals.push(st.parts.reduce((a, p) => a + p.v, 0));
    for (const l of s.hlines || []) vals.push(l.v);
    const yd = niceDomain(vals, s.bounds || [], !!s.zero);
    const Y = (v) => M.t + ph - ((Math.min(Math.max(v, yd.lo), yd.hi) - yd.lo) / (yd.hi - yd.lo)) * ph;
    const Y2 = (v) => M.t + ph - Math.min(Math.max(v, 0), 1) * ph;
    const yf = s.yfmt || ((v) => fmtAxis(v, yd.step));
    const out = [];
    for (const v of yd.ticks) {
      out.push(h('line', { class: 'grid', x1: M.l, x2: W - M.r, y1: r1(Y(v)), y2: r1(Y(v)) }));
      out.push(h('text', { class: 'tick', x: M.l - 6, y: r1(Y(v)) + 3.5, 'text-anchor': 'end' }, esc(yf(v))));
    }
    if (s.y2) for (const v of [0, 0.5, 1]) out.push(h('text', { class: 'tick', x: W - M.r + 6, y: r1(Y2(v)) + 3.5 }, esc(s.y2.fmt(v))));
    const xt = timeTicks(x0, x1, Math.max(2, Math.floor(pw / 86)));
    for (const t of xt.ticks) {
      out.push(h('line', { class: 'axis', x1: r1(X(t)), x2: r1(X(t)), y1: M.t + ph, y2: M.t + ph + 4 }));
      out.push(h('text', { class: 'tick', x: r1(X(t)), y: H - 6, 'text-anchor': 'middle' }, esc(fmtTick(t, xt.step, x1 - x0))));
    }
    out.push(h('line', { class: 'axis', x1: M.l, x2: W - M.r, y1: M.t + ph, y2: M.t + ph }));
    for (const b of s.bands || []) out.push(h('path', { ...b.attrs, class: b.cls, d: bandPath(b.pts, X, Y) || null, fill: b.color }));
    if (s.stacks) {
      const bw = Math.max(2, Math.min(30, (X(x0 + s.barMs) - X(x0)) * 0.7));
      for (const st of s.stacks) {
        let acc = 0;
        for (const p of st.parts) {
          if (p.v > 0) {
            const ya = Y(acc), yb = Y(acc + p.v);
            out.push(h('rect', {
              class: 'count-bar', 'data-kind': p.key, 'data-window': st.window, fill: p.color,
              x: r1(X(st.t) - bw / 2), y: r1(yb), width: r1(bw), height: r1(Math.max(0.6, ya - yb)),
            }));
          }
          acc += p.v;
        }
      }
    }
    for (const t of s.vrules || []) out.push(h('line', { class: 'vrule', x1: r1(X(t)), x2: r1(X(t)), y1: M.t, y2: M.t + ph }));
    for (const l of s.hlines || []) {
      const y = r1(Y(l.v));
      out.push(h('line', { class: 'hline', x1: M.l, x2: W - M.r, y1: y, y2: y, stroke: l.color || DANGER }));
      out.push(h('text', { class: 'hline-label', x: W - M.r - 4, y: y - 4, 'text-anchor': 'end', fill: l.color || DANGER }, esc(l.label)));
    }
    for (const l of s.lines || []) {
      const YY = l.axis2 ? Y2 : Y, d = linePath(l.pts, X, YY);
      out.push(h('path', { ...l.attrs, class: l.cls, d: d || null, stroke: l.color, 'stroke-dasharray': l.dash || null }));
      if (l.dots === false) continue;
      const few = l.pts.length <= 48;
      l.pts.forEach((p, i) => {
        const lonely = p.v != null && (l.pts[i - 1] || {}).v == null && (l.pts[i + 1] || {}).v == null;
        if (p.v == null || !(few || lonely)) return;
        out.push(h('circle', { class: 'dot', cx: r1(X(p.t)), cy: r1(YY(p.v)), r: lonely ? 3 : 2.2, fill: l.color }));
      });
    }
    for (const m of s.markers || []) {
      const y = Math.max(M.t + 4, (m.v == null ? M.t + ph - 6 : Y(m.v)) + (m.dy || 0));
      const paint = { fill: m.fill || m.color, stroke: m.stroke || '#fff', 'stroke-width': m.sw || 1.2 };
      out.push(shape(m.shape, X(m.t), y, m.size || 4.5, { ...m.attrs, ...paint }));
    }
    out.push(h('line', { class: 'crosshair', x1: 0, x2: 0, y1: M.t, y2: M.t + ph, visibility: 'hidden' }));
    box.innerHTML = svgRoot(W, H, { role: 'img', 'aria-label': s.label || null, ...s.attrs }, out);
    const svg = box.firstChild, cross = svg.querySelector('.crosshair');
    const ts = [...new Set([...(s.lines || []).flatMap((l) => l.pts.map((p) => p.t)), ...(s.stacks || []).map((st) => st.t)])];
    svg.addEventListener('mousemove', (e) => {
      const px = e.clientX - svg.getBoundingClientRect().left;
      let best = null, bd = Infinity;
      for (const t of ts) { const dd = Math.abs(X(t) - px); if (dd < bd) { bd = dd; best = t; } }
      if (best == null || bd > Math.max(24, pw / ts.length)) { cross.setAttribute('visibility', 'hidden'); hideTip(); return; }
      cross.setAttribute('x1', r1(X(best))); cross.setAttribute('x2', r1(X(best)));
      cross.setAttribute('visibility', 'visible');
      showTip(s.tip ? s.tip(best) : '', e.clientX, e.clientY);
    });
    svg.addEventListener('mouseleave', () => { cross.setAttribute('visibility', 'hidden'); hideTip(); });
  }

  /** Lanes of [t0, t1] bars (alert episodes) and point markers (retrain triggers) on a time axis. */
  function drawTimeline(box) {
    const s = box._spec;
    const W = Math.max(280, Math.floor(box.clientWidth || 640)), laneH = 24;
    box._width = W;
    const M = { l: 190, r: 14, t: 6, b: 24 }, pw = W - M.l - M.r, H = M.t + s.lanes.length * laneH + M.b;
    const [x0, x1] = s.x;
    const X = (t) => M.l + ((Math.min(Math.max(t, x0), x1) - x0) / (x1 - x0 || 1)) * pw;
    const out = [], tips = [];
    const xt = timeTicks(x0, x1, Math.max(2, Math.floor(pw / 86)));
    for (const t of xt.ticks) {
      out.push(h('line', { class: 'grid', x1: r1(X(t)), x2: r1(X(t)), y1: M.t, y2: H - M.b }));
      out.push(h('text', { class: 'tick', x: r1(X(t)), y: H - 6, 'text-anchor': 'middle' }, esc(fmtTick(t, xt.step, x1 - x0))));
    }
    s.lanes.forEach((lane, i) => {
      const y = M.t + i * laneH, cy = y + laneH / 2;
      if (i % 2) out.push(h('rect', { class: 'lane-bg', x: 0, y, width: W, height: laneH }));
      out.push(h('circle', { cx: 8, cy, r: 4, fill: lane.color }));
      out.push(h('text', { class: 'lane-label', x: 18, y: cy + 4 }, esc(lane.label.length > 28 ? `${lane.label.slice(0, 27)}…` : lane.label)));
      for (const it of lane.items) {
        const xa = X(it.t0), xb = Math.max(X(it.t1), xa + 6);
        tips.push(it.tip);
        out.push(h('rect', {
          ...it.attrs, class: `episode ${it.cls}`, 'data-tip': tips.length - 1,
          x: r1(xa), y: y + 5, width: r1(xb - xa), height: laneH - 10, rx: 3,
        }));
      }
      for (const m of lane.markers || []) {
        tips.push(m.tip);
        out.push(shape('diamond', X(m.t), cy, 5, { ...m.attrs, class: 'retrain-marker', 'data-tip': tips.length - 1 }));
      }
    });
    out.push(h('line', { class: 'axis', x1: M.l, x2: W - M.r, y1: H - M.b, y2: H - M.b }));
    box.innerHTML = svgRoot(W, H, s.attrs, out);
    const svg = box.firstChild;
    svg.addEventListener('mousemove', (e) => {
      const t = e.target.closest && e.target.closest('[data-tip]');
      if (t) showTip(tips[+t.getAttribute('data-tip')], e.clientX, e.clientY); else hideTip();
    });
    svg.addEventListener('mouseleave', hideTip);
  }

  function showTip(html, x, y) {
    const tip = $('#tooltip');
    if (!html) { hideTip(); return; }
    tip.innerHTML = html;
    tip.hidden = false;
    const w = tip.offsetWidth, hh = tip.offsetHeight;
    tip.style.left = `${x + 14 + w > innerWidth ? x - 14 - w : x + 14}px`;
    tip.style.top = `${Math.max(4, y + 14 + hh > innerHeight ? y - 10 - hh : y + 14)}px`;
  }
  function hideTip() { $('#tooltip').hidden = true; }

  const tipTitle = (text) => `<div class="tip-title">${esc(text)}</div>`;
  const tipRow = (color, label, value, muted) =>
    `<div class="tip-row${muted ? ' muted' : ''}"><i style="background:${esc(color)}"></i><span>${esc(label)}</span><b>${esc(value)}</b></div>`;

  function swatch(item) {
    const c = esc(item.color);
    if (item.shape) {
      const paint = { fill: item.hollow ? 'none' : item.color, stroke: item.hollow ? item.color : 'none', 'stroke-width': 1.6 };
      return `<svg class="sw" width="12" height="12" aria-hidden="true">${shape(item.shape, 6, 6, 4, paint)}</svg>`;
    }
    return `<i class="sw sw-${item.kind || 'line'}" style="--c:${c}"></i>`;
  }
  const legend = (items) => items.map((it) => h('span', { class: 'legend-item', 'data-version': it.version }, swatch(it) + esc(it.label))).join('');
  const emptyState = (text, hint) => `<div class="empty" data-empty="true"><b>${esc(text)}</b>${hint ? `<span>${esc(hint)}</span>` : ''}</div>`;

  function setSelect(sel, options, value) {
    const sig = JSON.stringify(options);
    if (sel._sig !== sig) {
      sel._sig = sig;
      sel.innerHTML = options.map((o) => (o.group
        ? `<optgroup label="${esc(o.group)}">${o.options.map((x) => h('option', { value: x.value }, esc(x.label))).join('')}</optgroup>`
        : h('option', { value: o.value }, esc(o.label)))).join('');
    }
    sel.value = value;
  }

  // ------------------------------------------------------------------ panels

  const EMPTY_CHARTS = ['#quality-chart', '#counts-chart', '#detector-chart', '#drift-table', '#drift-history', '#alerts-timeline', '#retrain-list'];
  const LEGENDS = ['#quality-legend', '#counts-legend', '#detector-legend', '#drift-legend', '#timeline-legend',
    '#counts-summary', '#detector-summary'];
  const SUBTITLES = ['#quality-sub', '#counts-sub', '#detector-sub', '#drift-sub', '#timeline-sub', '#retrain-sub'];
  const PANEL_SELECTS = ['#counts-version', '#drift-version', '#drift-stat'];

  function render() {
    hideTip();
    renderControls();
    const view = makeView();
    const body = document.body.dataset;
    body.model = view ? view.name : '';
    body.windows = String(view ? view.windows : 0);
    body.lastWindow = (view && view.lastEnd) || '';
    renderFiring();
    renderDeadLetters();
    if (!view) {
      const report = state.mode === 'report';
      $('#kpis').innerHTML = emptyState(report ? 'This report holds no model windows' : 'No models yet',
        report ? '' : 'The first metrics record appears when the first window closes.');
      for (const id of EMPTY_CHARTS) $(id).innerHTML = emptyState('No windows yet');
      for (const id of LEGENDS) $(id).innerHTML = '';
      for (const id of SUBTITLES) $(id).textContent = '';
      for (const id of PANEL_SELECTS) $(id).closest('label').hidden = true;
      return;
    }
    renderKpis(view);
    renderQuality(view);
    renderCounts(view);
    renderDetectors(view);
    renderDrift(view);
    renderTimeline(view);
    renderRetrain(view);
  }

  function renderControls() {
    const sel = state.sel;
    const names = [...state.catalog.keys()];
    const ms = $('#model-select');
    const modelOptions = names.map((n) => ({ value: n, label: n }));
    setSelect(ms, names.length ? modelOptions : [{ value: '', label: 'no models yet' }], sel.model ?? '');
    ms.disabled = !names.length;

    const model = state.catalog.get(sel.model);
    const chips = $('#version-toggles');
    const versions = model ? model.versions.map(vkey) : [];
    const chipsSig = JSON.stringify([sel.model, versions]);
    if (chips._sig !== chipsSig) {
      chips._sig = chipsSig;
      chips.innerHTML = versions.map((k) => h('label',
        { class: 'chip', 'data-version': k, style: `--c:${colorOf(model, k)}`, title: `Show or hide version ${k}` },
        `<input type="checkbox" name="version" data-version="${esc(k)}" value="${esc(k)}"><i></i>${esc(k)}`)).join('')
        || '<span class="muted">—</span>';
    }
    const hidden = (model && sel.hidden.get(model.name)) || new Set();
    for (const input of chips.querySelectorAll('input')) input.checked = !hidden.has(input.value);

    const segSel = $('#segment-select');
    const dims = model ? Object.entries(model.segments) : [];
    const groups = dims.map(([dim, vals]) => ({ group: dim, options: vals.map((v) => ({ value: `${dim}=${v}`, label: `${dim} = ${v}` })) }));
    setSelect(segSel, [{ value: '', label: 'All traffic' }, ...groups], sel.segment || '');
    segSel.disabled = !dims.length;
    segSel.title = dims.length ? '' : 'No segments for this model';
  }

  const metricOf = (view) => view.metrics.find((m) => m.key === state.sel.metric);
  const metricValue = (view, key) => (r) => r[view.task] && r[view.task][key];
  const segLabel = (view) => (view.segment ? `segment ${view.segment.replace('=', ' = ')}` : 'all traffic');
  const versionLegend = (view) => view.visible.map((s) => ({ color: s.color, label: s.key, version: s.key }));

  function renderKpis(view) {
    const lastIndex = (recs, get) => { for (let i = recs.length - 1; i >= 0; i--) if (num(get(recs[i])) != null) return i; return -1; };
    $('#kpis').innerHTML = view.metrics.map((m) => {
      const get = metricValue(view, m.key);
      const rows = view.visible.map((s) => {
        // The latest window's value; its CBPE estimate when labels are missing; the change from
        // the previous window with a value.
        const last = s.shown[s.shown.length - 1];
        let value = last ? num(get(last)) : null, est = false, delta = null;
        if (value == null && last) { value = num(last.estimated?.metrics?.[m.key]?.value); est = value != null; }
        if (!est && value != null) {
          const prev = s.shown.slice(0, -1), j = lastIndex(prev, get);
          if (j >= 0) delta = value - get(prev[j]);
        }
        const flat = delta == null || Math.abs(delta) < 1e-12;
        const tone = flat ? '' : (delta > 0) === m.higher ? 'up-good' : 'up-bad';
        const deltaText = est ? 'est.' : delta == null ? '' : flat ? '±0' : `${delta > 0 ? '▲' : '▼'} ${fmt(Math.abs(delta))}`;
        return `<div class="kpi-row" data-version="${esc(s.key)}" title="${esc(s.key)}">`
          + `<i style="background:${s.color}"></i><span class="kpi-version">${esc(s.key)}</span>`
          + `<span class="kpi-nums"><b class="kpi-value">${est ? '≈' : ''}${fmt(value)}</b>`
          + `<span class="kpi-delta ${tone}">${deltaText}</span></span></div>`;
      }).join('');
      const active = m.key === state.sel.metric;
      return h('button', { type: 'button', class: `kpi${active ? ' active' : ''}`, 'data-metric': m.key, 'aria-pressed': String(active) },
        `<span class="kpi-label">${esc(m.label)}</span>${rows}`);
    }).join('');
  }

  function renderQuality(view) {
    const m = metricOf(view), box = $('#quality-chart');
    $('#quality-title').textContent = `${m.label} per window`;
    $('#quality-sub').textContent = `${view.name} · ${segLabel(view)} · all versions overlaid`;
    if (!view.visible.some((s) => s.shown.length)) {
      box.innerHTML = emptyState('No windows yet', 'Quality appears when the first window with outcomes closes.');
      $('#quality-legend').innerHTML = '';
      return;
    }
    const lines = [], bands = [], markers = [], hlines = [];
    let estimated = null; // the first version with estimates: its CBPE thresholds are drawn
    // CBPE estimates (`estimated.metrics.<metric>`): band and dashed line behind the realized line.
    for (const s of view.visible) {
      const est = s.shown.map((r) => {
        const e = r.estimated?.metrics?.[m.key] || {};
        return { t: tms(r.window.end), v: num(e.value), lo: num(e.lower), hi: num(e.upper), e, r };
      });
      if (!est.some((p) => p.v != null || p.lo != null)) continue;
      estimated = estimated || est;
      const attrs = { 'data-version': s.key };
      bands.push({ cls: 'estimate-band', color: s.color, pts: est, attrs });
      lines.push({ cls: 'estimate-line', color: s.color, dash: '5 4', pts: est, dots: false, attrs });
      for (const p of est) {
        if (p.e.alert !== true || p.v == null) continue;
        markers.push({ t: p.t, v: p.v, shape: 'circle', size: 5, fill: 'none', stroke: DANGER, sw: 2,
          attrs: { class: 'estimate-alert', 'data-version': s.key, 'data-window': p.r.window.end } });
      }
    }
    const lastE = estimated && [...estimated].reverse().find((p) => num(p.e.threshold_lower) != null || num(p.e.threshold_upper) != null);
    if (lastE) {
      if (num(lastE.e.threshold_lower) != null) hlines.push({ v: lastE.e.threshold_lower, label: 'CBPE lower threshold', color: '#b45309' });
      if (num(lastE.e.threshold_upper) != null) hlines.push({ v: lastE.e.threshold_upper, label: 'CBPE upper threshold', color: '#b45309' });
    }
    for (const s of view.visible) {
      const pts = pointsOf(s.shown, metricValue(view, m.key));
      const defined = pts.filter((p) => p.v != null).length;
      lines.push({ cls: 'series-line', color: s.color, pts, attrs: { 'data-version': s.key, 'data-points': pts.length, 'data-values': defined } });
    }
    // Alert rules on this metric (thresholds from their events), for this model and segment.
    const seen = new Set();
    for (const e of (state.alerts && state.alerts.events) || []) {
      if (!isAlert(e) || e.model !== view.name || e.metric !== `${view.task}.${m.key}`) continue;
      if (segKey(e.segment) !== (view.segment || null) || num(e.threshold) == null || seen.has(`${e.rule}|${e.threshold}`)) continue;
      seen.add(`${e.rule}|${e.threshold}`);
      hlines.push({ v: e.threshold, label: `${e.rule} ${e.op} ${fmt(e.threshold)}`, color: DANGER });
    }
    const legendItems = versionLegend(view);
    if (estimated) legendItems.push({ color: '#64748b', label: 'estimated (CBPE) ± band', kind: 'dash' });
    if (seen.size) legendItems.push({ color: DANGER, label: 'alert threshold', kind: 'dash' });
    $('#quality-legend').innerHTML = legend(legendItems);
    chart(box, {
      x: view.x, height: 260, bounds: m.bounds, lines, bands, markers, hlines, label: `${m.label} per window`,
      attrs: { 'data-metric': m.key },
      tip: (t) => {
        let win = null, rows = '';
        for (const s of view.visible) {
          const r = s.shownAt.get(t);
          if (!r) continue;
          win = win || r.window;
          rows += tipRow(s.color, s.key, fmt(metricValue(view, m.key)(r)));
          const e = r.estimated?.metrics?.[m.key];
          if (e && num(e.value) != null) {
            rows += tipRow(s.color, `${s.key} estimated`, `${fmt(e.value)} [${fmt(e.lower)}, ${fmt(e.upper)}]${e.alert ? ' ⚠' : ''}`, true);
          }
          rows += `<div class="tip-note">${fmtInt(r.counts?.joined)} joined · coverage ${fmtPct(r.counts?.label_coverage)}</div>`;
        }
        return win ? tipTitle(fmtWindow(win)) + rows : '';
      },
    });
  }

  /** The version a single-version panel shows, from its own select (hidden with one version). */
  function pickVersion(view, selectEl, key) {
    const keys = view.visible.map((s) => s.key);
    if (!keys.includes(state.sel[key])) state.sel[key] = keys[0] ?? null;
    setSelect(selectEl, keys.map((k) => ({ value: k, label: k })), state.sel[key] ?? '');
    selectEl.closest('label').hidden = keys.length < 2;
    return view.visible.find((s) => s.key === state.sel[key]);
  }

  function renderCounts(view) {
    const s = pickVersion(view, $('#counts-version'), 'countsVersion'), box = $('#counts-chart');
    $('#counts-sub').textContent = `${view.name} ${s ? s.key : ''} · ${segLabel(view)}`;
    $('#counts-legend').innerHTML = legend(COUNT_KINDS.map((k) => ({ color: k.color, label: k.label, kind: 'box' }))
      .concat([{ color: '#0f172a', label: 'label coverage (right axis)' }]));
    if (!s || !s.shown.length) { box.innerHTML = emptyState('No windows yet'); $('#counts-summary').innerHTML = ''; return; }
    const c = (r, k) => num(r.counts && r.counts[k]) || 0;
    chart(box, {
      x: view.x, height: 200, zero: true, barMs: view.windowMs, yfmt: fmtInt, y2: { fmt: (v) => `${Math.round(v * 100)}%` },
      label: 'Records per window by join outcome, and label coverage',
      stacks: s.shown.map((r) => ({
        t: tms(r.window.end), window: r.window.end,
        parts: COUNT_KINDS.map((k) => ({ key: k.key, v: c(r, k.key), color: k.color })),
      })),
      lines: [{
        cls: 'coverage-line', color: '#0f172a', axis2: true, attrs: { 'data-version': s.key },
        pts: pointsOf(s.shown, (r) => r.counts && r.counts.label_coverage),
      }],
      tip: (t) => {
        const r = s.shownAt.get(t), n = (r && r.counts) || {};
        if (!r) return '';
        return tipTitle(fmtWindow(r.window))
          + tipRow('#cbd5e1', 'Predictions', fmtInt(n.predictions)) + tipRow('#cbd5e1', 'Outcomes', fmtInt(n.outcomes))
          + COUNT_KINDS.map((k) => tipRow(k.color, k.label, fmtInt(n[k.key]))).join('')
          + tipRow('#0f172a', 'Label coverage', fmtPct(n.label_coverage));
      },
    });
    const total = (k) => s.shown.reduce((a, r) => a + c(r, k), 0);
    const cov = s.shown.map((r) => num(r.counts && r.counts.label_coverage)).filter((v) => v != null);
    const meanCov = cov.length ? cov.reduce((a, b) => a + b, 0) / cov.length : null;
    $('#counts-summary').innerHTML = `<span>${s.shown.length} windows</span><span>predictions <b>${fmtInt(total('predictions'))}</b></span>`
      + COUNT_KINDS.map((k) => h('span', { 'data-kind': k.key, class: k.key !== 'joined' && total(k.key) > 0 ? 'warn' : null },
        `${esc(k.label.toLowerCase())} <b>${fmtInt(total(k.key))}</b>`)).join('')
      + `<span>mean coverage <b>${fmtPct(meanCov)}</b></span>`;
  }

  function renderDetectors(view) {
    const box = $('#detector-chart');
    const reg = view.task === 'regression';
    const accuracy = (r) => num(r.classification && r.classification.accuracy);
    const err = (r) => (reg ? num(r.regression && r.regression.mae) : accuracy(r) == null ? null : 1 - accuracy(r));
    $('#detector-title').textContent = reg ? 'MAE & drift detectors' : 'Error rate & drift detectors';
    $('#detector-sub').textContent = `${view.name} · ${reg ? 'MAE' : 'error rate = 1 − accuracy'} · detectors run on all traffic`;
    // Only the detectors the records carry (DDM is classification-only).
    const present = DETECTORS.filter((x) => view.visible.some((s) => s.base.some((r) => r.detectors && r.detectors[x.key])));
    $('#detector-legend').innerHTML = legend(versionLegend(view)
      .concat(present.map((d) => ({ color: '#334155', label: `${d.label} hit`, shape: d.shape }))));
    if (!view.visible.some((s) => s.base.length)) { box.innerHTML = emptyState('No windows yet'); $('#detector-summary').innerHTML = ''; return; }
    const lines = [], markers = [], vrules = new Set();
    for (const s of view.visible) {
      const pts = pointsOf(s.base, err);
      lines.push({ cls: 'series-line', color: s.color, pts, attrs: { 'data-version': s.key, 'data-points': pts.length } });
      for (const p of pts) {
        const hits = DETECTORS.filter((d) => p.r.detectors?.[d.key]?.drift === true);
        if (hits.length) vrules.add(p.t);
        hits.forEach((d, i) => markers.push({
          t: p.t, v: p.v, dy: -i * 12, shape: d.shape, color: s.color, size: 5, stroke: '#0f172a', sw: 1,
          attrs: { class: 'detector-hit', 'data-detector': d.key, 'data-version': s.key, 'data-window': p.r.window.end },
        }));
      }
    }
    chart(box, {
      x: view.x, height: 200, bounds: reg ? [0, null] : [0, 1], lines, markers, vrules: [...vrules],
      label: 'Error rate with detector hits', attrs: { 'data-hits': markers.length },
      tip: (t) => {
        let win = null, rows = '';
        for (const s of view.visible) {
          const r = s.baseAt.get(t);
          if (!r) continue;
          win = win || r.window;
          const hits = DETECTORS.filter((d) => r.detectors?.[d.key]?.drift === true).map((d) => d.label);
          rows += tipRow(s.color, s.key, fmt(err(r)));
          if (hits.length) rows += `<div class="tip-note alert">drift: ${esc(hits.join(', '))}</div>`;
        }
        return win ? tipTitle(fmtWindow(win)) + rows : '';
      },
    });
    // `detections` counts a window's own detections: the summary adds them up.
    const sum = (s, key) => s.base.reduce((a, r) => a + (num(r.detectors?.[key]?.detections) || 0), 0);
    $('#detector-summary').innerHTML = !present.length ? '' : '<span>detections in the windows shown:</span>'
      + view.visible.map((s) => `<span data-version="${esc(s.key)}"><i class="dot-i" style="background:${s.color}"></i>${esc(s.key)}: `
        + present.map((x) => `${x.label} <b data-detector="${x.key}">${fmtInt(sum(s, x.key))}</b>`).join(' · ') + '</span>').join('');
  }

  /** The drift entries of one record: features (sorted) then prediction/score/label. */
  function driftRows(drift) {
    if (!drift) return [];
    const features = Object.keys(drift.features || {}).sort(naturalCmp).map((name) => ({ group: 'feature', name, f: drift.features[name] }));
    return features.concat(DRIFT_OUTPUTS.map((name) => ({ group: 'output', name, f: drift[name] || null })));
  }
  /** One entry by id, `feature:<name>` or `output:<prediction|score|label>`. */
  function driftEntry(drift, id) {
    if (!drift) return null;
    const i = id.indexOf(':'), group = id.slice(0, i), name = id.slice(i + 1);
    return (group === 'feature' ? (drift.features || {})[name] : drift[name]) || null;
  }

  const DRIFT_HEAD = ['Feature', 'Kind', '#PSI', '#KS stat', '#KS p', '#JS', '#χ² p', '#Wasserstein', 'Status']
    .map((c) => (c[0] === '#' ? `<th class="num">${c.slice(1)}</th>` : `<th>${c}</th>`)).join('');

  function driftRow(x, selected) {
    const f = x.f || {};
    // The p-value of the entry's own test is bold, and red below its threshold.
    const pcell = (key) => {
      const v = num(f[key] && f[key].p_value), own = f.method === key;
      const low = own && v != null && num(f.threshold) != null && v < f.threshold;
      return `<td class="num${low ? ' bad' : ''}${own ? ' decisive' : ''}">${fmt(v)}</td>`;
    };
    const noData = x.f && !DRIFT_STATS.some((st) => num(st.get(f)) != null); // e.g. no prediction in the window
    const pill = (cls, text) => `<span class="pill ${cls}">${text}</span>`;
    const status = !x.f ? pill('muted', 'n/a') : f.drifted ? pill('bad', 'drifted') : noData ? pill('muted', 'no data')
      : f.drifted === false ? pill('ok', 'stable') : pill('muted', '—');
    const classes = [x.f ? 'clickable' : 'na', f.drifted ? 'drifted' : '', selected ? 'selected' : '',
      x.group === 'output' && x.name === 'prediction' ? 'group-start' : ''];
    const threshold = num(f.threshold) != null ? `, threshold ${f.threshold}` : '';
    const title = x.f ? `${f.method || ''} test${threshold}; n = ${fmtInt(f.n_window)} vs ${fmtInt(f.n_reference)} reference` : 'not computed in this window';
    return h('tr', {
      'data-feature': x.name, 'data-group': x.group, 'data-drifted': x.f ? String(!!f.drifted) : null,
      tabindex: x.f ? 0 : null, class: classes.join(' ').trim(), title,
    }, `<th scope="row">${x.group === 'output' ? `<span class="tag">${esc(x.name)}</span>` : esc(x.name)}</th><td>${esc(f.kind || '—')}</td>`
      + `<td class="num">${fmt(f.psi)}</td><td class="num">${fmt(f.ks && f.ks.statistic)}</td>${pcell('ks')}`
      + `<td class="num">${fmt(f.js)}</td>${pcell('chi_square')}<td class="num">${fmt(f.wasserstein)}</td><td>${status}</td>`);
  }

  function renderDrift(view) {
    const s = pickVersion(view, $('#drift-version'), 'driftVersion'), box = $('#drift-table');
    const last = s && s.base[s.base.length - 1];
    const drift = last && last.drift;
    const rows = driftRows(drift), computed = rows.filter((x) => x.f);
    $('#drift-sub').textContent = last
      ? `${view.name} ${s.key} · latest window ${fmtWindow(last.window)} · reference: ${(drift && drift.reference) || '—'} · all traffic`
      : view.name;
    if (!last) box.innerHTML = emptyState('No windows yet');
    else if (!computed.length) box.innerHTML = emptyState('No drift statistics in the latest window', 'The reference sample may still be filling.');
    else {
      const sel = state.sel;
      if (!computed.some((x) => `${x.group}:${x.name}` === sel.driftFeature)) {
        const pick = computed.find((x) => x.f.drifted) || computed[0];
        sel.driftFeature = `${pick.group}:${pick.name}`;
      }
      const body = rows.map((x) => driftRow(x, `${x.group}:${x.name}` === sel.driftFeature)).join('');
      box.innerHTML = `<table class="table drift"><thead><tr>${DRIFT_HEAD}</tr></thead><tbody>${body}</tbody></table>`;
    }
    renderDriftHistory(view);
  }

  function renderDriftHistory(view) {
    const box = $('#drift-history'), id = state.sel.driftFeature, statSel = $('#drift-stat');
    if (!id || !view.visible.some((s) => s.base.length)) {
      $('#drift-history-title').textContent = 'History';
      box.innerHTML = emptyState('Select a feature', 'Click a row of the table to see its statistic over time.');
      setSelect(statSel, [], '');
      statSel.closest('label').hidden = true;
      $('#drift-legend').innerHTML = '';
      return;
    }
    const value = (r, st) => { const f = driftEntry(r.drift, id); return f ? st.get(f) : null; };
    // The statistics this entry has (no KS for a categorical feature), the chosen one by default.
    const recs = view.visible.flatMap((s) => s.base);
    const avail = DRIFT_STATS.filter((st) => recs.some((r) => num(value(r, st)) != null));
    const stat = avail.find((st) => st.key === state.sel.driftStat) || avail[0];
    setSelect(statSel, avail.map((st) => ({ value: st.key, label: st.label })), stat ? stat.key : '');
    statSel.closest('label').hidden = !avail.length;
    const name = id.slice(id.indexOf(':') + 1);
    $('#drift-history-title').textContent = `${name} · ${stat ? stat.label : ''} over time`;
    if (!stat) { box.innerHTML = emptyState('No statistic recorded for this feature yet'); $('#drift-legend').innerHTML = ''; return; }
    const lines = [], markers = [], hlines = [];
    for (const s of view.visible) {
      const pts = pointsOf(s.base, (r) => value(r, stat));
      lines.push({ cls: 'series-line', color: s.color, pts, attrs: { 'data-version': s.key, 'data-points': pts.length } });
      for (const p of pts) {
        if (p.v == null || !driftEntry(p.r.drift, id)?.drifted) continue;
        markers.push({ t: p.t, v: p.v, shape: 'circle', size: 5, fill: 'none', stroke: DANGER, sw: 1.8,
          attrs: { class: 'drift-flag', 'data-version': s.key, 'data-window': p.r.window.end } });
      }
    }
    const first = view.visible[0].base, lastF = first.length ? driftEntry(first[first.length - 1].drift, id) : null;
    if (stat.pvalue && lastF && lastF.method === stat.pvalue && num(lastF.threshold) != null) {
      hlines.push({ v: lastF.threshold, label: `p = ${lastF.threshold}`, color: DANGER });
    }
    $('#drift-legend').innerHTML = legend(versionLegend(view).concat([{ color: DANGER, label: 'drifted window', shape: 'circle', hollow: true }]));
    chart(box, {
      x: view.x, height: 210, bounds: stat.pvalue ? [0, 1] : [0, null], lines, markers, hlines,
      label: `${name} ${stat.label} over time`, attrs: { 'data-feature': name, 'data-stat': stat.key },
      tip: (t) => {
        let win = null, rows = '';
        for (const s of view.visible) {
          const r = s.baseAt.get(t), f = r && driftEntry(r.drift, id);
          if (!r) continue;
          win = win || r.window;
          rows += tipRow(s.color, s.key, `${fmt(f ? stat.get(f) : null)}${f && f.drifted ? ' · drifted' : ''}`);
        }
        return win ? tipTitle(fmtWindow(win)) + rows : '';
      },
    });
  }

  const alertTarget = (e) => `${e.model} ${vkey(e.model_version)}${e.segment ? ` · ${segKey(e.segment)}` : ''}`;
  const alertEvents = () => (state.alerts && state.alerts.events) || [];

  function renderFiring() {
    const box = $('#alerts-firing'), badge = $('#firing-badge');
    if (!state.alerts) {
      box.innerHTML = emptyState('Alerts unavailable', state.mode === 'live' ? 'GET /api/v1/alerts failed; retrying.' : '');
      badge.hidden = true;
      return;
    }
    // The selected model's alerts first, then by severity, newest first.
    const rank = (a) => SEVERITY_RANK[a.severity] ?? 9;
    const firing = (state.alerts.firing || []).filter(isAlert).slice().sort((a, b) =>
      (b.model === state.sel.model) - (a.model === state.sel.model) || rank(a) - rank(b) || (tms(b.fired_at) || 0) - (tms(a.fired_at) || 0));
    badge.hidden = false;
    badge.className = `badge ${firing.some((a) => a.severity === 'critical') ? 'bad' : firing.length ? 'warn' : 'ok'}`;
    badge.textContent = firing.length ? `${firing.length} firing` : 'no alerts';
    badge.dataset.firing = String(firing.length);
    if (!firing.length) { box.innerHTML = emptyState('No alerts firing', 'All rules are within their thresholds.'); return; }
    const rows = firing.map((a) => h('tr', {
      'data-alert-id': a.alert_id, 'data-model': a.model, 'data-severity': a.severity,
      class: a.model === state.sel.model ? 'current' : 'other', title: a.summary,
    }, `<td><b class="rule">${esc(a.rule)}</b><div class="muted small target">`
      + `<span class="sev sev-${esc(a.severity)}">${esc(a.severity)}</span> ${esc(alertTarget(a))} · ${esc(a.metric)}</div></td>`
      + `<td class="num"><b>${fmt(a.value)}</b><div class="muted small">${esc(a.op)} ${fmt(a.threshold)}</div></td>`
      + `<td class="small nowrap">${esc(fmtStamp(a.fired_at))}</td>`)).join('');
    box.innerHTML = '<table class="table firing"><colgroup><col><col style="width:72px"><col style="width:82px"></colgroup>'
      + `<thead><tr><th>Alert</th><th class="num">Value</th><th>Since</th></tr></thead><tbody>${rows}</tbody></table>`;
  }

  function renderTimeline(view) {
    const box = $('#alerts-timeline');
    const events = alertEvents().filter((e) => e && e.model === view.name);
    $('#timeline-sub').textContent = `${view.name} · episodes from firing to resolved window; ◆ retrain triggers`;
    $('#timeline-legend').innerHTML = legend(Object.entries(SEVERITY_COLOR).map(([sev, color]) => ({ color, label: sev, kind: 'box' }))
      .concat([{ color: '#94a3b8', label: 'resolved', kind: 'box' }, { color: '#0f172a', label: 'retrain', shape: 'diamond' }]));
    if (!state.alerts) { box.innerHTML = emptyState('Alerts unavailable'); return; }
    // An episode is the firing and (once over) the resolved event sharing an alert_id.
    const episodes = new Map();
    for (const e of events.filter(isAlert)) {
      const ep = episodes.get(e.alert_id) || { id: e.alert_id };
      ep[e.status === 'resolved' ? 'resolved' : 'firing'] = e;
      episodes.set(e.alert_id, ep);
    }
    const lanes = new Map(); // one lane per rule, version and segment
    const laneOf = (key, label, color) => {
      if (!lanes.has(key)) lanes.set(key, { label, color, items: [], markers: [] });
      return lanes.get(key);
    };
    for (const ep of [...episodes.values()].sort((a, b) => naturalCmp(a.id, b.id))) {
      const any = ep.firing || ep.resolved, res = ep.resolved;
      const start = tms(any.fired_at) ?? tms(any.window && any.window.end);
      const end = res ? tms(res.window && res.window.end) : view.x[1];
      if (start == null || end == null || end < view.x[0]) continue;
      const k = vkey(any.model_version), seg = segKey(any.segment);
      const lane = laneOf(`${any.rule}|${k}|${seg || ''}`, `${any.rule} · ${k}${seg ? ` · ${seg}` : ''}`, colorOf(view.model, k));
      const status = res ? 'resolved' : 'firing';
      lane.items.push({
        t0: start, t1: end, cls: `${status} sev-${any.severity}`,
        attrs: { 'data-alert-id': ep.id, 'data-status': status, 'data-version': k,
          fill: status === 'firing' ? SEVERITY_COLOR[any.severity] || SEVERITY_COLOR.info : null },
        tip: tipTitle(`${any.rule} (${any.severity})`) + `<div class="tip-note">${esc(alertTarget(any))}</div>`
          + tipRow(DANGER, 'fired', `${fmtStamp(any.fired_at)} · ${fmt((ep.firing || any).value)}`)
          + (res ? tipRow('#94a3b8', 'resolved', `${fmtStamp(res.window && res.window.end)} · ${fmt(res.value)}`)
            : tipRow(DANGER, 'status', 'still firing')),
      });
    }
    for (const tr of events.filter(isTrigger)) {
      const t = tms(tr.window && tr.window.end) ?? tms(tr.created_at);
      if (t == null || t < view.x[0]) continue;
      laneOf('|retrain', 'retrain triggers', '#0f172a').markers.push({
        t, attrs: { 'data-trigger-id': tr.trigger_id },
        tip: tipTitle(`retrain ${tr.model} ${vkey(tr.model_version)}`)
          + `<div class="tip-note">${esc((tr.rules || []).join(', '))} · ${esc(fmtStamp(tr.created_at))}</div>`,
      });
    }
    if (!lanes.size) {
      box.innerHTML = emptyState(`No alert episodes for ${view.name}`, 'Nothing fired in the windows shown.');
      return;
    }
    box._spec = { x: view.x, lanes: [...lanes.values()], attrs: { 'data-episodes': episodes.size } };
    box._draw = drawTimeline;
    drawTimeline(box);
  }

  function renderRetrain(view) {
    const box = $('#retrain-list');
    const triggers = alertEvents().filter((e) => isTrigger(e) && e.model === view.name).reverse();
    $('#retrain-sub').textContent = `${view.name} · newest first`;
    if (!state.alerts) { box.innerHTML = emptyState('Alerts unavailable'); return; }
    if (!triggers.length) { box.innerHTML = emptyState('No retrain triggers', 'A rule with retrain = true has not fired.'); return; }
    const evidence = (ev) => `<div class="muted small">${esc(vkey(ev.model_version))}${ev.segment ? ` · ${esc(segKey(ev.segment))}` : ''}: `
      + `${esc(ev.metric)} = ${fmt(ev.value)} ${esc(ev.op)} ${fmt(ev.threshold)}</div>`;
    box.innerHTML = `<ul class="list">${triggers.map((tr) => h('li', { 'data-trigger-id': tr.trigger_id },
      `<div class="row"><b>${esc((tr.rules || []).join(', '))}</b><span class="muted small">${esc(fmtStamp(tr.created_at))}</span></div>`
      + (tr.evidence || []).map(evidence).join(''))).join('')}</ul>`;
  }

  function renderDeadLetters() {
    const box = $('#dead-letters'), st = state.status, live = state.mode === 'live';
    $('#dead-letters-panel').hidden = !st && !live; // a report without status omits the panel
    if (!st) {
      box.innerHTML = emptyState(live ? 'Status unavailable' : 'Not included in this report', live ? 'GET /api/v1/status failed; retrying.' : '');
      return;
    }
    const dl = st.dead_letters || {}, recent = (dl.recent || []).slice().reverse(), total = num(dl.total) || 0;
    const stat = (label, value, attrs = {}) => h('div', { class: 'stat', ...attrs }, `<span class="stat-label">${esc(label)}</span>${value}`);
    const ready = st.ready ? '<span class="pill ok" data-ready="true">ready</span>' : '<span class="pill bad" data-ready="false">not ready</span>';
    const publishes = st.publishes === undefined ? ''
      : stat('Publishes', st.publishes ? '<span class="pill ok" data-publishes="true">yes</span>'
        : '<span class="pill muted" data-publishes="false" title="another instance of the group publishes the windows">no: another instance</span>');
    const health = stat('Consumer', ready) + publishes
      + Object.entries(st.input_records || {}).map(([topic, n]) => stat(topic, `<b>${fmtInt(n)}</b>`, { 'data-topic': topic })).join('')
      + stat('Dead letters', h('b', { class: total ? 'bad-text' : null, 'data-total': total }, fmtInt(total)));
    const row = (d) => h('tr', { 'data-topic': d.topic, 'data-partition': d.partition, 'data-offset': d.offset },
      `<td class="small nowrap">${esc(fmtStamp(d.at))}</td><td>${esc(d.topic)}</td><td class="num">${esc(d.partition ?? '—')}</td>`
      + `<td class="num">${esc(d.offset ?? '—')}</td><td class="reason">${esc(d.reason)}</td>`);
    box.innerHTML = `<div class="health">${health}</div>` + (recent.length
      ? '<table class="table dead"><thead><tr><th>At</th><th>Topic</th><th class="num">Partition</th><th class="num">Offset</th>'
        + `<th>Reason</th></tr></thead><tbody>${recent.map(row).join('')}</tbody></table>`
      : emptyState('No dead letters', 'Every input record was parsed.'));
  }

  // ------------------------------------------------------------------ events & boot

  function onSelection(change) {
    Object.assign(state.sel, change);
    writeHash();
    renderControls();
    if ('model' in change || 'segment' in change) {
      document.body.dataset.state = 'loading';
      refresh();
    } else {
      render();
    }
  }

  function wire() {
    $('#model-select').addEventListener('change', (e) => onSelection({ model: e.target.value, segment: null, driftFeature: null }));
    $('#segment-select').addEventListener('change', (e) => onSelection({ segment: e.target.value || null }));
    $('#version-toggles').addEventListener('change', (e) => {
      const input = e.target, model = state.sel.model;
      if (!input.dataset || input.dataset.version == null) return;
      const hidden = new Set(state.sel.hidden.get(model) || []);
      if (input.checked) hidden.delete(input.value); else hidden.add(input.value);
      const total = (state.catalog.get(model) || { versions: [] }).versions.length;
      if (hidden.size >= total) { input.checked = true; return; } // keep at least one version shown
      state.sel.hidden.set(model, hidden);
      render();
    });
    $('#kpis').addEventListener('click', (e) => { const b = e.target.closest('[data-metric]'); if (b) onSelection({ metric: b.dataset.metric }); });
    $('#counts-version').addEventListener('change', (e) => onSelection({ countsVersion: e.target.value }));
    $('#drift-version').addEventListener('change', (e) => onSelection({ driftVersion: e.target.value }));
    $('#drift-stat').addEventListener('change', (e) => onSelection({ driftStat: e.target.value }));
    const pickRow = (e) => {
      const tr = e.target.closest('tr[data-feature]');
      if (tr && tr.classList.contains('clickable')) onSelection({ driftFeature: `${tr.dataset.group}:${tr.dataset.feature}` });
    };
    $('#drift-table').addEventListener('click', pickRow);
    $('#drift-table').addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pickRow(e); } });
    // Redraw a chart when its width changes (window resize, scrollbar appearing).
    const ro = new ResizeObserver((entries) => {
      for (const en of entries) {
        const box = en.target;
        if (box._spec && box._draw && box.querySelector('svg') && Math.floor(box.clientWidth) !== box._width) box._draw(box);
      }
    });
    for (const box of document.querySelectorAll('.chart')) ro.observe(box);
  }

  function boot() {
    const inline = document.getElementById('feedback-loop-data');
    readHash();
    wire();
    if (inline) {
      state.mode = 'report';
      let data;
      try {
        data = JSON.parse(inline.textContent);
      } catch (err) {
        data = null;
        state.dataError = `The report's inline data is not valid JSON: ${err.message}`;
      }
      data = data && typeof data === 'object' ? data : {};
      state.source = reportSource(data);
      state.title = typeof data.title === 'string' ? data.title : null;
      state.generatedAt = data.generated_at || null;
      if (state.title) document.title = `${state.title} · feedback-loop`;
      $('#page-subtitle').textContent = state.title || 'offline report';
    } else {
      state.mode = 'live';
      const limit = parseInt(new URLSearchParams(location.search).get('limit'), 10);
      state.source = liveSource(limit > 0 ? limit : DEFAULT_LIMIT);
    }
    document.body.dataset.mode = state.mode;
    const badge = $('#mode-badge');
    badge.textContent = state.mode === 'live' ? 'live' : 'report';
    badge.className = `badge mode-${state.mode}`;
    renderUpdated();
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
})();
