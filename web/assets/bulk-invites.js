'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, readFile, dropZone, stateBadge, newKey } = Muster;
  const settings = await requireSession();
  const $ = id => document.getElementById(id);
  settings.domains.forEach(d => $('domain').append(el('option', { value: d, text: d })));

  // Expiry choices up to the maximum (R8).
  const secs = s => { let t = 0; for (const [, n, u] of s.matchAll(/(\d+)([smhdw])/g)) t += n * { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[u]; return t; };
  const max = secs(settings.max_expiry);
  const choices = ['1d', '3d', '7d', '14d', '30d'].filter(c => secs(c) <= max);
  if (!choices.includes(settings.max_expiry)) choices.push(settings.max_expiry);
  choices.forEach(c => $('expiry').append(el('option', { value: c, text: c.replace('d', ' days').replace('h', ' hours'), selected: c === settings.default_expiry })));

  let rows = [];        // the rows as typed, sent back for every re-check
  let preview = null;
  let onlyClean = false;
  let uploaded = null;  // text of a chosen or dropped file

  function show(step) {
    for (const n of [1, 2, 3, 4]) $('step' + n).hidden = n !== step;
    $('step' + step).querySelector('h2').focus?.();
  }

  async function chooseFile(file) {
    uploaded = await readFile(file);
    say('status', 'ok', 'Read ' + file.name + '. Press Preview.');
  }
  $('file').addEventListener('change', e => { if (e.target.files.length) chooseFile(e.target.files[0]); });
  // A file chosen while the page was still loading.
  if ($('file').files.length) chooseFile($('file').files[0]);
  dropZone($('dropzone'), chooseFile);

  // Re-checks never move the wizard; while one runs, nothing can be sent.
  let checking = false;
  function busy(on) {
    checking = on;
    if (on) { $('continue').disabled = true; $('only-clean').disabled = true; }
  }

  async function check(body, fromStep1) {
    busy(true);
    try {
      preview = await api('POST', '/previews/invites', Object.assign({ domain: $('domain').value }, body));
      rows = preview.rows.map(r => r.input);
      busy(false);
      render();
      if (fromStep1) show(2);
      say('status', 'ok', '');
    } catch (err) {
      busy(false);
      say('status', 'bad', errorText(err));
    }
  }

  $('to-preview').addEventListener('click', () => {
    const text = uploaded !== null ? uploaded : $('paste').value;
    if (!text.trim()) { say('status', 'bad', 'Paste at least one address, or choose a CSV file.'); return; }
    // Columns only when a line holds a delimiter inside it: a column pasted
    // from a spreadsheet carries tabs around each address, not between values.
    const csv = uploaded !== null || text.split(/\r?\n/).some(l => /[,;\t]/.test(l.trim()));
    check({ text, format: csv ? 'csv' : 'lines' }, true);
  });

  let timer = null;
  function recheck() {
    clearTimeout(timer);
    busy(true);
    timer = setTimeout(() => {
      if (!rows.length) { preview = null; busy(false); render(); return; }
      check({ rows });
    }, 250);
  }

  function render() {
    const tbody = $('preview').querySelector('tbody');
    tbody.replaceChildren();
    if (!preview) {
      $('summary').textContent = 'No rows left.';
      $('continue').disabled = true;
      $('only-clean').disabled = true;
      return;
    }
    Capacity.preview($('capacity'), preview.capacity);
    preview.rows.forEach((r, i) => {
      const local = el('input', { type: 'text', value: rows[i].local_part || r.local_part || r.recipient_email.split('@')[0], 'aria-label': 'Mailbox name for ' + r.recipient_email });
      local.addEventListener('change', () => { rows[i].local_part = local.value; recheck(); });
      const alloc = el('input', { type: 'text', inputmode: 'numeric', value: rows[i].storage_allocation_mb || '', placeholder: 'shared', 'aria-label': 'Allocation in MB for ' + r.recipient_email });
      alloc.addEventListener('change', () => { rows[i].storage_allocation_mb = alloc.value; recheck(); });
      const drop = el('button', { type: 'button', class: 'secondary', text: 'Drop', 'aria-label': 'Drop ' + r.recipient_email });
      drop.addEventListener('click', () => { rows.splice(i, 1); recheck(); });
      const domain = preview.capacity.domain;
      tbody.append(el('tr', { 'data-row': i, class: r.flags.length ? 'flagged' : 'clean' },
        el('td', { text: r.line || (r.index + 1) }),
        el('td', { text: r.recipient_email }),
        el('td', {}, local, el('span', { class: 'muted', text: '@' + domain })),
        el('td', {}, alloc),
        el('td', {}, r.flags.length ? r.flags.map(f => el('div', { class: 'flag', 'data-code': f.code, text: f.message })) : el('span', { text: 'ok' })),
        el('td', {}, drop)));
    });
    $('summary').textContent = preview.rows.length + ' rows: ' + preview.clean_rows + ' clean, ' + preview.flagged_rows + ' flagged.';
    $('continue').disabled = checking || preview.flagged_rows > 0 || preview.clean_rows === 0;
    $('continue').textContent = 'Continue with ' + preview.clean_rows + ' invites';
    $('only-clean').hidden = preview.flagged_rows === 0;
    $('only-clean').disabled = checking || preview.clean_rows === 0;
    $('only-clean').textContent = 'Send only the clean rows (' + preview.clean_rows + ')';
  }

  function toConfirm(clean) {
    onlyClean = clean;
    const n = preview.clean_rows;
    $('confirm-text').textContent = 'Send ' + n + ' invite' + (n === 1 ? '' : 's') + ' for ' + preview.capacity.domain +
      '? The links expire after ' + $('expiry').selectedOptions[0].textContent + '.' +
      (clean && preview.flagged_rows ? ' ' + preview.flagged_rows + ' flagged rows are left out.' : '');
    show(3);
  }
  $('continue').addEventListener('click', () => toConfirm(false));
  $('only-clean').addEventListener('click', () => toConfirm(true));
  $('back').addEventListener('click', () => show(1));
  $('back-to-preview').addEventListener('click', () => show(2));

  $('send').addEventListener('click', async () => {
    $('send').disabled = true;
    try {
      const created = await api('POST', '/batches',
        { domain: $('domain').value, rows, expires_in: $('expiry').value, only_clean: onlyClean },
        { 'Idempotency-Key': newKey() });
      show(4);
      follow(created.batch_id);
    } catch (err) {
      say('status', 'bad', errorText(err));
      $('send').disabled = false;
    }
  });

  async function follow(batchId) {
    const status = await api('GET', '/batches/' + encodeURIComponent(batchId));
    const count = s => (status.delivery.find(x => x.state === s) || { count: 0 }).count;
    const open = count('queued') + count('sending') + count('deferred');
    const outbox = count('in_outbox') ? count('in_outbox') + ' in the outbox (not emailed), ' : '';
    $('progress').textContent = count('sent') + ' sent, ' + outbox + count('failed') + ' failed, ' + count('deferred') +
      ' deferred, ' + (count('queued') + count('sending')) + ' waiting.' + (open === 0 ? ' Done.' : '');
    $('sent').querySelector('tbody').replaceChildren(...status.invites.map(i => el('tr', { 'data-delivery': i.delivery_state },
      el('td', { text: i.recipient_email }), el('td', { text: i.mailbox }),
      el('td', {}, stateBadge(i.delivery_state)), el('td', { text: i.delivery_detail || '' }))));
    if (open > 0) setTimeout(() => follow(batchId), 1000);
  }
});
