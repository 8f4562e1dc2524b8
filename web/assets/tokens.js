'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);
  async function load() {
    const tokens = await api('GET', '/tokens');
    $('tokens').querySelector('tbody').replaceChildren(...tokens.map(t => el('tr', { 'data-id': t.id },
      el('td', { text: t.name }), el('td', { text: fmtDate(t.created_at) }),
      el('td', { text: t.last_used_at ? fmtDate(t.last_used_at) : 'never' }),
      el('td', { text: t.revoked_at ? 'revoked ' + fmtDate(t.revoked_at) : 'active' }),
      el('td', {}, t.revoked_at ? '' : el('button', { type: 'button', class: 'danger', text: 'Revoke', 'aria-label': 'Revoke ' + t.name,
        onclick: async () => { try { await api('DELETE', '/tokens/' + encodeURIComponent(t.id)); load(); } catch (err) { say('status', 'bad', errorText(err)); } } })))));
  }
  $('create').addEventListener('submit', async e => {
    e.preventDefault();
    try {
      const t = await api('POST', '/tokens', { name: $('name').value });
      const box = $('secret');
      box.hidden = false;
      box.className = 'alert warn';
      box.replaceChildren(el('p', { text: 'The token ' + t.name + ' is shown only now. Copy it into your tool:' }),
        el('input', { type: 'text', readonly: true, id: 'secret-value', value: t.secret, 'aria-label': 'Token secret' }));
      $('name').value = '';
      load();
    } catch (err) { say('status', 'bad', errorText(err)); }
  });
  load().catch(err => say('status', 'bad', errorText(err)));
});
