'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate, confirmAction, copyText } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);
  // The token whose secret is on screen: revoking it takes the secret away.
  let shown = null;

  function hideSecret() {
    shown = null;
    $('secret').hidden = true;
    $('secret').replaceChildren();
  }

  async function revoke(t) {
    const ok = await confirmAction('Revoke the token "' + t.name + '"? Every tool using it is refused from now on. This cannot be undone.', 'Revoke token');
    if (!ok) return;
    try {
      await api('DELETE', '/tokens/' + encodeURIComponent(t.id));
      if (shown === t.id) hideSecret();
      say('status', 'ok', 'Revoked the token "' + t.name + '".');
      await load();
    } catch (err) { say('status', 'bad', errorText(err)); }
  }

  async function load() {
    const tokens = await api('GET', '/tokens');
    $('tokens').querySelector('tbody').replaceChildren(...tokens.map(t => el('tr', { 'data-id': t.id },
      el('td', { 'data-label': 'Name', class: 'name', text: t.name }),
      el('td', { 'data-label': 'Created', text: fmtDate(t.created_at) }),
      el('td', { 'data-label': 'Last used', text: t.last_used_at ? fmtDate(t.last_used_at) : 'never' }),
      el('td', { 'data-label': 'State', text: t.revoked_at ? 'revoked ' + fmtDate(t.revoked_at) : 'active' }),
      el('td', {}, t.revoked_at ? '' : el('button', { type: 'button', class: 'danger revoke', text: 'Revoke', 'aria-label': 'Revoke ' + t.name,
        onclick: () => revoke(t) })))));
  }

  $('create').addEventListener('submit', async e => {
    e.preventDefault();
    try {
      const t = await api('POST', '/tokens', { name: $('name').value });
      shown = t.id;
      const box = $('secret');
      box.hidden = false;
      box.className = 'alert warn';
      box.replaceChildren(
        el('label', { for: 'secret-value', text: 'The token "' + t.name + '" is shown only now. Copy it into your tool:' }),
        el('div', { class: 'copy-row' },
          el('input', { type: 'text', readonly: true, id: 'secret-value', value: t.secret }),
          el('button', { type: 'button', id: 'copy-secret', text: 'Copy',
            onclick: async () => say('copy-status', 'ok', await copyText($('secret-value')) ? 'Copied to the clipboard.' : 'Select the token and copy it by hand.') }),
          el('button', { type: 'button', id: 'secret-done', class: 'secondary', text: 'Done', onclick: hideSecret })),
        el('p', { id: 'copy-status', hidden: true }));
      $('name').value = '';
      $('copy-secret').focus();
      await load();
    } catch (err) { say('status', 'bad', errorText(err)); }
  });
  await load();
});
