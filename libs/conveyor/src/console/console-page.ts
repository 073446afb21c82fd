/**
 * The console's one page: plain HTML, CSS and JavaScript in a string, so it ships inside the
 * package (no CDN, no build step, nothing fetched at run time but `{base}/api/state` and the two
 * actions). It polls the state once a second and updates the DOM in place, keyed by run, step and
 * driver, so focus, the open log panes and a half-typed cancel reason survive each update.
 *
 * Readable without colour (every state is a word and a symbol), usable by keyboard (native buttons,
 * links and inputs only; every scrolling log is focusable), labelled (captions, scoped headers,
 * named progress bars and log regions, one polite status line for what the buttons did).
 */
const PAGE = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="conveyor-console-base" content="__BASE__">
<title>Conveyor console</title>
<style>
:root{font:15px/1.45 system-ui,sans-serif;color:#1b1f24;background:#fff}
body{margin:0 auto;max-width:76rem;padding:0 1rem 2rem}
h1{font-size:1.4rem;margin:1rem 0 .2rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;border-bottom:2px solid #1b1f24}
h3{font-size:1rem;margin:0 0 .4rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #c9ced6;vertical-align:top}
th{background:#eef1f4}caption{text-align:left;font-weight:600;padding:.2rem 0}
article{border:1px solid #8a929c;border-radius:4px;padding:.6rem .8rem;margin:.8rem 0}
pre{background:#f4f6f8;border:1px solid #c9ced6;padding:.4rem;max-height:16rem;overflow:auto;margin:.3rem 0;white-space:pre-wrap;word-break:break-word}
button{font:inherit;padding:.15rem .6rem;border:1px solid #1b1f24;border-radius:3px;background:#fff;cursor:pointer}
button:hover{background:#eef1f4}:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}
input{font:inherit;padding:.15rem .3rem;min-width:18rem}
progress{width:8rem;vertical-align:middle}
.s-running{color:#0b57d0}.s-succeeded{color:#17692f}.s-failed{color:#b42318}.s-cancelled{color:#7a4a00}.s-waiting{color:#4b5563}
.muted{color:#4b5563}.warn{color:#7a4a00;font-weight:600}code{font-size:.9em}
</style>
</head>
<body>
<header>
<h1>Conveyor console</h1>
<p id="conn" class="muted">Connecting&hellip;</p>
<p id="status" role="status" aria-live="polite"></p>
</header>
<main>
<section aria-labelledby="h-drivers">
<h2 id="h-drivers">Drivers</h2>
<table>
<caption>Live driver replicas (from the driver registry) and their consumers</caption>
<thead><tr><th scope="col">Driver</th><th scope="col">Replica</th><th scope="col">Host, pid</th><th scope="col">In flight / concurrency</th><th scope="col">State</th><th scope="col">Last heartbeat</th><th scope="col">Pending</th><th scope="col">Ack pending</th><th scope="col">Redelivered</th><th scope="col">Versions (app, library)</th></tr></thead>
<tbody id="drivers"></tbody>
</table>
<ul id="warnings"></ul>
</section>
<section aria-labelledby="h-runs">
<h2 id="h-runs">Pipeline runs</h2>
<p><label for="reason">Cancel reason</label> <input id="reason" value="cancelled from the console"></p>
<div id="runs"><p class="muted">No run seen yet.</p></div>
</section>
<section aria-labelledby="h-dl">
<h2 id="h-dl">Dead letters</h2>
<p id="dl-note" class="muted"></p>
<table>
<caption>Messages a driver gave up on, newest first</caption>
<thead><tr><th scope="col">Id</th><th scope="col">Failed at</th><th scope="col">Driver</th><th scope="col">Reason</th><th scope="col">Original event</th><th scope="col">Replay</th></tr></thead>
<tbody id="dead-letters"></tbody>
</table>
</section>
</main>
<script>
(function () {
  'use strict';
  var base = document.querySelector('meta[name="conveyor-console-base"]').content;
  var skew = 0;
  var MARK = { waiting: '\u25F7', running: '\u25B6', succeeded: '\u2713', failed: '\u2717', cancelled: '\u25A0' };
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function setText(e, t) { t = t == null ? '' : String(t); if (e.textContent !== t) e.textContent = t; }
  function setAttr(e, k, v) { if (e.getAttribute(k) !== v) e.setAttribute(k, v); }
  /* Keyed update: existing nodes are kept (focus stays), new ones made, gone ones removed, order kept. */
  function keyed(box, items, key, make, update) {
    var have = {};
    Array.prototype.forEach.call(box.children, function (c) { if (c.dataset.key) have[c.dataset.key] = c; else box.removeChild(c); });
    var prev = null;
    items.forEach(function (item) {
      var k = key(item), node = have[k];
      if (!node) { node = make(item); node.dataset.key = k; }
      delete have[k];
      update(node, item);
      var want = prev ? prev.nextSibling : box.firstChild;
      if (node !== want) box.insertBefore(node, want);
      prev = node;
    });
    Object.keys(have).forEach(function (k) { box.removeChild(have[k]); });
  }
  function ago(iso) { return Math.max(0, Math.round((Date.now() + skew - Date.parse(iso)) / 1000)) + ' s ago'; }
  function dur(ms) { return ms == null ? '' : ms < 1000 ? ms + ' ms' : (ms / 1000).toFixed(1) + ' s'; }
  function say(text) { setText($('status'), text); }
  function post(path, body) {
    return fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body || {}) })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || 'HTTP ' + r.status); return j; }); });
  }
  function cells(tr, n) { while (tr.children.length < n) tr.appendChild(el('td')); return tr.children; }

  function renderDrivers(drivers) {
    var rows = [];
    drivers.forEach(function (d) {
      if (d.instances.length === 0) rows.push({ key: d.driver + '/-', d: d });
      d.instances.forEach(function (i) { rows.push({ key: d.driver + '/' + i.instance_id, d: d, i: i }); });
    });
    keyed($('drivers'), rows, function (r) { return r.key; }, function (r) {
      var tr = el('tr', { 'data-driver': r.d.driver });
      tr.appendChild(el('th', { scope: 'row' }));
      return tr;
    }, function (tr, r) {
      var c = cells(tr, 10), i = r.i, k = r.d.consumer;
      setText(c[0], r.d.driver);
      setText(c[1], i ? i.instance_id : 'no live replica');
      setText(c[2], i ? i.host + ', ' + i.pid : '');
      setText(c[3], i ? i.in_flight + ' / ' + i.concurrency : '');
      setText(c[4], i ? i.state : '');
      setText(c[5], i ? ago(i.seen_at) : '');
      setText(c[6], k ? k.pending : 'unknown');
      setText(c[7], k ? k.ack_pending : 'unknown');
      setText(c[8], k ? k.redelivered : 'unknown');
      setText(c[9], i ? (i.app_version || '?') + ', ' + (i.library_version || '?') : '');
      setAttr(tr, 'data-live', i ? 'yes' : 'no');
    });
  }

  function makeRun(run) {
    var a = el('article', { id: 'run-' + run.run_id, 'data-run': run.run_id, 'aria-labelledby': 'h-' + run.run_id });
    a.appendChild(el('h3', { id: 'h-' + run.run_id }));
    a.appendChild(el('p', { class: 'replay' }));
    var t = el('table');
    t.appendChild(el('caption', null, 'Steps'));
    var head = el('tr');
    ['Driver', 'State', 'Duration', 'Progress', 'Result', 'Action'].forEach(function (h) { head.appendChild(el('th', { scope: 'col' }, h)); });
    t.appendChild(el('thead')).appendChild(head);
    t.appendChild(el('tbody'));
    a.appendChild(t);
    a.appendChild(el('p', { class: 'muted none' }, 'No driver step seen: no live driver reconciles this resource type (or none has taken it yet).'));
    var d = el('details', { open: '' });
    d.appendChild(el('summary'));
    d.appendChild(el('pre', { tabindex: '0', role: 'log', 'aria-live': 'off', 'aria-label': 'Log of run ' + run.run_id }));
    a.appendChild(d);
    return a;
  }
  function makeStep(step) {
    var tr = el('tr', { 'data-step': step.driver });
    tr.appendChild(el('th', { scope: 'row' }, step.driver));
    for (var n = 0; n < 5; n++) tr.appendChild(el('td'));
    var bar = el('progress', { max: '1', value: '0', 'aria-label': 'Progress of ' + step.driver });
    tr.children[3].appendChild(bar);
    tr.children[3].appendChild(el('span'));
    return tr;
  }
  function updateStep(runId) {
    return function (tr, s) {
      var c = tr.children;
      setText(c[1], MARK[s.state] + ' ' + s.state);
      setAttr(c[1], 'class', 's-' + s.state);
      setAttr(tr, 'data-state', s.state);
      setText(c[2], s.duration_ms != null ? dur(s.duration_ms) : s.state === 'running' ? dur(Date.now() + skew - Date.parse(s.queued_at)) + ' so far' : '');
      var p = s.progress, bar = c[3].firstChild;
      if (p) {
        bar.value = p.fraction;
        setText(c[3].lastChild, ' ' + Math.round(p.fraction * 100) + ' %' + (p.total != null ? ' (' + p.done + '/' + p.total + ')' : '') + (p.phase ? ' ' + p.phase : ''));
      } else setText(c[3].lastChild, s.state === 'succeeded' ? '' : ' no report');
      bar.hidden = !p;
      setText(c[4], s.message || '');
      var btn = c[5].firstChild;
      if (s.state === 'running' || s.state === 'waiting') {
        if (!btn) {
          btn = el('button', { type: 'button', 'aria-label': 'Cancel run ' + runId + ' (step ' + s.driver + ')' }, 'Cancel');
          btn.addEventListener('click', function () {
            btn.disabled = true;
            post('/api/runs/' + encodeURIComponent(runId) + '/cancel', { reason: $('reason').value })
              .then(function () { say('Cancel sent for run ' + runId + '.'); })
              .catch(function (e) { btn.disabled = false; say('Cancel of run ' + runId + ' failed: ' + e.message); });
          });
          c[5].appendChild(btn);
        }
      } else if (btn) c[5].removeChild(btn);
    };
  }
  function updateRun(a, run) {
    var what = run.resource ? run.resource.type + '/' + run.resource.name : 'resource unknown';
    setText(a.firstChild, 'Run ' + run.run_id + ': ' + what + (run.pipeline ? ', pipeline ' + run.pipeline : ''));
    var note = a.children[1];
    if (run.replay_of && !note.firstChild) {
      note.appendChild(document.createTextNode('Replay of dead letter '));
      note.appendChild(el('a', { href: '#dl-' + run.replay_of.dead_letter }, run.replay_of.dead_letter));
      if (run.replay_of.run_id) note.appendChild(document.createTextNode(' (original run ' + run.replay_of.run_id + ')'));
    }
    a.querySelector('table').hidden = run.steps.length === 0;
    a.querySelector('.none').hidden = run.steps.length > 0;
    keyed(a.querySelector('tbody'), run.steps, function (s) { return s.driver; }, makeStep, updateStep(run.run_id));
    var lines = run.logs.map(function (l) { return '[' + l.driver + '] ' + l.message; }).join('\n');
    setText(a.querySelector('summary'), 'Log: ' + run.logs.length + ' line(s), ' + (run.log_source === 'store' ? 'from the store' : 'live'));
    var pre = a.querySelector('pre');
    if (pre.textContent !== lines) {
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = lines;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
  }

  function renderDeadLetters(dl) {
    setText($('dl-note'), dl.subject ? 'Watching ' + dl.subject + ' (records published while this console runs).' : 'Off: no dead-letter subject is configured (deadLetterSubject).');
    keyed($('dead-letters'), dl.items, function (d) { return d.id; }, function (d) {
      var tr = el('tr', { id: 'dl-' + d.id, 'data-dead-letter': d.id });
      tr.appendChild(el('th', { scope: 'row' }, d.id));
      for (var n = 0; n < 5; n++) tr.appendChild(el('td'));
      var det = el('details');
      det.appendChild(el('summary', null, 'Show event'));
      det.appendChild(el('pre', { tabindex: '0', role: 'log', 'aria-live': 'off', 'aria-label': 'Original event of dead letter ' + d.id }, d.event));
      tr.children[4].appendChild(det);
      var btn = el('button', { type: 'button', 'aria-label': 'Replay dead letter ' + d.id + ' to ' + d.driver }, 'Replay');
      btn.addEventListener('click', function () {
        btn.disabled = true;
        post('/api/dead-letters/' + encodeURIComponent(d.id) + '/replay')
          .then(function (r) { say('Dead letter ' + d.id + ' replayed as run ' + r.run_id + '.'); })
          .catch(function (e) { btn.disabled = false; say('Replay of ' + d.id + ' failed: ' + e.message); });
      });
      tr.children[5].appendChild(btn);
      tr.children[5].appendChild(el('span'));
      return tr;
    }, function (tr, d) {
      var c = tr.children;
      setText(c[1], d.failed_at);
      setText(c[2], d.driver);
      setText(c[3], d.reason + (d.run_id ? ' (run ' + d.run_id + ')' : ''));
      var span = c[5].lastChild;
      if (d.replayed_as && !span.firstChild) {
        c[5].firstChild.disabled = true;
        span.appendChild(document.createTextNode(' replayed as '));
        span.appendChild(el('a', { href: '#run-' + d.replayed_as }, 'run ' + d.replayed_as));
      }
    });
  }

  function render(state) {
    skew = Date.parse(state.now) - Date.now();
    setText($('conn'), state.connected ? 'Live: updated ' + new Date(state.now).toLocaleTimeString() : 'Not connected to NATS');
    renderDrivers(state.drivers);
    keyed($('warnings'), state.warnings, function (w) { return w; }, function (w) { return el('li', { class: 'warn' }, 'Warning: ' + w); }, function () {});
    if (state.runs.length) keyed($('runs'), state.runs, function (r) { return r.run_id; }, makeRun, updateRun);
    renderDeadLetters(state.dead_letters);
  }
  function tick() {
    fetch(base + '/api/state', { cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
      .then(render)
      .catch(function (e) { setText($('conn'), 'Console unreachable: ' + e.message + ' (retrying)'); })
      .then(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
</script>
</body>
</html>
`;

/** Size in bytes of the page as shipped (before the mount path is filled in): one request, nothing else. */
export const CONSOLE_PAGE_BYTES = Buffer.byteLength(PAGE, 'utf8');

/** The page for a console mounted at `base` (e.g. `/console`; `''` at the root). */
export function consolePage(base: string): string {
  const escaped = base.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return PAGE.replace('__BASE__', escaped);
}
