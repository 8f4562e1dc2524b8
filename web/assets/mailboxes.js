'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, confirmAction, fmtDate, plural, size } = Muster;
  const settings = await requireSession();
  const $ = id => document.getElementById(id);
  settings.domains.forEach(d => $('domain').append(el('option', { value: d, text: d })));

  const allocation = m => m.dedicated_mb ? size(m.dedicated_mb)
    : m.created_by_muster ? 'shared pool' + (m.storage_allocation_mb ? ' (' + size(m.storage_allocation_mb) + ' quota)' : '')
    : (m.storage_allocation_mb ? size(m.storage_allocation_mb) : 'none');

  let mailboxes = [];
  let pool = null;
  const path = m => '/mailboxes/' + encodeURIComponent(m.address);

  async function load() {
    try {
      const [cap, list] = await Promise.all([
        api('GET', '/capacity'),
        api('GET', '/mailboxes?domain=' + encodeURIComponent($('domain').value)),
      ]);
      pool = cap.pool;
      const d = cap.domains.find(x => x.domain === $('domain').value) || cap.domains[0];
      const s = Capacity.stat;
      $('capacity').replaceChildren(
        s('mailbox cap', d.cap), ...Capacity.hostLimit(d), s('existing', d.existing), s('pending invites', d.pending),
        s('places left', d.left, d.left < 0), s('storage pool', size(cap.pool.pool_mb)),
        s('allocated', size(cap.pool.allocated_mb)), s('available', cap.pool.available_mb < 0 ? '-' + size(-cap.pool.available_mb) : size(cap.pool.available_mb), cap.pool.available_mb < 0));
      mailboxes = list.mailboxes;
      show();
    } catch (err) { say('status', 'bad', errorText(err)); }
  }

  function show() {
    const q = $('search').value.trim().toLowerCase();
    const shown = mailboxes.filter(m => !q || m.address.includes(q) || (m.display_name || '').toLowerCase().includes(q));
    const by = $('sort').value;
    if (by === 'allocation') shown.sort((a, b) => (b.storage_allocation_mb || 0) - (a.storage_allocation_mb || 0));
    else if (by === 'created') shown.sort((a, b) => (b.created_at || '').localeCompare(a.created_at || ''));
    else shown.sort((a, b) => a.address.localeCompare(b.address));
    const tbody = $('mailboxes').querySelector('tbody');
    tbody.replaceChildren(...shown.map(m => el('tr', { 'data-address': m.address, 'data-state': m.suspended ? 'suspended' : 'active' },
      el('td', { 'data-label': 'Address', class: 'who', text: m.address }),
      el('td', { 'data-label': 'Name', text: m.display_name || '' }),
      el('td', { 'data-label': 'Allocation', class: 'nowrap', text: allocation(m) }),
      el('td', {}, el('span', { class: 'state ' + (m.suspended ? 'revoked' : 'redeemed'), text: m.suspended ? 'suspended' : 'active' })),
      el('td', { 'data-label': 'Made by Muster', text: m.created_by_muster ? 'yes' + (m.created_at ? ', ' + fmtDate(m.created_at).slice(0, 10) : '') : 'no' }),
      el('td', {}, m.created_by_muster ? el('div', { class: 'actions compact' },
        el('button', { type: 'button', class: 'secondary', 'data-action': 'allocation', text: 'Allocation', 'aria-label': 'Change the allocation of ' + m.address, onclick: () => resize(m) }),
        el('button', { type: 'button', class: 'secondary', 'data-action': 'reset', text: 'Reset password', 'aria-label': 'Send a password-reset link for ' + m.address, onclick: () => reset(m) }),
        m.suspended
          ? el('button', { type: 'button', class: 'secondary', 'data-action': 'restore', text: 'Restore', 'aria-label': 'Restore ' + m.address, onclick: () => restore(m) })
          : el('button', { type: 'button', class: 'secondary', 'data-action': 'suspend', text: 'Suspend', 'aria-label': 'Suspend ' + m.address, onclick: () => suspend(m) }),
        el('button', { type: 'button', class: 'danger', 'data-action': 'remove', text: 'Remove', 'aria-label': 'Remove ' + m.address, onclick: () => remove(m) }))
        : el('span', { class: 'muted', text: 'managed on the mail server' })))));
    if (!shown.length) tbody.append(el('tr', {}, el('td', { colspan: 6, text: mailboxes.length ? 'No mailbox matches.' : 'No mailboxes yet.' })));
    $('count').textContent = q ? plural(shown.length, 'mailbox', 'mailboxes') + ' of ' + mailboxes.length + ' match.' : plural(mailboxes.length, 'mailbox', 'mailboxes') + '.';
  }

  // After an action: the list again, and the keyboard back on the row.
  async function done(m, message) {
    say('status', 'ok', message);
    await load();
    const row = document.querySelector('tr[data-address="' + CSS.escape(m.address) + '"] button');
    (row || $('status')).focus?.();
  }

  async function suspend(m) {
    if (!await confirmAction('Suspend ' + m.address + '? Its logins are refused until you restore it; its mail still arrives.', 'Suspend mailbox')) return;
    try { await api('POST', path(m) + '/suspend'); await done(m, 'Suspended ' + m.address + ': logins refused, mail still accepted.'); }
    catch (err) { say('status', 'bad', errorText(err)); }
  }

  async function restore(m) {
    try { await api('POST', path(m) + '/restore'); await done(m, 'Restored ' + m.address + ': its logins work again.'); }
    catch (err) { say('status', 'bad', errorText(err)); }
  }

  function remove(m) {
    const dialog = $('remove-dialog');
    $('remove-text').textContent = 'Remove ' + m.address + '? Its login and address go from the mail server; mail sent to it is refused. This cannot be undone.';
    $('remove-mail').checked = false;
    dialog.returnValue = '';
    dialog.addEventListener('close', async () => {
      if (dialog.returnValue !== 'ok') return;
      try {
        const r = await api('DELETE', path(m) + ($('remove-mail').checked ? '?delete_mail=true' : ''));
        const folder = { kept: 'its mail folder ' + r.path + ' is kept', deleted: 'its mail folder ' + r.path + ' was deleted',
          absent: 'it had no mail folder at ' + r.path + ' (no mail had arrived)',
          not_deleted: 'its mail folder ' + r.path + ' could not be deleted (' + r.detail + '): delete it as the mail server\'s user', unknown: 'the mail server does not say where its mail is' }[r.mail_folder];
        say('status', r.mail_folder === 'not_deleted' ? 'warn' : 'ok', 'Removed ' + m.address + '; ' + folder + '.');
        await load();
        $('status').focus?.();
      } catch (err) { say('status', 'bad', errorText(err)); }
    }, { once: true });
    dialog.showModal();
    $('remove-cancel').focus();
  }

  let resetting = null;
  function reset(m) {
    resetting = m;
    $('reset-title').textContent = 'Send a password-reset link for ' + m.address;
    $('reset-to').value = '';
    $('reset-locale').value = '';
    say('reset-status', 'ok', '');
    $('reset-dialog').showModal();
    $('reset-to').focus();
  }
  $('reset-form').addEventListener('submit', async e => {
    if (e.submitter && e.submitter.value !== 'send') return;
    e.preventDefault();
    const body = {};
    if ($('reset-to').value.trim()) body.to = $('reset-to').value.trim();
    if ($('reset-locale').value) body.locale = $('reset-locale').value;
    try {
      const r = await api('POST', path(resetting) + '/password-reset', body);
      $('reset-dialog').close();
      await done(resetting, 'A link to choose a new password for ' + r.mailbox + ' goes to ' + r.recipient_email + '; it expires ' + fmtDate(r.expires_at) + '. It shows in the pending list.');
    } catch (err) { say('reset-status', 'bad', errorText(err)); }
  });

  let resizing = null;
  function resize(m) {
    resizing = m;
    const dialog = $('allocation-dialog');
    $('allocation-title').textContent = 'Change the allocation of ' + m.address;
    const available = pool ? pool.available_mb + (m.dedicated_mb || 0) : null;
    $('allocation-pool').textContent = available === null ? '' : 'The storage pool has ' + size(Math.max(available, 0)) + ' for this mailbox (what is free, plus what it holds now).';
    const mb = m.dedicated_mb;
    $('allocation-unit').value = !mb ? 'shared' : mb % 1024 === 0 ? 'gb' : 'mb';
    $('allocation-size').value = !mb ? '' : mb % 1024 === 0 ? mb / 1024 : mb;
    $('allocation-size').disabled = !mb;
    say('allocation-status', 'ok', '');
    dialog.showModal();
    $('allocation-size').focus();
  }
  $('allocation-unit').addEventListener('change', () => { $('allocation-size').disabled = $('allocation-unit').value === 'shared'; });
  $('allocation-form').addEventListener('submit', async e => {
    if (e.submitter && e.submitter.value !== 'save') return;
    e.preventDefault();
    const unit = $('allocation-unit').value;
    const n = Number($('allocation-size').value);
    if (unit !== 'shared' && !(n > 0)) { say('allocation-status', 'bad', 'Give a size of at least 1 ' + unit.toUpperCase() + ', or choose the shared pool.'); return; }
    const mb = unit === 'shared' ? null : Math.ceil(unit === 'gb' ? n * 1024 : n);
    try {
      await api('PUT', path(resizing) + '/allocation', { storage_allocation_mb: mb });
      $('allocation-dialog').close();
      await done(resizing, resizing.address + ' now has ' + (mb ? size(mb) : 'the shared pool') + '.');
    } catch (err) { say('allocation-status', 'bad', errorText(err)); }
  });

  $('domain').addEventListener('change', load);
  $('search').addEventListener('input', show);
  $('sort').addEventListener('change', show);
  await load();
});
