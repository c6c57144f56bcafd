/**
 * The dashboard's browser script (vanilla ES2020, no build step), served as /dashboard/app.js.
 * Kept as a string so tsc ships it in dist/ (it is not type-checked: keep it small and plain; it must not
 * contain a backtick or a dollar-brace). Untrusted values (workstation names) only ever go through
 * textContent, never innerHTML.
 *
 * Data flow: every second GET /status and /clients, and the new history rows from
 * /events?follow=false&since=SEQ (NDJSON). The count chart is a replay of those rows (30-day expiry,
 * capacity eviction) drawn as inline SVG, so it also shows counts dropping as machines expire.
 */
export const DASHBOARD_JS = String.raw`(function () {
  'use strict';
  var DAY = 86400000;
  var HOUR = 3600000;
  var RETENTION = 30 * DAY;
  var POLL_MS = 1000;
  var PAGE = 2000;
  var MAX_RECORDS = 50000;
  var MAX_EVENTS = 100;
  var SVGNS = 'http://www.w3.org/2000/svg';

  var state = {
    status: null,
    clients: [],
    records: [],
    lastSeq: 0,
    shownSeq: 0,
    catalog: { applications: [], skus: {}, kmsIds: {} },
    pools: {},
    refreshing: false,
    again: false,
    acting: false,
  };

  function byId(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function svgEl(tag, attrs, children) {
    var e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'className') e.setAttribute('class', v);
      else e.setAttribute(k, String(v));
    });
  }

  function append(e, children) {
    if (children === undefined || children === null) return;
    if (!Array.isArray(children)) children = [children];
    children.forEach(function (c) {
      if (c === null || c === undefined || c === false) return;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    });
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  function fmtTime(ms) { return new Date(ms).toISOString().slice(0, 16).replace('T', ' ') + ' UTC'; }

  function fmtIn(ms) {
    if (ms <= 0) return 'now';
    if (ms < HOUR) return 'in ' + Math.ceil(ms / 60000) + ' min';
    if (ms < 2 * DAY) return 'in ' + Math.round(ms / HOUR) + ' h';
    return 'in ' + Math.round(ms / DAY) + ' days';
  }

  function hex(h) { return '0x' + ('00000000' + (code(h) >>> 0).toString(16).toUpperCase()).slice(-8); }
  // The API writes HRESULTs as "0xC004F038" strings; the page compares numbers.
  function code(h) { return typeof h === 'string' ? parseInt(h, 16) : h; }

  function plural(n, one, many) { return n + ' ' + (n === 1 ? one : many); }

  // The control token (--control-token): from ?token= once (then dropped from the address bar, so it
  // is not left in the history or a bookmark), kept in this tab's sessionStorage, sent as a header.
  // No cookie: a cookie would ride along on requests other pages make to this host.
  var TOKEN_KEY = 'kmslab-control-token';
  var token = takeToken();

  function takeToken() {
    var params = new URLSearchParams(location.search);
    var t = params.get('token');
    if (t) {
      try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage off: keep it in memory */ }
      params.delete('token');
      var q = params.toString();
      history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + location.hash);
      return t;
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function headers(extra) {
    var h = extra || {};
    if (token) h.authorization = 'Bearer ' + token;
    return h;
  }

  function httpError(path, r, text) {
    var e = new Error(path + ': HTTP ' + r.status + (text ? ' ' + text : ''));
    e.status = r.status;
    return e;
  }

  function getJson(path) {
    return fetch(path, { cache: 'no-store', headers: headers() }).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw httpError(path, r, t); });
      return r.json();
    });
  }

  function postJson(path, body) {
    return fetch(path, { method: 'POST', headers: headers({ 'content-type': 'application/json' }), body: JSON.stringify(body) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          if (!r.ok) throw httpError(path, r, j && j.error ? j.error : '');
          return j;
        });
      });
  }

  function getNdjson(path) {
    return fetch(path, { cache: 'no-store', headers: headers() }).then(function (r) {
      if (!r.ok) throw httpError(path, r, '');
      return r.text();
    }).then(function (text) {
      return text.split('\n').filter(function (l) { return l.trim() !== ''; }).map(function (l) { return JSON.parse(l); });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // History rows: initial load, incremental polling, and detection of a reset made elsewhere.

  function clearRecords() {
    state.records = [];
    state.lastSeq = 0;
    state.shownSeq = 0;
    clear(byId('events'));
  }

  async function syncRecords(now) {
    if (state.lastSeq > 0) {
      var check = await getJson('/history?since=' + (state.lastSeq - 1) + '&limit=1');
      var theirs = check.records[0];
      var mine = state.records[state.records.length - 1];
      if (!theirs || !mine || theirs.seq !== mine.seq || theirs.cmid !== mine.cmid || theirs.time !== mine.time) clearRecords();
    }
    for (;;) {
      var q = state.lastSeq > 0 ? 'since=' + state.lastSeq : 'from=' + Math.max(0, now - 120 * DAY);
      var rows = await getNdjson('/events?follow=false&limit=' + PAGE + '&' + q);
      rows.forEach(function (r) {
        if (typeof r.seq === 'number' && r.seq > state.lastSeq) {
          state.records.push(r);
          state.lastSeq = r.seq;
        }
      });
      if (rows.length < PAGE) break;
    }
    if (state.records.length > MAX_RECORDS) state.records.splice(0, state.records.length - MAX_RECORDS);
  }

  // ---------------------------------------------------------------------------------------------
  // Count replay (spec f.2, f.3): distinct CMIDs seen within 30 days, at most capacity.

  function poolIdFor(appId) {
    var pools = state.status ? state.status.pools : [];
    for (var i = 0; i < pools.length; i++) if (pools[i].applicationId === appId) return appId;
    return pools.length ? pools[0].applicationId : appId;
  }

  function replay(poolId, capacity, now) {
    var live = new Map();
    var points = [];
    function expireUpTo(t) {
      for (;;) {
        var oldest = null;
        live.forEach(function (seen, cmid) { if (oldest === null || seen < oldest.seen) oldest = { cmid: cmid, seen: seen }; });
        if (oldest === null || !(oldest.seen < t - RETENTION)) return;
        live.delete(oldest.cmid);
        points.push([oldest.seen + RETENTION, live.size]);
      }
    }
    state.records.forEach(function (r) {
      if (code(r.hresult) !== 0 || poolIdFor(r.applicationId) !== poolId) return;
      expireUpTo(r.time);
      if (live.has(r.cmid)) live.delete(r.cmid);
      else {
        while (live.size >= capacity) {
          var o = null;
          live.forEach(function (seen, cmid) { if (o === null || seen < o.seen) o = { cmid: cmid, seen: seen }; });
          live.delete(o.cmid);
        }
      }
      live.set(r.cmid, r.time);
      points.push([r.time, live.size]);
    });
    expireUpTo(now);
    return points;
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering

  function thresholdLabel(pool, t) {
    if (/windows/i.test(pool.name)) return t >= 25 ? 'Windows client editions' : 'Windows Server editions';
    return 'Office products';
  }

  function productName(skuId, kmsId) {
    var s = state.catalog.skus[skuId];
    if (s) return s;
    var k = state.catalog.kmsIds[kmsId];
    return k ? k.name + ' (unknown SKU)' : 'unknown product';
  }

  function requiredFor(kmsId) {
    var k = state.catalog.kmsIds[kmsId];
    return k ? k.requiredCount : null;
  }

  function renderHeader(s) {
    byId('host-time').textContent = fmtTime(Date.parse(s.time));
    byId('clock-kind').textContent = s.clock === 'manual' ? 'manual (virtual time)' : 'system';
    byId('requests-total').textContent = String(s.requests.total);
    byId('hwid').textContent = s.hwid;
    renderCounters(s.wmi);
    var manual = s.clock === 'manual';
    document.querySelectorAll('[data-advance]').forEach(function (b) { b.disabled = !manual; });
    byId('clock-note').hidden = manual;
  }

  // slmgr /dlv's labels for the SoftwareLicensingService counters, in its order.
  var COUNTER_LABELS = [
    ['KeyManagementServiceTotalRequests', 'Total requests received'],
    ['KeyManagementServiceFailedRequests', 'Failed requests received'],
    ['KeyManagementServiceUnlicensedRequests', 'License Status Unlicensed'],
    ['KeyManagementServiceLicensedRequests', 'License Status Licensed'],
    ['KeyManagementServiceOOBGraceRequests', 'License Status Initial grace period'],
    ['KeyManagementServiceOOTGraceRequests', 'License Status License expired or Hardware out of tolerance'],
    ['KeyManagementServiceNonGenuineGraceRequests', 'License Status Non-genuine grace period'],
    ['KeyManagementServiceNotificationRequests', 'License Status Notification']
  ];

  function renderCounters(wmi) {
    var dl = byId('request-counters');
    if (!wmi || !dl) return;
    if (dl.children.length === 0) {
      COUNTER_LABELS.forEach(function (c) {
        dl.appendChild(el('div', {}, [el('dt', { text: c[1] }), el('dd', { 'data-wmi': c[0], title: c[0], text: '…' })]));
      });
    }
    COUNTER_LABELS.forEach(function (c) {
      var dd = dl.querySelector('[data-wmi="' + c[0] + '"]');
      if (dd) dd.textContent = String(wmi[c[0]]);
    });
  }

  function ensurePool(p, index) {
    var v = state.pools[p.applicationId];
    if (v) return v;
    var id = 'pool-' + index;
    v = { id: id };
    v.count = el('strong', { 'data-field': 'count', text: '0' });
    v.noun = el('span', { text: ' machines counted' });
    v.capacity = el('span', { 'data-field': 'capacity', text: String(p.capacity) });
    v.fill = el('div', { className: 'fill' });
    v.meter = el('div', { className: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-label': p.name + ' pool count against its cache capacity' }, [v.fill]);
    v.thresholds = el('ul', { className: 'thresholds', 'aria-label': 'Activation thresholds' });
    v.chart = svgEl('svg', { className: 'chart', viewBox: '0 0 720 220', role: 'img', 'aria-labelledby': id + '-chart-title ' + id + '-chart-desc' });
    v.tbody = el('tbody');
    v.caption = el('caption', { text: 'Machines counted' });
    var section = el('section', { className: 'pool', 'aria-labelledby': id + '-heading', 'data-application-id': p.applicationId }, [
      el('div', { className: 'pool-head' }, [
        el('h2', { id: id + '-heading', text: p.name }),
        el('span', { className: 'note mono', text: p.applicationId }),
      ]),
      el('p', { className: 'count' }, [v.count, v.noun, ' · cache capacity ', v.capacity]),
      v.meter,
      v.thresholds,
      el('figure', null, [v.chart, el('figcaption', { text: 'Count over the host\'s (virtual) time, replayed from the activation history: solid line and hatched area = count; dashed lines = thresholds; dotted line = now.' })]),
      el('div', { className: 'table-wrap' }, [
        el('table', null, [
          v.caption,
          el('thead', null, el('tr', null, ['Workstation', 'Client machine id (CMID)', 'Product', 'Needs', 'Would activate', 'First seen', 'Last seen', 'Expires'].map(function (h) {
            return el('th', { scope: 'col', text: h });
          }))),
          v.tbody,
        ]),
      ]),
    ]);
    v.section = section;
    byId('pools').appendChild(section);
    state.pools[p.applicationId] = v;
    return v;
  }

  function renderPool(p, index, now) {
    var v = ensurePool(p, index);
    v.count.textContent = String(p.count);
    v.noun.textContent = p.count === 1 ? ' machine counted' : ' machines counted';
    v.capacity.textContent = String(p.capacity);
    v.meter.setAttribute('aria-valuemax', String(p.capacity));
    v.meter.setAttribute('aria-valuenow', String(p.count));
    v.meter.setAttribute('aria-valuetext', p.count + ' of ' + p.capacity);
    v.fill.style.width = Math.min(100, (100 * p.count) / Math.max(1, p.capacity)) + '%';
    v.meter.querySelectorAll('.tick').forEach(function (t) { t.remove(); });
    p.thresholds.forEach(function (t) {
      var tick = el('div', { className: 'tick', 'aria-hidden': 'true' });
      tick.style.left = Math.min(100, (100 * t.requiredCount) / Math.max(1, p.capacity)) + '%';
      v.meter.appendChild(tick);
    });
    clear(v.thresholds);
    p.thresholds.forEach(function (t) {
      var need = t.requiredCount - p.count;
      v.thresholds.appendChild(el('li', { 'data-threshold': t.requiredCount }, [
        'Threshold ' + t.requiredCount + ' (' + thresholdLabel(p, t.requiredCount) + '): ',
        t.met
          ? el('span', { className: 'met', text: '\u2713 met' })
          : el('span', { className: 'unmet', text: '\u2717 not met' }),
        t.met ? ' \u2014 these machines activate' : ' \u2014 ' + plural(need, 'more machine', 'more machines') + ' needed',
      ]));
    });
    drawChart(v, p, replay(p.applicationId, p.capacity, now), now);
    var rows = state.clients.filter(function (c) { return c.applicationId === p.applicationId; });
    v.caption.textContent = 'Machines counted in the ' + p.name + ' pool (' + rows.length + ')';
    clear(v.tbody);
    if (rows.length === 0) {
      v.tbody.appendChild(el('tr', null, el('td', { colspan: 8, className: 'empty', text: 'No machine is counted: machines appear with their first activation request and leave 30 days after their last one.' })));
    }
    rows.slice().reverse().forEach(function (c) {
      var need = requiredFor(c.kmsId);
      var would = need === null ? 'unknown' : p.count >= need ? '\u2713 yes' : '\u2717 no';
      var expires = Date.parse(c.expires);
      v.tbody.appendChild(el('tr', null, [
        el('td', { text: c.workstation || '(none)' }),
        el('td', { className: 'mono', text: c.cmid }),
        el('td', { text: productName(c.skuId, c.kmsId) }),
        el('td', { text: need === null ? '?' : String(need) }),
        el('td', { text: would }),
        el('td', { text: fmtTime(Date.parse(c.firstSeen)) }),
        el('td', { text: fmtTime(Date.parse(c.lastSeen)) }),
        el('td', { text: fmtTime(expires) + ' (' + fmtIn(expires - now) + ')' }),
      ]));
    });
  }

  function niceStep(raw) {
    var steps = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000];
    for (var i = 0; i < steps.length; i++) if (raw <= steps[i]) return steps[i];
    return Math.ceil(raw / 1000) * 1000;
  }

  function drawChart(v, p, points, now) {
    var svg = v.chart;
    clear(svg);
    var W = 720, H = 220, L = 44, R = 110, T = 12, B = 30;
    var first = points.length ? points[0][0] : now - 7 * DAY;
    var span0 = Math.max(HOUR, now - first);
    var start = Math.max(first - Math.max(10 * 60000, span0 * 0.04), now - 90 * DAY);
    var end = now + Math.max(10 * 60000, (now - start) * 0.03);
    var maxCount = 0;
    points.forEach(function (pt) { if (pt[0] >= start && pt[1] > maxCount) maxCount = pt[1]; });
    var maxT = 0;
    p.thresholds.forEach(function (t) { if (t.requiredCount > maxT) maxT = t.requiredCount; });
    var top = Math.max(maxCount, maxT, 1) * 1.1;
    var step = niceStep(top / 4);
    var ymax = Math.ceil(top / step) * step;
    function x(t) { return L + ((t - start) / (end - start)) * (W - L - R); }
    function y(c) { return T + (1 - c / ymax) * (H - T - B); }
    var hatch = v.id + '-hatch';
    var titleText = p.name + ' pool: count over virtual time';
    var initial = 0;
    points.forEach(function (pt) { if (pt[0] <= start) initial = pt[1]; });
    var changes = points.filter(function (pt) { return pt[0] > start && pt[0] <= now; });
    var peak = initial;
    changes.forEach(function (pt) { if (pt[1] > peak) peak = pt[1]; });
    var desc = 'From ' + fmtTime(start) + ' to ' + fmtTime(now) + ': ' + plural(changes.length, 'change', 'changes') +
      ', highest count ' + peak + ', count now ' + p.count + '. Thresholds: ' +
      p.thresholds.map(function (t) { return t.requiredCount; }).join(' and ') + '.';
    svg.appendChild(svgEl('title', { id: v.id + '-chart-title', text: titleText }));
    svg.appendChild(svgEl('desc', { id: v.id + '-chart-desc', text: desc }));
    svg.appendChild(svgEl('defs', null, svgEl('pattern', { id: hatch, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
      svgEl('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#0b5cad', 'stroke-width': 2 }))));
    // Y grid and labels.
    for (var val = 0; val <= ymax; val += step) {
      svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: y(val), y2: y(val), stroke: '#d5dbe3', 'stroke-width': 1 }));
      svg.appendChild(svgEl('text', { x: L - 6, y: y(val) + 4, 'text-anchor': 'end', text: String(val) }));
    }
    // X ticks.
    var span = end - start;
    for (var j = 0; j <= 4; j++) {
      var t = start + (span * j) / 4;
      var label = span > 3 * DAY ? new Date(t).toISOString().slice(5, 10) : new Date(t).toISOString().slice(5, 16).replace('T', ' ');
      svg.appendChild(svgEl('line', { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, stroke: '#1b1f24' }));
      svg.appendChild(svgEl('text', { x: x(t), y: H - B + 16, 'text-anchor': j === 0 ? 'start' : j === 4 ? 'end' : 'middle', text: label }));
    }
    svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: '#1b1f24', 'stroke-width': 1.5 }));
    svg.appendChild(svgEl('line', { x1: L, x2: L, y1: T, y2: H - B, stroke: '#1b1f24', 'stroke-width': 1.5 }));
    // Thresholds.
    p.thresholds.forEach(function (th) {
      var yy = y(th.requiredCount);
      svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: yy, y2: yy, stroke: '#1b1f24', 'stroke-width': 1.5, 'stroke-dasharray': '6 4' }));
      svg.appendChild(svgEl('text', { x: W - R + 6, y: yy + 4, text: th.requiredCount + ' ' + (th.met ? 'met' : 'not met') }));
    });
    // Count as a step line with a hatched area below it.
    var d = 'M' + x(start) + ' ' + y(initial);
    var last = initial;
    changes.forEach(function (pt) {
      d += ' H' + x(pt[0]) + ' V' + y(pt[1]);
      last = pt[1];
    });
    d += ' H' + x(now);
    var area = d + ' V' + y(0) + ' H' + x(start) + ' Z';
    svg.appendChild(svgEl('path', { d: area, fill: 'url(#' + hatch + ')', stroke: 'none', opacity: 0.6 }));
    svg.appendChild(svgEl('path', { d: d, fill: 'none', stroke: '#0b5cad', 'stroke-width': 2.5 }));
    changes.forEach(function (pt) {
      svg.appendChild(svgEl('circle', { cx: x(pt[0]), cy: y(pt[1]), r: 2.5, fill: '#0b5cad' }));
    });
    // Now.
    svg.appendChild(svgEl('line', { x1: x(now), x2: x(now), y1: T, y2: H - B, stroke: '#1b1f24', 'stroke-width': 1, 'stroke-dasharray': '2 3' }));
    svg.appendChild(svgEl('text', { x: W - R + 6, y: y(last) - 6 < T + 8 ? T + 10 : y(last) - 6, text: 'now: ' + p.count }));
  }

  function eventKind(r) {
    if (code(r.hresult) !== 0) return { cls: 'refused', tag: '\u26d4 refused ' + hex(r.hresult) };
    if (r.wouldActivate) return { cls: 'activated', tag: '\u2713 would activate' };
    return { cls: 'insufficient', tag: '\u2717 count too low' };
  }

  function renderEvents() {
    var list = byId('events');
    var fresh = state.records.filter(function (r) { return r.seq > state.shownSeq; });
    if (fresh.length === 0) return;
    var bulk = state.shownSeq === 0 && fresh.length > 1;
    if (bulk) list.setAttribute('aria-busy', 'true');
    fresh.slice(-MAX_EVENTS).forEach(function (r) {
      var k = eventKind(r);
      var li = el('li', { className: k.cls, 'data-seq': r.seq }, [
        el('span', { className: 'tag', text: k.tag }),
        ' #' + r.seq + ' \u00b7 ' + fmtTime(r.time) + ' \u00b7 ' + (r.workstation || '(no name)') + ' \u00b7 ' +
          productName(r.skuId, r.kmsId) + ' \u00b7 V' + r.protocol + ' ' + r.ndr +
          (code(r.hresult) === 0 ? ' \u00b7 count ' + r.count + ', needs ' + r.requiredCount : '') +
          (r.fault ? ' \u00b7 fault ' + r.fault : ''),
      ]);
      list.insertBefore(li, list.firstChild);
    });
    while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
    state.shownSeq = fresh[fresh.length - 1].seq;
    if (bulk) list.setAttribute('aria-busy', 'false');
  }

  function render() {
    var s = state.status;
    if (!s) return;
    var now = Date.parse(s.time);
    renderHeader(s);
    s.pools.forEach(function (p, i) { renderPool(p, i, now); });
    renderEvents();
    document.body.setAttribute('data-ready', 'true');
    document.body.setAttribute('data-seq', String(state.lastSeq));
  }

  async function refresh() {
    if (state.refreshing) {
      state.again = true;
      return;
    }
    state.refreshing = true;
    try {
      var s = await getJson('/status');
      var c = await getJson('/clients');
      await syncRecords(Date.parse(s.time));
      state.status = s;
      state.clients = c.clients;
      render();
      byId('connection').textContent = '';
    } catch (e) {
      if (e && e.status === 401) showLogin(token ? 'That token was refused.' : '');
      byId('connection').textContent = 'Cannot read the host: ' + (e && e.message ? e.message : String(e));
    } finally {
      state.refreshing = false;
      if (state.again) {
        state.again = false;
        refresh();
      }
    }
  }

  function say(text) { byId('action-status').textContent = text; }

  async function act(label, fn) {
    if (state.acting) return;
    state.acting = true;
    say(label + '\u2026');
    try {
      var msg = await fn();
      say(msg);
    } catch (e) {
      say(label + ' failed: ' + (e && e.message ? e.message : String(e)));
    } finally {
      state.acting = false;
      await refresh();
    }
  }

  function showLogin(why) {
    var form = byId('login');
    byId('login-why').textContent = why;
    if (!form.hidden) return;
    form.hidden = false;
    byId('token').focus();
  }

  function start() {
    byId('login').addEventListener('submit', function (ev) {
      ev.preventDefault();
      token = byId('token').value.trim();
      try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* memory only */ }
      byId('token').value = '';
      byId('login').hidden = true;
      refresh();
    });
    document.querySelectorAll('[data-advance]').forEach(function (b) {
      b.addEventListener('click', function () {
        var parts = b.getAttribute('data-advance').split(':');
        var body = {};
        body[parts[0]] = Number(parts[1]);
        act('Advancing the clock by ' + b.textContent.replace(/^\+|^Advance /, ''), function () {
          return postJson('/clock/advance', body).then(function (r) {
            return 'Clock advanced by ' + parts[1] + ' ' + (parts[1] === '1' ? parts[0].slice(0, -1) : parts[0]) + ': host time is now ' + fmtTime(Date.parse(r.time)) + '.';
          });
        });
      });
    });
    byId('reset').addEventListener('click', function () {
      act('Resetting', function () {
        return postJson('/reset', {}).then(function () {
          clearRecords();
          return 'Pools and history were reset.';
        });
      });
    });
    getJson('/dashboard/catalog.json').then(function (c) { state.catalog = c; }).catch(function () {}).then(function () {
      refresh();
      setInterval(function () { if (!document.hidden) refresh(); }, POLL_MS);
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
`;
