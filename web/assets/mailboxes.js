'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession } = Muster;
  const settings = await requireSession();
  const select = document.getElementById('domain');
  settings.domains.forEach(d => select.append(el('option', { value: d, text: d })));

  async function load() {
    try {
      const [cap, list] = await Promise.all([
        api('GET', '/capacity'),
        api('GET', '/mailboxes?domain=' + encodeURIComponent(select.value)),
      ]);
      const d = cap.domains.find(x => x.domain === select.value) || cap.domains[0];
      const s = Capacity.stat;
      document.getElementById('capacity').replaceChildren(
        s('mailbox cap', d.cap), s('existing', d.existing), s('pending invites', d.pending),
        s('places left', d.left, d.left < 0), s('storage pool (MB)', cap.pool.pool_mb),
        s('allocated (MB)', cap.pool.allocated_mb), s('available (MB)', cap.pool.available_mb, cap.pool.available_mb < 0));
      const tbody = document.querySelector('#mailboxes tbody');
      tbody.replaceChildren(...list.mailboxes.map(m => el('tr', {},
        el('td', { text: m.address }),
        el('td', { text: m.storage_allocation_mb ? m.storage_allocation_mb + ' MB' : 'shared pool' }),
        el('td', { text: m.display_name || '' }),
        el('td', { text: m.created_by_muster ? 'yes' : 'no' }))));
      if (!list.mailboxes.length) tbody.append(el('tr', {}, el('td', { colspan: 4, text: 'No mailboxes yet.' })));
    } catch (err) {
      say('status', 'bad', errorText(err));
    }
  }
  select.addEventListener('change', load);
  load();
});
