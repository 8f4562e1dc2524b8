'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate, confirmAction, copyText, stateBadge, plural } = Muster;
  const settings = await requireSession();
  const $ = id => document.getElementById(id);

  // Every event, ticked: most receivers want them all.
  $('event-list').replaceChildren(...settings.webhook_events.map(name => el('label', { class: 'inline' },
    el('input', { type: 'checkbox', name: 'event', value: name, checked: true }), ' ' + name)));

  function hideSecret() {
    $('secret').hidden = true;
    $('secret').replaceChildren();
  }

  function deliveryRow(w, d) {
    return el('tr', { 'data-seq': d.seq, 'data-state': d.state },
      el('td', { 'data-label': 'When', class: 'nowrap', text: fmtDate(d.created_at) }),
      el('td', { 'data-label': 'Event', text: d.event }),
      el('td', { 'data-label': 'State' }, stateBadge(d.state),
        d.state === 'pending' && d.next_attempt_at && d.attempts ? el('div', { class: 'muted', text: 'next try ' + fmtDate(d.next_attempt_at) }) : null),
      el('td', { 'data-label': 'Attempts', text: String(d.attempts) }),
      el('td', { 'data-label': 'Last answer', class: 'detail', title: d.last_error || null, text: d.last_error || (d.last_status ? String(d.last_status) : '') }),
      el('td', {}, el('button', { type: 'button', class: 'secondary small', text: 'Redeliver', 'aria-label': 'Redeliver ' + d.event + ' #' + d.seq,
        onclick: async () => {
          try {
            const again = await api('POST', '/webhooks/' + encodeURIComponent(w.id) + '/deliveries/' + d.seq + '/redeliver');
            say('status', 'ok', 'Queued ' + again.event + ' again for ' + w.url + '.');
            await showDeliveries(w);
          } catch (err) { say('status', 'bad', errorText(err)); }
        } })));
  }

  function summary(w) {
    return plural(w.pending, 'delivery', 'deliveries') + ' waiting' +
      (w.latest_state ? '; latest ' + w.latest_state + (w.latest_error ? ': ' + w.latest_error : '') : '');
  }

  async function showDeliveries(w) {
    const card = document.querySelector('[data-endpoint="' + w.id + '"]');
    const box = card.querySelector('.deliveries');
    const page = await api('GET', '/webhooks/' + encodeURIComponent(w.id) + '/deliveries?limit=50');
    const now = (await api('GET', '/webhooks')).find(x => x.id === w.id);
    if (now) card.querySelector('.summary').textContent = summary(now);
    box.replaceChildren(page.deliveries.length
      ? el('div', { class: 'table-wrap' }, el('table', { class: 'responsive compact' },
        el('caption', { class: 'sr-only', text: 'Deliveries to ' + w.url }),
        el('thead', {}, el('tr', {}, ['When', 'Event', 'State', 'Attempts', 'Last answer', ''].map(h => el('th', { scope: 'col' }, h ? h : el('span', { class: 'sr-only', text: 'Actions' }))))),
        el('tbody', {}, page.deliveries.map(d => deliveryRow(w, d)))))
      : el('p', { class: 'muted', text: 'Nothing delivered yet.' }));
  }

  async function remove(w) {
    if (!await confirmAction('Remove the endpoint ' + w.url + '? Nothing more is posted to it, and its delivery log goes too.', 'Remove endpoint')) return;
    try {
      await api('DELETE', '/webhooks/' + encodeURIComponent(w.id));
      say('status', 'ok', 'Removed ' + w.url + '.');
      await load();
    } catch (err) { say('status', 'bad', errorText(err)); }
  }

  async function load() {
    const list = await api('GET', '/webhooks');
    $('none').hidden = list.length > 0;
    $('endpoints').replaceChildren(...list.map(w => el('section', { class: 'card endpoint', 'data-endpoint': w.id, 'aria-label': w.url },
      el('h3', { class: 'url', text: w.url }),
      el('p', { class: 'muted', text: w.events.join(', ') }),
      el('p', { class: 'summary', text: summary(w) }),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'secondary show', text: 'Show deliveries', 'aria-label': 'Show deliveries to ' + w.url,
          onclick: () => showDeliveries(w).catch(err => say('status', 'bad', errorText(err))) }),
        el('button', { type: 'button', class: 'danger remove', text: 'Remove', 'aria-label': 'Remove ' + w.url, onclick: () => remove(w) })),
      el('div', { class: 'deliveries' }))));
  }

  $('create').addEventListener('submit', async e => {
    e.preventDefault();
    const events = Array.from(document.querySelectorAll('input[name=event]:checked')).map(c => c.value);
    try {
      const made = await api('POST', '/webhooks', { url: $('url').value.trim(), events });
      const box = $('secret');
      box.hidden = false;
      box.className = 'alert warn';
      box.replaceChildren(
        el('label', { for: 'secret-value', text: 'The signing secret for ' + made.webhook.url + ' is shown only now. Configure your receiver with it:' }),
        el('div', { class: 'copy-row' },
          el('input', { type: 'text', readonly: true, id: 'secret-value', value: made.secret }),
          el('button', { type: 'button', id: 'copy-secret', text: 'Copy',
            onclick: async () => say('copy-status', 'ok', await copyText($('secret-value')) ? 'Copied to the clipboard.' : 'Select the secret and copy it by hand.') }),
          el('button', { type: 'button', id: 'secret-done', class: 'secondary', text: 'Done', onclick: hideSecret })),
        el('p', { id: 'copy-status', hidden: true }));
      say('status', 'ok', '');
      say('create-error', 'bad', '');
      $('url').removeAttribute('aria-invalid');
      $('url').value = '';
      $('copy-secret').focus();
      await load();
    } catch (err) {
      // Beside the form the admin just sent, not at the top of the page;
      // the URL field is marked only when the URL is what was refused.
      say('create-error', 'bad', errorText(err));
      if (/^url\b/.test(err.message || '')) {
        $('url').setAttribute('aria-invalid', 'true');
        $('url').focus();
      } else {
        $('url').removeAttribute('aria-invalid');
      }
    }
  });
  await load();
});
