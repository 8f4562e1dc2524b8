'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);
  let cursor = null;
  async function load() {
    try {
      const page = await api('GET', '/audit?limit=100' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      page.events.forEach(e => $('audit').querySelector('tbody').append(el('tr', {},
        el('td', { text: fmtDate(e.at) }), el('td', { text: e.actor }), el('td', { text: e.action }),
        el('td', { text: e.subject }), el('td', { text: e.detail }))));
      cursor = page.next_cursor || null;
      $('more').hidden = !cursor;
    } catch (err) { say('status', 'bad', errorText(err)); }
  }
  $('more').addEventListener('click', load);
  load();
});
