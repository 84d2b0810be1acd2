// duecall dashboard: asks for the API key once, loads the server-rendered fragments and
// /v1/stats with it, and follows the event stream (polling when the stream is not there).
'use strict';

(() => {
  const KEY = 'duecall.apiKey';
  const POLL_MS = 3000;
  const CALL_EVENTS = [
    'Submitted', 'Scheduled', 'Started', 'AttemptFailed', 'Succeeded', 'Failed', 'Cancelled',
    'Paused', 'Resumed', 'RetryRequested',
  ].map((t) => `ServiceCall.${t}`);
  const FINISHED_EVENTS = ['Execution.Succeeded', 'Execution.Failed'];
  const SCHEDULE_EVENTS = [
    'Created', 'Updated', 'Fired', 'Triggered', 'Skipped', 'Buffered', 'CaughtUp',
    'FireSucceeded', 'FireFailed', 'FireCancelled', 'Paused', 'Resumed', 'Finished', 'Deleted',
  ].map((t) => `Schedule.${t}`);
  const RUN_EVENTS = [
    'Created', 'StepStarted', 'StepSkipped', 'StepSucceeded', 'StepFailed', 'StepCancelled',
    'CompensationStarted', 'Compensated', 'CompensationFailed', 'Succeeded', 'Failed',
    'Cancelled', 'Paused', 'Resumed', 'RetryRequested', 'StepRerunRequested',
  ].map((t) => `WorkflowRun.${t}`);
  const EVENT_TYPES = CALL_EVENTS.concat('Execution.Started', FINISHED_EVENTS);

  const $ = (selector, root = document) => root.querySelector(selector);
  const apiKey = () => localStorage.getItem(KEY);

  // -- the API key -------------------------------------------------------------------------

  function takeKeyFromFragment() {
    const found = location.hash.match(/[#&]key=([^&]+)/);
    if (!found) return;
    localStorage.setItem(KEY, decodeURIComponent(found[1]));
    history.replaceState(null, '', location.pathname + location.search);  // out of sight
  }

  function askForKey(message) {
    $('#main').hidden = true;
    const form = $('#key-form');
    form.hidden = false;
    $('#key-error').textContent = message || '';
    form.elements.key.focus();
  }

  class Unauthorized extends Error {}

  async function problem(response) {
    try {
      const body = await response.json();
      return body.detail || body.title || response.statusText;
    } catch {
      return `${response.status} ${response.statusText}`;
    }
  }

  async function get(url, accept) {
    const response = await fetch(url, {
      headers: { Authorization: `Bearer ${apiKey()}`, Accept: accept }, cache: 'no-store',
    });
    if (response.status === 401) throw new Unauthorized(await problem(response));
    if (!response.ok) throw new Error(`${url}: ${await problem(response)}`);
    return response;
  }

  function report(error) {
    if (error instanceof Unauthorized) return askForKey(error.message);
    const banner = $('#error');
    banner.textContent = error.message;
    banner.hidden = false;
  }

  function clearError() {
    $('#error').hidden = true;
  }

  // -- fragments and refreshes -------------------------------------------------------------

  async function loadPart(box, query) {
    const response = await get(box.dataset.part + (query ? `?${query}` : ''), 'text/html');
    const html = await response.text();
    const open = new Set([...box.querySelectorAll('details[open]')].map((d) => d.dataset.key));
    box.innerHTML = html;  // rendered (and escaped) by the server's templates
    for (const details of box.querySelectorAll('details[data-key]')) {
      if (open.has(details.dataset.key)) details.open = true;
    }
    clearError();
  }

  // run(minPosition) at most once per `gap` ms, never two at once, always once more after
  // the last request for it
  function throttled(run, gap) {
    let timer = null;
    let running = false;
    let pending = false;
    let position = 0;
    const fire = async () => {
      timer = null;
      if (running) { pending = true; return; }
      running = true;
      pending = false;
      try { await run(position || null); } catch (error) { report(error); }
      running = false;
      if (pending) timer = setTimeout(fire, gap);
    };
    return (minPosition) => {
      if (minPosition) position = Math.max(position, minPosition);
      if (timer === null) timer = setTimeout(fire, running ? gap : 0);
      else pending = true;
    };
  }

  // -- live updates ------------------------------------------------------------------------

  function setLive(state, title) {
    const badge = $('#live');
    badge.dataset.state = state;
    badge.textContent = state;
    badge.title = title;
  }

  // onEvent(event) for each event of the stream (filters: call_id, type), or onEvent(null)
  // every few seconds while the stream is unavailable. EventSource hands over only the
  // named events it listens for: those of `type`, else every call and execution event.
  function follow(filters, onEvent) {
    let poller = null;
    let lastId = null;
    const polling = (on) => {
      if (on && poller === null) poller = setInterval(() => onEvent(null), POLL_MS);
      if (!on && poller !== null) { clearInterval(poller); poller = null; }
    };
    const connect = () => {
      if (!window.EventSource) {
        polling(true);
        return setLive('polling', `No EventSource here: reloading every ${POLL_MS / 1000} s`);
      }
      const params = new URLSearchParams({ ...filters, access_token: apiKey() });
      if (lastId) params.set('last_event_id', lastId);
      const source = new EventSource(`/v1/events/stream?${params}`);
      const handle = (message) => {
        lastId = message.lastEventId || lastId;
        let event = null;
        try { event = JSON.parse(message.data); } catch { /* a heartbeat or a comment */ }
        if (event && event.position === undefined && lastId) event.position = Number(lastId);
        onEvent(event);
      };
      source.onmessage = handle;
      const types = filters.type ? filters.type.split(',') : EVENT_TYPES;
      for (const type of types) source.addEventListener(type, handle);
      source.onopen = () => {
        polling(false);
        setLive('live', 'Following the event stream');
        onEvent(null);  // whatever happened while not connected
      };
      source.onerror = () => {
        polling(true);
        if (source.readyState === EventSource.CLOSED) {  // refused or not there: try later
          setLive('polling', `Event stream unavailable: reloading every ${POLL_MS / 1000} s`);
          setTimeout(connect, 30000);
        } else {
          setLive('reconnecting', 'Event stream lost: reconnecting (polling meanwhile)');
        }
      };
    };
    connect();
  }

  // -- pages -------------------------------------------------------------------------------

  // a filtered, paged list (the calls, the schedules) in `box`, refreshed by `events`
  function listPage(box, events) {
    const form = $('#filters');
    const cursors = [''];  // the cursor of each page walked so far; the last is shown
    const query = new URLSearchParams(location.search);
    for (const field of form.elements) {
      if (!field.name || !query.has(field.name)) continue;
      if (field.type === 'checkbox') field.checked = query.getAll(field.name).includes(field.value);
      else field.value = query.get(field.name);
    }
    const filters = () => {
      const params = new URLSearchParams();
      for (const [name, value] of new FormData(form)) if (value) params.append(name, value);
      return params;
    };
    const load = async (minPosition) => {
      const params = filters();
      const cursor = cursors[cursors.length - 1];
      if (cursor) params.set('cursor', cursor);
      if (minPosition) params.set('min_position', minPosition);
      const before = new Map([...box.querySelectorAll('tr[data-id]')]
        .map((row) => [row.dataset.id, row.dataset.status]));
      await loadPart(box, params.toString());
      for (const row of box.querySelectorAll('tr[data-id]')) {
        const was = before.get(row.dataset.id);
        if (before.size && was !== row.dataset.status) row.classList.add('changed');
      }
      const table = $('table', box);
      $('#next').disabled = !table.dataset.nextCursor;
      $('#prev').disabled = cursors.length === 1;
      $('#page-info').textContent = `page ${cursors.length}`;
    };
    const refresh = throttled(load, 500);
    const restart = () => {
      cursors.splice(1);
      const params = filters().toString();
      history.replaceState(null, '', location.pathname + (params ? `?${params}` : ''));
      refresh();
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); restart(); });
    form.addEventListener('reset', () => setTimeout(restart));
    form.addEventListener('change', (e) => { if (e.target.type !== 'text') restart(); });
    $('#next').addEventListener('click', () => {
      cursors.push($('table', box).dataset.nextCursor);
      refresh();
    });
    $('#prev').addEventListener('click', () => { cursors.pop(); refresh(); });
    refresh();
    follow({ type: events.join(',') }, (event) => refresh(event && event.position));
  }

  function callPage() {
    const box = $('#call');
    const refresh = throttled(() => loadPart(box), 300);
    refresh();
    follow({ call_id: box.dataset.callId }, () => refresh());
  }

  // a schedule is read from its own events (never stale): any of its events refreshes it
  function schedulePage() {
    const box = $('#schedule');
    const refresh = throttled(() => loadPart(box), 300);
    refresh();
    follow({ type: SCHEDULE_EVENTS.join(',') }, (event) => {
      if (!event || event.aggregate_id === box.dataset.scheduleId) refresh();
    });
  }

  // a workflow run is read from its own events: any of them refreshes it, and so does one of
  // its steps' calls starting an attempt (the steps' attempts); the SVG is drawn server-side
  function workflowRunPage() {
    const box = $('#run');
    const refresh = throttled(
      (minPosition) => loadPart(box, minPosition ? `min_position=${minPosition}` : ''), 500);
    refresh();
    follow({ type: RUN_EVENTS.concat('ServiceCall.Started').join(',') }, (event) => {
      if (!event) return refresh();
      const calls = ($('[data-call-ids]', box)?.dataset.callIds || '').split(' ');
      if (event.aggregate_id === box.dataset.runId || calls.includes(event.service_call_id)) {
        refresh(event.position);
      }
      return undefined;
    });
  }

  // the runs (filtered, paged, refreshed by any run's events), and a run opened by its id
  function workflowsPage() {
    listPage($('#runs'), RUN_EVENTS);
    const form = $('#open-run');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const id = form.elements.run_id.value.trim().toLowerCase();
      location.assign(`/ui/workflows/runs/${encodeURIComponent(id)}`);
    });
  }

  // -- stats: SVG charts -------------------------------------------------------------------

  const RANGES = {
    '1h': [3600e3, 'minute'], '6h': [6 * 3600e3, 'minute'], '24h': [86400e3, 'hour'],
    '7d': [7 * 86400e3, 'hour'], '30d': [30 * 86400e3, 'day'],
  };
  const STEP = { minute: 60e3, hour: 3600e3, day: 86400e3 };
  const SVG = 'http://www.w3.org/2000/svg';
  const W = 960;
  const H = 220;
  const PAD = { left: 64, right: 16, top: 12, bottom: 28 };

  function svg(name, attrs, parent, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    const nice = [1, 2, 2.5, 5, 10].find((m) => m * power >= value);
    return nice * power;
  }

  function timeLabel(t, bucket) {
    const d = new Date(t);
    const hm = d.toISOString().slice(11, 16);
    if (bucket === 'minute') return hm;
    if (bucket === 'hour') return `${d.toISOString().slice(5, 10)} ${hm}`;
    return d.toISOString().slice(0, 10);
  }

  // series: [{key, label, colour, kind: 'bar' | 'line', value(row)}]; bars stack
  function chart(container, rows, bucket, series, { max, format }) {
    container.replaceChildren();
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'plot', role: 'img' }, container);
    const plotW = W - PAD.left - PAD.right;
    const plotH = H - PAD.top - PAD.bottom;
    const step = plotW / Math.max(rows.length, 1);
    const x = (i) => PAD.left + i * step;
    const y = (v) => PAD.top + plotH - (v / max) * plotH;
    for (let k = 0; k <= 4; k += 1) {
      const v = (max * k) / 4;
      svg('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }, root);
      svg('text', { x: PAD.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, root,
        format(v));
    }
    const every = Math.max(1, Math.ceil(rows.length / 8));
    rows.forEach((row, i) => {
      if (i % every) return;
      svg('text', { x: x(i) + step / 2, y: H - 8, class: 'axis', 'text-anchor': 'middle' }, root,
        timeLabel(row.t, bucket));
    });
    const bars = series.filter((s) => s.kind === 'bar');
    rows.forEach((row, i) => {
      let base = 0;
      for (const s of bars) {
        const v = s.value(row) || 0;
        if (!v) continue;
        const rect = svg('rect', {
          x: x(i) + step * 0.1, width: Math.max(step * 0.8, 1), y: y(base + v),
          height: y(base) - y(base + v), fill: s.colour, class: `bar ${s.key}`,
        }, root);
        svg('title', {}, rect, `${timeLabel(row.t, bucket)}: ${s.label} ${format(v)}`);
        base += v;
      }
    });
    for (const s of series.filter((item) => item.kind === 'line')) {
      let path = '';
      let pen = false;
      rows.forEach((row, i) => {
        const v = s.value(row);
        if (v === null || v === undefined) { pen = false; return; }
        path += `${pen ? 'L' : 'M'}${(x(i) + step / 2).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
        const dot = svg('circle', { cx: x(i) + step / 2, cy: y(v), r: 2.5, fill: s.colour },
          root);
        svg('title', {}, dot, `${timeLabel(row.t, bucket)}: ${s.label} ${format(v)}`);
      });
      if (path) svg('path', { d: path, stroke: s.colour, class: `line ${s.key}` }, root);
    }
    const legend = document.createElement('p');
    legend.className = 'legend';
    for (const s of series) {
      const item = document.createElement('span');
      item.innerHTML = '<i></i>';
      item.firstChild.style.background = s.colour;
      item.append(s.label);
      legend.append(item);
    }
    container.append(legend);
  }

  const ms = (v) => {
    if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)} s`;
    return `${v >= 10 || !v ? Math.round(v) : v.toFixed(1)} ms`;
  };
  const pct = (v) => `${Math.round(v * 100)}%`;
  const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

  function statsPage() {
    const select = $('#range').elements.range;
    const stored = sessionStorage.getItem('duecall.statsRange');
    if (stored && RANGES[stored]) select.value = stored;
    const load = async () => {
      const [span, bucket] = RANGES[select.value];
      const step = STEP[bucket];
      const end = Math.ceil((Date.now() + 1) / step) * step;
      const start = end - span;
      const params = new URLSearchParams({
        from: new Date(start).toISOString(), to: new Date(end).toISOString(), bucket,
      });
      const stats = await (await get(`/v1/stats?${params}`, 'application/json')).json();
      clearError();
      const found = new Map(stats.items.map((item) => [Date.parse(item.bucket), item]));
      const rows = [];
      for (let t = start; t < end; t += step) rows.push({ t, ...(found.get(t) || {}) });
      const sum = (key) => stats.items.reduce((total, item) => total + (item[key] || 0), 0);
      const executions = sum('executions');
      const totals = [
        ['attempts', executions], ['succeeded', sum('succeeded')], ['failed', sum('failed')],
        ['retries', sum('retries')],
        ['success rate', executions ? pct(sum('succeeded') / executions) : '—'],
      ];
      $('#totals').replaceChildren(...totals.map(([label, value]) => {
        const div = document.createElement('div');
        div.innerHTML = '<strong></strong><span></span>';
        div.firstChild.textContent = value;
        div.lastChild.textContent = label;
        return div;
      }));
      const most = Math.max(0, ...rows.map((r) => (r.succeeded || 0) + (r.failed || 0)));
      chart($('#chart-throughput'), rows, bucket, [
        { key: 'ok', label: 'succeeded', colour: '#2f9e44', kind: 'bar', value: (r) => r.succeeded },
        { key: 'bad', label: 'failed', colour: '#e03131', kind: 'bar', value: (r) => r.failed },
      ], { max: niceMax(Math.max(most, 4)), format: count });
      chart($('#chart-success'), rows, bucket, [
        { key: 'rate', label: 'success rate', colour: '#1971c2', kind: 'line',
          value: (r) => (r.executions ? r.success_rate : null) },
      ], { max: 1, format: pct });
      const slowest = Math.max(0, ...rows.map((r) => r.p99_ms || 0));
      chart($('#chart-latency'), rows, bucket, [
        { key: 'p50', label: 'p50', colour: '#1971c2', kind: 'line', value: (r) => r.p50_ms },
        { key: 'p95', label: 'p95', colour: '#f08c00', kind: 'line', value: (r) => r.p95_ms },
        { key: 'p99', label: 'p99', colour: '#ae3ec9', kind: 'line', value: (r) => r.p99_ms },
      ], { max: niceMax(slowest), format: ms });
    };
    const refresh = throttled(load, 5000);
    select.addEventListener('change', () => {
      sessionStorage.setItem('duecall.statsRange', select.value);
      refresh();
    });
    refresh();
    follow({ type: FINISHED_EVENTS.join(',') }, () => refresh());
  }

  // -- start -------------------------------------------------------------------------------

  const PAGES = {
    calls: () => listPage($('#calls'), CALL_EVENTS),
    call: callPage,
    schedules: () => listPage($('#schedules'), SCHEDULE_EVENTS),
    schedule: schedulePage,
    workflows: workflowsPage,
    workflow_run: workflowRunPage,
    stats: statsPage,
  };

  document.addEventListener('DOMContentLoaded', () => {
    takeKeyFromFragment();
    $('#key-form').addEventListener('submit', (e) => {
      e.preventDefault();
      localStorage.setItem(KEY, e.target.elements.key.value.trim());
      location.reload();
    });
    $('#forget-key').addEventListener('click', () => {
      localStorage.removeItem(KEY);
      location.reload();
    });
    if (!apiKey()) return askForKey();
    $('#main').hidden = false;
    return PAGES[document.body.dataset.page]();
  });
})();
