// hookinbox dashboard: refreshes the page's content while it is visible.
// No framework, no build step. The new content comes from the same page,
// rendered and escaped by the server; it replaces <main> only, so the
// header, the scroll position and the script stay.
(function () {
  'use strict';
  var main = document.querySelector('main[data-refresh]');
  if (!main) {
    return;
  }
  var every = (parseInt(main.getAttribute('data-refresh'), 10) || 5) * 1000;
  var busy = false;
  var last = Date.now();

  function typing() {
    var el = document.activeElement;
    return el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName);
  }

  function refresh() {
    if (busy || document.visibilityState !== 'visible' || typing()) {
      return;
    }
    busy = true;
    fetch(location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.querySelector('main');
        var current = document.querySelector('main');
        if (fresh && current) {
          current.replaceWith(document.adoptNode(fresh));
        }
        var stamp = document.getElementById('refreshed');
        var freshStamp = doc.getElementById('refreshed');
        if (stamp && freshStamp) {
          stamp.textContent = freshStamp.textContent;
          stamp.classList.remove('stale');
        }
        last = Date.now();
      })
      .catch(function (err) {
        var stamp = document.getElementById('refreshed');
        if (stamp) {
          stamp.textContent = 'not refreshed: ' + err.message;
          stamp.classList.add('stale');
        }
      })
      .finally(function () {
        busy = false;
      });
  }

  setInterval(refresh, every);
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible' && Date.now() - last >= every) {
      refresh();
    }
  });
})();
