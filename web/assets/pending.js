'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate, stateBadge } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);
  let cursor = null;

  const batches = await api('GET', '/batches');
  batches.forEach(b => $('batch').append(el('option', { value: b.id, text: b.domain + ' · ' + fmtDate(b.created_at) + ' · ' + b.invite_count + ' invites' })));
  const params = new URLSearchParams(location.search);
  if (params.get('batch')) $('batch').value = params.get('batch');
  if (params.get('state')) $('state').value = params.get('state');

  function query() {
    const q = new URLSearchParams();
    if ($('batch').value) q.set('batch_id', $('batch').value);
    if ($('state').value) q.set('state', $('state').value);
    if ($('q').value.trim()) q.set('q', $('q').value.trim());
    q.set('limit', '100');
    if (cursor) q.set('cursor', cursor);
    return '/invites?' + q;
  }

  async function act(id, action) {
    if (action === 'link') {
      const r = await api('POST', '/invites/' + encodeURIComponent(id) + '/link');
      const box = $('copied');
      box.hidden = false;
      box.className = 'alert ok';
      box.replaceChildren(el('label', { for: 'copied-url', text: 'Setup link (share it only with the recipient):' }),
        el('input', { type: 'text', id: 'copied-url', readonly: true, value: r.url }));
      $('copied-url').select();
      try { await navigator.clipboard.writeText(r.url); box.append(el('p', { text: 'Copied to the clipboard.' })); } catch (e) { /* shown for copying by hand */ }
      return;
    }
    await api('POST', '/invites/' + encodeURIComponent(id) + '/' + action);
  }

  function row(i) {
    const check = el('input', { type: 'checkbox', class: 'pick', value: i.id, 'aria-label': 'Select ' + i.recipient_email });
    const open = ['live', 'expired', 'blocked'].includes(i.link_state);
    const button = (label, action, cls) => el('button', {
      type: 'button', class: cls || 'secondary', text: label, 'data-action': action, disabled: !open,
      'aria-label': label + ' ' + i.recipient_email,
      onclick: async () => {
        try { await act(i.id, action); if (action !== 'link') { say('status', 'ok', label + ': ' + i.mailbox); reload(); } }
        catch (err) { say('status', 'bad', errorText(err)); }
      },
    });
    const notes = [];
    if (i.new_link_requested_at) notes.push(el('div', { class: 'flag', text: 'asked for a new link ' + fmtDate(i.new_link_requested_at) }));
    if (i.last_error) notes.push(el('div', { class: 'muted', text: i.last_error }));
    return el('tr', { 'data-id': i.id, 'data-link': i.link_state, 'data-delivery': i.delivery_state },
      el('td', {}, check),
      el('td', {}, el('div', { text: i.recipient_email }), i.display_name ? el('div', { class: 'muted', text: i.display_name }) : null),
      el('td', { text: i.mailbox }),
      el('td', {}, stateBadge(i.link_state), notes),
      el('td', {}, stateBadge(i.delivery_state), i.delivery_detail ? el('div', { class: 'muted', text: i.delivery_detail }) : null),
      el('td', { text: fmtDate(i.expires_at) }),
      el('td', {}, el('div', { class: 'actions' }, button('Resend', 'resend'), button('Revoke', 'revoke', 'danger'), button('Copy link', 'link'))));
  }

  async function load(append) {
    try {
      const page = await api('GET', query());
      const tbody = $('invites').querySelector('tbody');
      if (!append) tbody.replaceChildren();
      page.invites.forEach(i => tbody.append(row(i)));
      if (!tbody.children.length) tbody.append(el('tr', {}, el('td', { colspan: 7, text: 'No invites match.' })));
      cursor = page.next_cursor || null;
      $('more').hidden = !cursor;
    } catch (err) {
      say('status', 'bad', errorText(err));
    }
  }
  function reload() { cursor = null; load(false); }

  $('filters').addEventListener('submit', e => { e.preventDefault(); reload(); });
  $('more').addEventListener('click', () => load(true));
  $('select-all').addEventListener('change', e => document.querySelectorAll('.pick').forEach(c => { c.checked = e.target.checked; }));

  async function many(action, label) {
    const ids = Array.from(document.querySelectorAll('.pick:checked')).map(c => c.value);
    if (!ids.length) { say('status', 'bad', 'Select invites first.'); return; }
    const failed = [];
    for (const id of ids) {
      try { await act(id, action); } catch (err) { failed.push(errorText(err)); }
    }
    say('status', failed.length ? 'bad' : 'ok', failed.length ? failed : label + ': ' + ids.length + ' invites.');
    reload();
  }
  $('resend-selected').addEventListener('click', () => many('resend', 'Resent'));
  $('revoke-selected').addEventListener('click', () => many('revoke', 'Revoked'));
  reload();
});
