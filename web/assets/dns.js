'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate, plural } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);
  const LABEL = { ok: 'ok', missing: 'missing', wrong: 'wrong', advice: 'advice', unknown: 'no answer' };

  // The value to publish, ready to copy.
  function publish(f) {
    if (!f.publish) return null;
    const id = 'v-' + f.check + '-' + f.name.replace(/[^a-z0-9]/gi, '-');
    const input = el('input', { type: 'text', readonly: true, id, value: f.publish, 'aria-label': 'Value to publish at ' + f.name });
    return el('div', { class: 'publish' },
      el('span', { class: 'muted', text: 'Publish ' + f.record_type + ' at ' + f.name + ':' }),
      el('div', { class: 'copy-row' }, input,
        el('button', { type: 'button', class: 'secondary small', text: 'Copy', 'aria-label': 'Copy the value for ' + f.name,
          onclick: async () => { if (await Muster.copyText(input)) say('status', 'ok', 'Copied the value for ' + f.name + '.'); } })));
  }

  // A long record (a DKIM key) shortened to its ends; the whole is its title.
  function short(p) {
    return p.length > 90 ? p.slice(0, 60) + '…' + p.slice(-20) : p;
  }

  const rowId = f => 'rec-' + f.check + '-' + f.name.replace(/[^a-z0-9]/gi, '-');

  function row(f) {
    return el('tr', { id: rowId(f), 'data-check': f.check, 'data-status': f.status, 'data-name': f.name },
      el('td', { 'data-label': 'Status' }, el('span', { class: 'state dns-' + f.status, text: LABEL[f.status] || f.status })),
      el('td', { 'data-label': 'Record' }, el('code', { text: f.name }), ' ', el('span', { class: 'muted', text: f.record_type })),
      el('td', { 'data-label': 'Published', class: 'published' },
        f.published.length ? f.published.map(p => el('div', {}, el('code', { title: p.length > 90 ? p : null, text: short(p) })))
          : el('span', { class: 'muted', text: 'nothing' })),
      el('td', { 'data-label': 'What it means' }, el('p', { class: 'words', text: f.words }), publish(f)));
  }

  function table(caption, findings) {
    return el('div', { class: 'table-wrap' }, el('table', { class: 'responsive dns' },
      el('caption', { class: 'sr-only', text: caption }),
      el('thead', {}, el('tr', {}, ['Status', 'Record', 'Published', 'What it means'].map(h => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, findings.map(row))));
  }

  async function load() {
    $('recheck').disabled = true;
    try {
      const r = await api('GET', '/deliverability');
      const from = r.sending_addresses.length ? r.sending_addresses.join(', ') : 'no address known';
      $('sending').textContent = 'Mode ' + r.mode + ': ' + from + ' (' + r.sending_from + '). Sent as ' + r.sender_domain +
        '. DNS answers from ' + r.resolver + ', checked ' + fmtDate(r.checked_at) + '.';
      const said = [];
      if (r.to_fix) said.push(plural(r.to_fix, 'record', 'records') + ' to fix.');
      if (r.unanswered) said.push(plural(r.unanswered, 'record', 'records') + ' got no answer from DNS: check dns.resolvers, then check again.');
      $('summary').textContent = said.length ? said.join(' ') : 'Nothing to fix.';
      $('summary').className = 'summary ' + (said.length ? 'bad' : 'ok');
      // Each record to fix, linked to its row further down.
      const all = r.host.concat(...r.domains.map(d => d.findings));
      const fix = all.filter(f => f.status === 'missing' || f.status === 'wrong');
      $('to-fix').replaceChildren(...fix.map(f => el('li', {},
        el('a', { href: '#' + rowId(f), text: f.name + ' ' + f.record_type + ' (' + f.check.replace(/_/g, ' ') + '): ' + LABEL[f.status] }))));
      $('to-fix').hidden = fix.length === 0;
      const parts = [];
      if (r.host.length) {
        parts.push(el('section', { class: 'card domain', 'aria-label': 'This server' },
          el('h2', { text: 'This server: ' + r.helo_name }), table('This server', r.host)));
      }
      for (const d of r.domains) {
        const role = [d.sender ? 'sends Muster\'s mail' : null, d.hosted ? 'hosted' : null].filter(Boolean).join(', ');
        parts.push(el('section', { class: 'card domain', 'data-domain': d.domain, 'aria-label': d.domain },
          el('h2', {}, d.domain, ' ', el('span', { class: 'muted role', text: '(' + role + ')' })),
          table('Records of ' + d.domain, d.findings)));
      }
      $('report').replaceChildren(...parts);
    } catch (err) {
      $('sending').textContent = 'The records could not be looked up.';
      say('status', 'bad', errorText(err));
    } finally {
      $('recheck').disabled = false;
    }
  }

  $('recheck').addEventListener('click', () => { say('status', 'ok', ''); load(); });
  await load();
});
