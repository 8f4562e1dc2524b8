// Muster web app: shared helpers. Every page loads this, then its own script.
// No inline scripts (the CSP forbids them); values reach the page through
// textContent only, never as HTML.
'use strict';

const Muster = (() => {
  let csrf = sessionStorage.getItem('muster.csrf') || '';

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, '');
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || ('request failed (' + status + ')'));
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ 'Accept': 'application/json' }, extraHeaders || {});
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
    let resp;
    try {
      resp = await fetch('/api/v1' + path, {
        method, headers, credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      // A page being left has its requests aborted: that page is gone a
      // moment later and nothing needs saying. Otherwise Muster is unreachable.
      await new Promise(resolve => setTimeout(resolve, 1000));
      throw new ApiError(0, { message: 'Muster did not answer. Check the connection, then reload the page.' });
    }
    let data = null;
    const type = resp.headers.get('content-type') || '';
    if (type.startsWith('application/json')) data = await resp.json();
    else data = await resp.text();
    if (!resp.ok) {
      if (resp.status === 401 && !location.pathname.startsWith('/login') && path !== '/session') {
        location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
      }
      throw new ApiError(resp.status, data);
    }
    return data;
  }

  // Runs a page's script: an error it does not handle itself is shown in
  // the page's status area, not left for the console.
  function page(main) {
    main().catch(err => {
      const box = document.getElementById('status');
      if (box) say(box, 'bad', errorText(err));
    });
  }

  function setCsrf(token) {
    csrf = token || '';
    sessionStorage.setItem('muster.csrf', csrf);
  }

  // Shows a message in the page's status area (role=alert for errors).
  function say(target, kind, message) {
    const box = typeof target === 'string' ? document.getElementById(target) : target;
    box.replaceChildren();
    if (!message) { box.hidden = true; return; }
    box.hidden = false;
    box.className = 'alert ' + kind;
    box.setAttribute('role', kind === 'bad' ? 'alert' : 'status');
    if (Array.isArray(message)) box.append(el('ul', {}, message.map(m => el('li', { text: m }))));
    else box.textContent = message;
  }

  function errorText(e) {
    if (e instanceof ApiError && e.body && Array.isArray(e.body.errors)) {
      return [e.message].concat(e.body.errors.slice(0, 20).map(x => 'Row ' + (x.index + 1) + ': ' + x.message));
    }
    return e.message || String(e);
  }

  const NAV = [
    ['/', 'Mailboxes'],
    ['/invites', 'Pending invites'],
    ['/tokens', 'API tokens'],
    ['/webhooks', 'Webhooks'],
    ['/dns', 'DNS'],
    ['/audit', 'Audit'],
  ];

  // On a phone the links and the account fold behind a Menu button, so the
  // header is one line and the page starts near the top.
  function nav(email) {
    const toggle = el('button', {
      type: 'button', class: 'secondary small nav-toggle', id: 'nav-toggle', text: 'Menu',
      'aria-expanded': 'false', 'aria-controls': 'main-nav',
      onclick: () => {
        const open = header.classList.toggle('nav-open');
        toggle.setAttribute('aria-expanded', String(open));
      },
    });
    const header = el('header', { class: 'topbar' },
      el('a', { href: '/', class: 'brand', text: 'Muster' }),
      toggle,
      el('nav', { 'aria-label': 'Main', id: 'main-nav' },
        NAV.map(([href, label]) => el('a', {
          href, text: label, 'aria-current': location.pathname === href ? 'page' : null,
        })),
        el('details', { class: 'menu' },
          el('summary', { text: 'Add mailboxes' }),
          el('div', { class: 'menu-items' },
            el('a', { href: '/invites/new', text: 'Bulk invites' }),
            el('a', { href: '/mailboxes/new', text: 'Bulk creation' })))),
      el('span', { class: 'who', text: email }),
      el('button', { type: 'button', class: 'secondary small', id: 'sign-out', text: 'Sign out', onclick: signOut }));
    document.body.prepend(header);
    // The first Tab reaches a link past the header to the page itself.
    const main = document.getElementById('main');
    document.body.prepend(el('a', {
      href: '#main', class: 'skip-link', text: 'Skip to the page',
      onclick: e => { e.preventDefault(); main.tabIndex = -1; main.focus(); },
    }));
    document.body.append(cookieNotice());
    // Escape or a click elsewhere closes what the header opened.
    const close = () => {
      header.querySelectorAll('details[open]').forEach(d => { d.open = false; });
      if (header.classList.contains('nav-open')) {
        header.classList.remove('nav-open');
        toggle.setAttribute('aria-expanded', 'false');
        return true;
      }
      return false;
    };
    document.addEventListener('keydown', e => {
      if (e.key === 'Escape' && header.contains(document.activeElement) && close()) toggle.focus();
    });
    document.addEventListener('click', e => { if (!header.contains(e.target)) close(); });
  }

  function cookieNotice() {
    return el('footer', { class: 'cookies' },
      'Muster uses two cookies, for sign-in only: your session, and a note that this browser has signed in before. No tracking, no ads.');
  }

  async function signOut() {
    try { await api('DELETE', '/session'); } catch (e) { /* signed out anyway */ }
    setCsrf('');
    location.href = '/login';
  }

  // Every app page: make sure there is a session, learn its CSRF token,
  // and say so plainly when mail is not leaving the server. Resolves to
  // the settings (GET /settings), which pages use for their forms.
  async function requireSession() {
    const s = await api('GET', '/session');
    setCsrf(s.csrf_token);
    nav(s.email);
    const settings = await api('GET', '/settings');
    if (settings.outbox_dir) outboxBanner(settings.outbox_dir);
    return settings;
  }

  // Open on a wide screen; on a phone the first line says it and the
  // rest opens on a tap, so the page's own content is not pushed away.
  // Turning a phone or resizing a window past the width does the same.
  function outboxBanner(dir) {
    const main = document.querySelector('main');
    const wide = window.matchMedia('(min-width: 720px)');
    const notice = el('details', { class: 'alert warn', id: 'outbox-mode', role: 'note', open: wide.matches },
      el('summary', {},
        el('strong', { text: 'Invites are not being emailed. ' }),
        'They are written to files on the server.'),
      el('p', {}, 'No SMTP relay is configured, so each invite is written as an .eml file to ',
        el('code', { text: dir }),
        ' on the server and stays there. To send them, set ', el('code', { text: 'smtp.host' }),
        ' (and the port, user and password) in muster.toml or ', el('code', { text: 'MUSTER_SMTP_HOST' }),
        ', or send straight to each recipient\'s mail servers with ', el('code', { text: 'smtp.mode = "direct"' }),
        ' (the DNS page says what to publish first); restart Muster, and resend the invites shown as "in outbox".'));
    wide.addEventListener('change', e => { notice.open = e.matches; });
    main.prepend(notice);
  }

  function fmtDate(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  }

  function stateBadge(state) {
    return el('span', { class: 'state ' + state, text: state.replace(/_/g, ' ') });
  }

  // An invite's delivery detail in short: an outbox file by its name (the
  // whole path goes in a title).
  function shortDetail(i) {
    const detail = i.delivery_detail || '';
    return i.delivery_state === 'in_outbox' ? detail.replace(/^.*\//, '') : detail;
  }

  function download(filename, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type: type || 'text/csv' }));
    const a = el('a', { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function csvCell(v) {
    let s = v === null || v === undefined ? '' : String(v);
    if (/^[=+\-@]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  // Reads a dropped or chosen file as text (UTF-8; the server also reads UTF-16 with BOM).
  function readFile(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.readAsText(file);
    });
  }

  function dropZone(zone, onFile) {
    zone.addEventListener('dragover', e => { e.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', e => {
      e.preventDefault();
      zone.classList.remove('over');
      if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]);
    });
  }

  // One source at a time for a wizard: the pasted text, or a chosen or
  // dropped file. While a file is chosen the paste box is put away and
  // the file is named, with a button to remove it.
  function sourcePicker(ids) {
    const $ = id => document.getElementById(id);
    let file = null;   // { name, text }
    function show() {
      $(ids.pasteBox).hidden = file !== null;
      $(ids.dropzone).hidden = file !== null;
      const box = $(ids.chosen);
      box.hidden = file === null;
      if (file) {
        box.replaceChildren(
          el('p', {}, 'Using the file ', el('strong', { text: file.name }), ' (' + plural(file.text.split(/\r?\n/).filter(l => l.trim()).length, 'line') + '). Press Preview.'),
          el('button', { type: 'button', class: 'secondary', id: 'remove-file', text: 'Remove the file',
            onclick: () => { file = null; $(ids.file).value = ''; show(); $(ids.paste).focus(); } }));
      }
    }
    async function choose(f) {
      try {
        file = { name: f.name, text: await readFile(f) };
        show();
        document.getElementById('remove-file').focus();
      } catch (e) { say('status', 'bad', 'Cannot read ' + f.name + ': ' + (e.message || e)); }
    }
    $(ids.file).addEventListener('change', e => { if (e.target.files.length) choose(e.target.files[0]); });
    dropZone($(ids.dropzone), choose);
    // A file chosen while the page was still loading.
    if ($(ids.file).files.length) choose($(ids.file).files[0]);
    return {
      text: () => file ? file.text : $(ids.paste).value,
      fromFile: () => file !== null,
    };
  }

  // Keeps the keyboard where it was across a re-render of a table: the
  // same field of the same row (with what was typed in it), or the field
  // `fallback` names when that one is gone.
  function focusKeeper(tbody) {
    const active = document.activeElement;
    const tr = active && tbody.contains(active) ? active.closest('tr[data-row]') : null;
    // What was typed and not yet taken (an input's value that differs from
    // the one it was drawn with) is kept; an untouched field shows the
    // re-check's value.
    const was = tr ? { row: tr.dataset.row, field: active.dataset.field, value: active.value, tag: active.tagName,
      typed: active.tagName === 'INPUT' && active.value !== active.defaultValue } : null;
    return function restore(fallback) {
      const want = fallback || was;
      if (!want) return;
      const row = tbody.querySelector('tr[data-row="' + want.row + '"]');
      const target = row && (row.querySelector('[data-field="' + want.field + '"]') || row.querySelector('input, button'));
      if (!target) { if (want.none) want.none.focus(); return; }
      if (!fallback && was.typed && target.tagName === 'INPUT' && target.dataset.field === was.field) {
        target.value = was.value;
        // Put back before the focus, the text would raise no change when
        // the field is left: the edit is handed on then.
        target.addEventListener('blur', () => {
          if (target.value !== target.defaultValue) target.dispatchEvent(new Event('change'));
        }, { once: true });
      }
      target.focus();
    };
  }

  // Asks before an action that cannot be undone: a modal dialog naming
  // what will happen; resolves true only for the action's own button.
  function confirmAction(text, okLabel) {
    let dialog = document.getElementById('confirm');
    if (!dialog) {
      dialog = el('dialog', { id: 'confirm', 'aria-labelledby': 'confirm-text' },
        el('form', { method: 'dialog' },
          el('p', { id: 'confirm-text' }),
          el('div', { class: 'actions' },
            el('button', { value: 'ok', id: 'confirm-ok', class: 'danger' }),
            el('button', { value: 'cancel', id: 'confirm-cancel', class: 'secondary' }, 'Cancel'))));
      document.body.append(dialog);
    }
    document.getElementById('confirm-text').textContent = text;
    document.getElementById('confirm-ok').textContent = okLabel;
    dialog.returnValue = '';
    return new Promise(resolve => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
      dialog.showModal();
      document.getElementById('confirm-cancel').focus();
    });
  }

  // Copies an input's value to the clipboard; false when the browser
  // refuses, with the text left selected for copying by hand.
  async function copyText(input) {
    input.select();
    try { await navigator.clipboard.writeText(input.value); return true; } catch (e) { /* fall through */ }
    try { return document.execCommand('copy'); } catch (e) { return false; }
  }

  // Sizes as people read them: "500 MB", "2 GB", "1.5 GB", and "1.95 GB"
  // for 2000 MB (one decimal would round it up to "2.0 GB", beside
  // "2 GB" for 2048).
  function size(mb) {
    if (mb < 1024) return mb + ' MB';
    return String(Number((mb / 1024).toFixed(2))) + ' GB';
  }

  // "1 invite", "3 invites".
  function plural(n, one, many) {
    return n + ' ' + (n === 1 ? one : (many || one + 's'));
  }

  function newKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, x => x.toString(16).padStart(2, '0')).join('');
  }

  return { el, api, ApiError, page, say, errorText, setCsrf, requireSession, fmtDate, stateBadge,
           shortDetail, download, csvCell, cookieNotice, newKey, confirmAction, plural, copyText, sourcePicker, focusKeeper, size };
})();
