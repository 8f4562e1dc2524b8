'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate, stateBadge, shortDetail, confirmAction, plural, copyText } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);
  let cursor = null;

  const batches = await api('GET', '/batches');
  batches.forEach(b => $('batch').append(el('option', { value: b.id, text: b.domain + ' · ' + fmtDate(b.created_at) + ' · ' + plural(b.invite_count, 'invite') })));
  const params = new URLSearchParams(location.search);
  if (params.get('batch')) {
    // A batch older than the list of batches holds (a notice's link) is
    // still the one asked for.
    if (![...$('batch').options].some(o => o.value === params.get('batch'))) {
      $('batch').append(el('option', { value: params.get('batch'), text: 'Batch ' + params.get('batch') }));
    }
    $('batch').value = params.get('batch');
  }
  if (params.get('state')) {
    $('state').value = params.get('state');
    // A state the list does not know (a mistyped link) is said, not hidden.
    if ($('state').value !== params.get('state')) {
      say('status', 'bad', 'The address asks for the state "' + params.get('state') + '", which the list does not know: showing every state.');
    }
  }
  if (params.get('q')) $('q').value = params.get('q');

  // The API names the batch `batch_id`; the page's own address, `batch`.
  function filters(batchKey = 'batch_id') {
    const q = new URLSearchParams();
    if ($('batch').value) q.set(batchKey, $('batch').value);
    if ($('state').value) q.set('state', $('state').value);
    if ($('q').value.trim()) q.set('q', $('q').value.trim());
    return q;
  }

  function query() {
    const q = filters();
    q.set('limit', '100');
    if (cursor) q.set('cursor', cursor);
    return '/invites?' + q;
  }

  async function act(id, action, who) {
    if (action === 'link') {
      const r = await api('POST', '/invites/' + encodeURIComponent(id) + '/link');
      const box = $('copied');
      box.hidden = false;
      box.className = 'alert ok';
      // It sits apart from the row: it says whose link it is.
      box.replaceChildren(el('label', { for: 'copied-url', text: 'Setup link for ' + who + ' (share it only with them):' }),
        el('input', { type: 'text', id: 'copied-url', readonly: true, value: r.url }));
      // It sits under the list, which may run far below the row clicked.
      box.scrollIntoView({ block: 'nearest' });
      if (await copyText($('copied-url'))) {
        box.append(el('p', { text: 'Copied to the clipboard.' }));
        box.scrollIntoView({ block: 'nearest' });
      }
      return;
    }
    await api('POST', '/invites/' + encodeURIComponent(id) + '/' + action);
  }

  // The question before an action on `n` invites, and its button; `what`
  // names them in the question ("the invite to jane@…"), or their count.
  const ASK = {
    resend: (n, what) => ['Resend ' + (what || plural(n, 'invite')) + '? ' + (n === 1 ? 'It gets a fresh link; the old one stops working.' : 'Each gets a fresh link; the old one stops working.'), 'Resend ' + plural(n, 'invite')],
    revoke: (n, what) => ['Revoke ' + (what || plural(n, 'invite')) + '? ' + (n === 1 ? 'Its link stops' : 'Their links stop') + ' working at once. This cannot be undone.', 'Revoke ' + plural(n, 'invite')],
  };

  // Why an invite waits or failed, or why its mailbox could not be made: one
  // line, shown whole on a click or tap (a phone has no hover for the title).
  function detailButton(full, short, kind) {
    const b = el('button', { type: 'button', class: 'muted detail' + (kind ? ' ' + kind : ''), title: full, 'aria-expanded': 'false', text: short });
    b.addEventListener('click', () => {
      const open = b.getAttribute('aria-expanded') !== 'true';
      b.setAttribute('aria-expanded', String(open));
      b.textContent = open ? full : short;
    });
    return b;
  }

  const DONE = { resend: 'Resent', revoke: 'Revoked' };

  function row(i) {
    const open = ['live', 'expired', 'blocked'].includes(i.link_state);
    // A used or revoked invite takes no action: nothing to select, and no
    // buttons that would only be greyed out.
    const check = el('input', { type: 'checkbox', class: 'pick', value: i.id, 'data-recipient': i.recipient_email, disabled: !open,
      'aria-label': 'Select ' + i.recipient_email });
    const button = (label, action, cls) => el('button', {
      type: 'button', class: cls || 'secondary', text: label, 'data-action': action,
      'aria-label': label + ' ' + i.recipient_email,
      onclick: async () => {
        if (ASK[action]) {
          const [text, ok] = ASK[action](1, 'the invite to ' + i.recipient_email);
          if (!await confirmAction(text, ok)) return;
        }
        // A copied link says so in its own box; an old line above goes.
        if (action === 'link') say('status', 'ok', '');
        try {
          await act(i.id, action, i.recipient_email);
          if (action !== 'link') {
            say('status', 'ok', DONE[action] + ' the invite to ' + i.recipient_email + '.');
            await reload();
            focusAfter(i.id, action);
          }
        } catch (err) { say('status', 'bad', errorText(err)); }
      },
    });
    const notes = [];
    if (i.new_link_requested_at) notes.push(el('div', { class: 'flag', text: 'asked for a new link ' + fmtDate(i.new_link_requested_at) }));
    if (i.last_error) notes.push(detailButton(i.last_error, i.last_error, 'reason'));
    const detail = i.delivery_detail ? shortDetail(i) : null;
    return el('tr', { 'data-id': i.id, 'data-link': i.link_state, 'data-delivery': i.delivery_state },
      el('td', { class: 'pick-cell' }, check),
      el('td', { class: 'who' },
        el('div', { text: i.recipient_email }),
        el('div', { class: 'muted', text: (i.display_name ? i.display_name + ' · ' : '') + 'mailbox ' + i.mailbox }),
        i.purpose === 'password_reset' ? el('span', { class: 'state', text: 'password reset' }) : null),
      el('td', { 'data-label': 'Link' }, stateBadge(i.link_state), notes),
      el('td', { 'data-label': 'Delivery' }, stateBadge(i.delivery_state),
        detail ? detailButton(i.delivery_detail, detail) : null,
        i.delivery_state === 'deferred' && i.next_attempt_at
          ? el('div', { class: 'muted retry', text: plural(i.attempts, 'attempt') + ' so far; next try ' + fmtDate(i.next_attempt_at) })
          : null),
      el('td', { 'data-label': 'Expires', class: 'nowrap', text: fmtDate(i.expires_at) }),
      el('td', {}, open ? el('div', { class: 'actions compact' }, button('Resend', 'resend'), button('Revoke', 'revoke', 'danger'), button('Copy link', 'link')) : null));
  }

  async function load(append) {
    try {
      const page = await api('GET', query());
      const tbody = $('invites').querySelector('tbody');
      if (!append) tbody.replaceChildren();
      page.invites.forEach(i => tbody.append(row(i)));
      if (!tbody.children.length) tbody.append(el('tr', {}, el('td', { colspan: 6, text: 'No invites match.' })));
      cursor = page.next_cursor || null;
      $('more').hidden = !cursor;
      $('select-all').checked = false;
      followMoving(1000);
    } catch (err) {
      say('status', 'bad', errorText(err));
    }
  }

  // An email on its way (after a send or a resend) changes state with no
  // action of the admin's: while such rows show and the page is in view,
  // they are asked again, less often each time, and updated in place
  // (left for the next time while a question about it is open). Each load
  // starts a new round of asking; an older round's answers are dropped.
  const MOVING = ['queued', 'sending'];
  // The filters the list was drawn with (the form may hold edits not yet
  // applied).
  let following = null, round = 0, shown = new URLSearchParams(), nextRow = 0;
  function moving() {
    return [...document.querySelectorAll('tr[data-id]')].filter(r => MOVING.includes(r.dataset.delivery));
  }
  function refresh(i) {
    const old = document.querySelector('tr[data-id="' + CSS.escape(i.id) + '"]');
    if (!old || document.querySelector('#confirm[open]')) return;
    if (old.dataset.delivery === i.delivery_state && old.dataset.link === i.link_state) return;
    const fresh = row(i);
    const pick = fresh.querySelector('.pick');
    pick.checked = !pick.disabled && old.querySelector('.pick').checked;
    // The keyboard stays where it was, on the same control of the new row;
    // a row whose new form has no such control (a detail button, or no
    // actions left) waits until the focus moves on.
    const active = old.contains(document.activeElement) ? document.activeElement : null;
    const same = active && (active.classList.contains('pick') ? pick
      : active.dataset.action ? fresh.querySelector('button[data-action="' + active.dataset.action + '"]') : null);
    if (active && (!same || same.disabled)) return;
    old.replaceWith(fresh);
    if (same) same.focus();
  }
  function followMoving(delay) {
    clearTimeout(following);
    const mine = ++round;
    if (!moving().length) return;
    following = setTimeout(async () => {
      if (!document.hidden) {
        try {
          // One request for the first page (the filters the list was
          // drawn with), where a fresh send shows; a few more, in turn,
          // for rows further down.
          const q = new URLSearchParams(shown);
          q.set('limit', '100');
          const page = await api('GET', '/invites?' + q);
          if (mine !== round) return;
          page.invites.forEach(refresh);
          const seen = new Set(page.invites.map(i => i.id));
          const further = moving().filter(r => !seen.has(r.dataset.id));
          for (let k = 0; k < Math.min(10, further.length); k++) {
            const id = further[(nextRow + k) % further.length].dataset.id;
            try {
              const i = await api('GET', '/invites/' + encodeURIComponent(id));
              if (mine !== round) return;
              refresh(i);
            } catch (err) {
              // That row is asked again next time.
            }
          }
          nextRow += 10;
        } catch (err) {
          // Asked again next time; an action's own error says more.
        }
        if (mine !== round) return;
      }
      followMoving(Math.min(delay * 2, 15000));
    }, delay);
  }

  // The list is drawn anew after an action on one row: the keyboard goes
  // back to that row's button, or, when the row takes no more actions (a
  // revoked invite) or left the list, to the line that says what was done.
  function focusAfter(id, action) {
    const again = document.querySelector('tr[data-id="' + CSS.escape(id) + '"] button[data-action="' + action + '"]');
    if (again) { again.focus(); return; }
    $('status').tabIndex = -1;
    $('status').focus();
  }

  function reload() {
    cursor = null;
    shown = filters();
    $('export').href = '/api/v1/invites.csv?' + filters();
    // The address says what is shown, as the notices' links do: it can be
    // bookmarked, shared, and survives a reload.
    const inAddress = filters('batch');
    history.replaceState(null, '', location.pathname + (inAddress.toString() ? '?' + inAddress : ''));
    return load(false);
  }

  $('filters').addEventListener('submit', e => { e.preventDefault(); reload(); });
  $('more').addEventListener('click', () => load(true));
  $('select-all').addEventListener('change', e => document.querySelectorAll('.pick:not(:disabled)').forEach(c => { c.checked = e.target.checked; }));

  // Each selected invite in turn; what could not be done is named, with
  // what was done beside it.
  async function many(action, label) {
    const picked = Array.from(document.querySelectorAll('.pick:checked:not(:disabled)'));
    if (!picked.length) { say('status', 'bad', 'Select invites first.'); return; }
    const [text, ok] = ASK[action](picked.length);
    if (!await confirmAction(text, ok)) return;
    const failed = [];
    for (const c of picked) {
      try { await act(c.value, action); } catch (err) {
        const why = [errorText(err)].flat().join('; ');
        // Revoked meanwhile (by another admin, say): what was asked is done.
        failed.push(c.dataset.recipient + (action === 'revoke' && err.status === 409 && /was revoked/.test(why)
          ? ': already revoked meanwhile' : ': not ' + label.toLowerCase() + ': ' + why));
      }
    }
    const done = picked.length - failed.length;
    if (failed.length) {
      say('status', 'bad', [label + ' ' + done + ' of ' + plural(picked.length, 'invite') + '.', ...failed]);
    } else {
      say('status', 'ok', label + ': ' + plural(done, 'invite') + '.');
    }
    reload();
  }
  $('resend-selected').addEventListener('click', () => many('resend', 'Resent'));

  // Resend all still pending after N days: first which, then those.
  let previewed = null;
  function pendingQuery() {
    const q = new URLSearchParams({ older_than: (+$('rp-days').value || 0) + 'd' });
    if ($('rp-batch').checked && $('batch').value) q.set('batch_id', $('batch').value);
    return q;
  }
  function forgetPreview() {
    previewed = null;
    $('rp-send').disabled = true;
    $('rp-send').textContent = 'Resend';
    $('rp-summary').textContent = '';
    $('rp-list').replaceChildren();
  }
  $('resend-pending').addEventListener('click', () => {
    $('rp-batch').disabled = !$('batch').value;
    if (!$('batch').value) $('rp-batch').checked = false;
    say('rp-status', 'ok', '');
    forgetPreview();
    $('rp-dialog').showModal();
    $('rp-days').focus();
  });
  $('rp-days').addEventListener('input', forgetPreview);
  $('rp-batch').addEventListener('change', forgetPreview);
  $('rp-preview').addEventListener('click', async () => {
    say('rp-status', 'ok', '');
    try {
      const p = await api('GET', '/invites/resend-pending?' + pendingQuery());
      const days = +$('rp-days').value;
      $('rp-summary').textContent = p.count
        ? plural(p.count, 'invite') + ' still pending ' + plural(days, 'day') + ' or more after the link went out:'
        : 'No invite is still pending ' + plural(days, 'day') + ' after its link went out.';
      $('rp-list').replaceChildren(...p.invites.slice(0, 50).map(c => el('li', {},
        c.invite.recipient_email + ' → ' + c.invite.mailbox + ', link sent ' + fmtDate(c.link_sent_at) + ' (' + c.invite.link_state + ')')),
        ...(p.count > 50 ? [el('li', { text: '… and ' + (p.count - 50) + ' more' })] : []));
      previewed = { query: pendingQuery(), ids: p.invites.map(c => c.invite.id) };
      $('rp-send').disabled = p.count === 0;
      $('rp-send').textContent = p.count ? 'Resend ' + plural(p.count, 'invite') : 'Resend';
    } catch (err) { say('rp-status', 'bad', errorText(err)); }
  });
  $('rp-send').addEventListener('click', async () => {
    if (!previewed) return;
    $('rp-send').disabled = true;
    try {
      const body = { older_than: previewed.query.get('older_than'), invite_ids: previewed.ids };
      if (previewed.query.get('batch_id')) body.batch_id = previewed.query.get('batch_id');
      const r = await api('POST', '/invites/resend-pending', body);
      $('rp-dialog').close();
      const skipped = r.skipped.map(s => 'Skipped ' + s.invite_id + ': ' + s.reason);
      say('status', skipped.length ? 'warn' : 'ok', ['Resent ' + plural(r.resent.length, 'invite') + ' with fresh links.'].concat(skipped));
      reload();
    } catch (err) {
      say('rp-status', 'bad', errorText(err));
      $('rp-send').disabled = false;
    }
  });
  $('revoke-selected').addEventListener('click', () => many('revoke', 'Revoked'));
  reload();
});
