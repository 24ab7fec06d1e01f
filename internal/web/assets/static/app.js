// The dashboard's only script: it re-renders the live section from the server every few seconds and posts
// the cancel and retry buttons. Everything shown is rendered by the server.
(function () {
  'use strict';
  var live = document.getElementById('live');
  var flash = document.getElementById('flash');
  if (!live) { return; }
  var every = Number(document.body.getAttribute('data-refresh')) || 2000;
  var headers = { 'X-Batchsynth-Csrf': '1' };
  var armed = null; // a cancel button waiting for its confirming click: {key, until}
  var busy = false;

  function keyOf(b) { return b.getAttribute('data-action') + ' ' + b.getAttribute('data-id'); }

  function arm(b) {
    b.setAttribute('data-armed', '1');
    b.textContent = 'Confirm ' + b.getAttribute('data-action');
  }

  // A refresh replaces the buttons; an armed one stays armed until its confirmation window ends.
  function rearm() {
    if (!armed) { return; }
    if (Date.now() > armed.until) { armed = null; return; }
    live.querySelectorAll('button[data-action]').forEach(function (b) {
      if (keyOf(b) === armed.key) { arm(b); }
    });
  }

  function show(msg) {
    if (!flash) { return; }
    flash.textContent = msg;
    flash.hidden = !msg;
  }

  function refresh(force) {
    if ((busy && !force) || document.hidden) { return Promise.resolve(); }
    busy = true;
    return fetch('/ui/live', { headers: headers, credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) {
        if (r.status === 401) { window.location.href = '/login'; return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined) { live.innerHTML = html; rearm(); }
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }

  live.addEventListener('click', function (e) {
    var b = e.target.closest('button[data-action]');
    if (!b || b.disabled) { return; }
    if (b.getAttribute('data-confirm') === '1' && b.getAttribute('data-armed') !== '1') {
      armed = { key: keyOf(b), until: Date.now() + 8000 };
      arm(b);
      return;
    }
    armed = null;
    b.disabled = true;
    fetch(b.getAttribute('data-url'), { method: 'POST', headers: headers, credentials: 'same-origin' })
      .then(function (r) {
        if (r.ok) { show(''); return; }
        return r.json().then(function (body) {
          show((body && body.error && body.error.message) || r.statusText);
        }, function () { show(r.statusText); });
      })
      .catch(function (err) { show(String(err)); })
      .then(function () { return refresh(true); });
  });

  setInterval(refresh, every);
})();
