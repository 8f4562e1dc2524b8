'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, stateBadge, shortDetail, newKey, plural, sourcePicker, focusKeeper, fmtDate, size } = Muster;
  const settings = await requireSession();
  const $ = id => document.getElementById(id);
  settings.domains.forEach(d => $('domain').append(el('option', { value: d, text: d })));

  // Expiry choices up to the maximum (R8).
  const UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  const secs = s => { let t = 0; for (const [, n, u] of s.matchAll(/(\d+)([smhdw])/g)) t += n * UNITS[u]; return t; };
  const WORDS = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' };
  const words = s => [...s.matchAll(/(\d+)([smhdw])/g)].map(([, n, u]) => plural(+n, WORDS[u])).join(' ');
  const max = secs(settings.max_expiry);
  const choices = ['1d', '3d', '7d', '14d', '30d'].filter(c => secs(c) <= max);
  if (!choices.includes(settings.max_expiry)) choices.push(settings.max_expiry);
  choices.forEach(c => $('expiry').append(el('option', { value: c, text: words(c), selected: c === settings.default_expiry })));
  $('reminders').value = settings.reminders.join(', ');
  const reminderList = () => $('reminders').value.split(',').map(s => s.trim()).filter(Boolean);
  // "50%" → "halfway through the link's life"; "2d" → "2 days before it expires".
  const reminderWords = r => /%$/.test(r)
    ? (r === '50%' ? "halfway through the link's life" : r + " into the link's life")
    : words(r) + ' before it expires';
  // A refused reminder is named next to its field until it is edited.
  function reminderError(message) {
    const field = $('reminders');
    $('reminders-error').textContent = message || '';
    $('reminders-error').hidden = !message;
    if (message) field.setAttribute('aria-invalid', 'true'); else field.removeAttribute('aria-invalid');
    field.setAttribute('aria-describedby', message ? 'reminders-help reminders-error' : 'reminders-help');
  }
  $('reminders').addEventListener('input', () => reminderError(''));

  let rows = [];        // the rows as typed, sent back for every re-check
  let preview = null;
  let onlyClean = false;
  const source = sourcePicker({ paste: 'paste', pasteBox: 'paste-box', file: 'file', dropzone: 'dropzone', chosen: 'chosen' });

  function show(step) {
    for (const n of [1, 2, 3, 4]) $('step' + n).hidden = n !== step;
  }

  // Re-checks never move the wizard; while one runs, nothing can be sent.
  let checking = false;
  function busy(on) {
    checking = on;
    if (on) { $('continue').disabled = true; $('only-clean').disabled = true; }
  }

  // Only the latest check's answer counts: an earlier one may come back last.
  let latest = 0;
  async function check(body, fromStep1) {
    busy(true);
    const mine = ++latest;
    try {
      const answer = await api('POST', '/previews/invites', Object.assign({ domain: $('domain').value }, body));
      if (mine !== latest) return;
      preview = answer;
      rows = preview.rows.map(r => r.input);
      busy(false);
      render();
      // How many answers the table shows: the tests wait on it.
      $('preview').dataset.checked = String(mine);
      if (fromStep1) { show(2); $('summary').focus(); }
      say('status', 'ok', '');
    } catch (err) {
      if (mine !== latest) return;
      busy(false);
      say('status', 'bad', errorText(err));
    }
  }

  $('to-preview').addEventListener('click', () => {
    const text = source.text();
    if (!text.trim()) { say('status', 'bad', 'Paste at least one address, or choose a CSV file.'); return; }
    // Columns only when a line holds a delimiter inside it: a column pasted
    // from a spreadsheet carries tabs around each address, not between values.
    const csv = source.fromFile() || text.split(/\r?\n/).some(l => /[,;\t]/.test(l.trim()));
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

  // One cell's input, tied to the flags about its field.
  function field(i, name, attrs, flagIds, onChange) {
    const ids = flagIds[name] || [];
    const input = el('input', Object.assign({ type: 'text', 'data-field': name,
      'aria-invalid': ids.length ? 'true' : null, 'aria-describedby': ids.length ? ids.join(' ') : null }, attrs));
    input.addEventListener('change', () => onChange(input.value));
    return input;
  }

  function drop(i) {
    rows.splice(i, 1);
    preview.rows.splice(i, 1);
    // Until the re-check answers, the row is gone and the rest keep their flags.
    render({ row: String(Math.min(i, rows.length - 1)), field: 'drop', none: $('summary') });
    recheck();
  }

  function render(focusAfter) {
    const tbody = $('preview').querySelector('tbody');
    const restore = focusKeeper(tbody);
    tbody.replaceChildren();
    $('flagged-help').hidden = true;
    if (!preview || !preview.rows.length) {
      $('summary').textContent = 'No rows left. Go back to add recipients.';
      $('continue').disabled = true;
      $('only-clean').hidden = true;
      $('summary').focus();
      return;
    }
    Capacity.preview($('capacity'), preview.capacity);
    const domain = preview.capacity.domain;
    preview.rows.forEach((r, i) => {
      const who = r.recipient_email || rows[i].recipient_email;
      // Each flag has an id; the input for its field points at it.
      const flagIds = {};
      const flags = r.flags.map((f, k) => {
        const id = 'flag-' + i + '-' + k;
        const key = ['recipient_email', 'local_part', 'storage_allocation_mb'].includes(f.field) ? f.field : 'drop';
        (flagIds[key] = flagIds[key] || []).push(id);
        return el('div', { class: 'flag', id, 'data-code': f.code, text: f.message });
      });
      const emailFlagged = r.flags.some(f => f.field === 'recipient_email');
      const email = emailFlagged
        ? field(i, 'recipient_email', { type: 'email', value: rows[i].recipient_email, 'aria-label': 'Recipient email, row ' + (i + 1) }, flagIds,
          v => { rows[i].recipient_email = v.trim(); recheck(); })
        : el('span', { text: who });
      const local = field(i, 'local_part', { value: rows[i].local_part || r.local_part || '', 'aria-label': 'Mailbox name for ' + who }, flagIds,
        v => { rows[i].local_part = v; recheck(); });
      const alloc = field(i, 'storage_allocation_mb', { inputmode: 'numeric', value: rows[i].storage_allocation_mb || '', placeholder: 'shared', 'aria-label': 'Allocation in MB for ' + who }, flagIds,
        v => { rows[i].storage_allocation_mb = v; recheck(); });
      const dropIds = flagIds.drop || [];
      const dropButton = el('button', { type: 'button', class: 'secondary', text: 'Drop', 'data-field': 'drop', 'aria-label': 'Drop ' + (who || 'row ' + (i + 1)),
        'aria-describedby': dropIds.length ? dropIds.join(' ') : null, onclick: () => drop(i) });
      tbody.append(el('tr', { 'data-row': i, class: r.flags.length ? 'flagged' : 'clean' },
        el('td', { 'data-label': 'Line', text: r.line || (r.index + 1) }),
        el('td', { 'data-label': 'Recipient', class: 'who' }, email),
        el('td', { 'data-label': 'Name', text: r.display_name || '' }),
        el('td', { 'data-label': 'Mailbox' }, el('div', { class: 'mailbox' }, local, el('span', { class: 'muted', text: '@' + domain }))),
        el('td', { 'data-label': 'Allocation (MB)' }, alloc),
        el('td', { class: 'problems' }, flags.length ? flags : el('span', { text: 'ok' })),
        el('td', {}, dropButton)));
    });
    restore(focusAfter);
    const clean = preview.clean_rows, flagged = preview.flagged_rows;
    $('summary').textContent = plural(preview.rows.length, 'row') + ': ' + clean + ' clean, ' + flagged + ' flagged.';
    // Two different choices, each named for what it does.
    $('continue').hidden = flagged > 0;
    $('continue').disabled = checking || clean === 0;
    $('continue').textContent = 'Continue with ' + plural(clean, 'invite');
    $('only-clean').hidden = flagged === 0;
    $('only-clean').disabled = checking || clean === 0;
    $('only-clean').textContent = 'Leave out ' + plural(flagged, 'flagged row') + ', continue with ' + plural(clean, 'invite');
    if (flagged > 0) {
      $('flagged-help').hidden = false;
      $('flagged-help').textContent = 'To send all ' + plural(preview.rows.length, 'row') + ', correct or drop the flagged ones above.';
    }
  }

  // The confirm step: who gets an invite, and the email as they will read it.
  let clean = [];
  function toConfirm(leaveOut) {
    onlyClean = leaveOut;
    clean = preview.rows.map((r, i) => ({ r, input: rows[i] })).filter(x => !x.r.flags.length);
    const n = clean.length;
    const expiry = $('expiry').selectedOptions[0].textContent;
    const reminders = reminderList();
    $('confirm-summary').textContent = 'Send ' + plural(n, 'invite') + ' for ' + preview.capacity.domain +
      '? The links expire after ' + expiry + '.' +
      (reminders.length ? ' Whoever has not set up by then is reminded ' + reminders.map(reminderWords).join(' and ') + '.' : ' No reminders.') +
      (leaveOut && preview.flagged_rows ? ' The ' + plural(preview.flagged_rows, 'flagged row') + (preview.flagged_rows === 1 ? ' is' : ' are') + ' left out.' : '');
    $('recipients-title').textContent = 'Recipients (' + n + ')';
    $('confirm-list').querySelector('tbody').replaceChildren(...clean.map(({ r }) => el('tr', {},
      el('td', { 'data-label': 'Recipient', class: 'who', text: r.recipient_email }),
      el('td', { 'data-label': 'Name', text: r.display_name || '' }),
      el('td', { 'data-label': 'Mailbox', text: r.mailbox }),
      el('td', { 'data-label': 'Allocation', text: r.storage_allocation_mb ? size(r.storage_allocation_mb) : 'shared pool' }),
      el('td', { 'data-label': 'Language', text: r.locale || 'default' }))));
    $('sample-for').replaceChildren(...clean.map((x, k) => el('option', { value: k, text: x.r.recipient_email })));
    say('test-status', 'ok', '');
    show(3);
    $('step3-title').focus();
    sample();
  }
  $('continue').addEventListener('click', () => toConfirm(false));
  $('only-clean').addEventListener('click', () => toConfirm(true));
  $('back').addEventListener('click', () => show(1));
  $('back-to-preview').addEventListener('click', () => show(2));

  const LANGUAGES = { en: 'English', de: 'Deutsch' };
  function sampleRequest() {
    const chosen = clean[+$('sample-for').value || 0];
    return { domain: $('domain').value, expires_in: $('expiry').value, row: chosen.input };
  }
  async function sample() {
    try {
      const s = await api('POST', '/previews/invite-email', sampleRequest());
      $('sample-from').textContent = s.from;
      $('sample-to').textContent = s.recipient_email;
      $('sample-subject').textContent = s.subject;
      $('sample-locale').textContent = LANGUAGES[s.locale] || s.locale;
      $('sample-expires').textContent = fmtDate(s.expires_at);
      $('sample-text').textContent = s.text;
    } catch (err) { say('status', 'bad', errorText(err)); }
  }
  $('sample-for').addEventListener('change', sample);

  $('send-test').addEventListener('click', async () => {
    $('send-test').disabled = true;
    try {
      const req = sampleRequest();
      const to = $('test-to').value.trim();
      if (to) req.to = to;
      const t = await api('POST', '/previews/invite-email/test', req);
      const a = t.authentication;
      const lines = [t.delivery_state === 'sent'
        ? 'A test went to ' + t.to + ': ' + (t.via ? t.via + ' answered ' : 'the relay answered ') + t.detail + '.'
        : 'No SMTP relay is configured: the test for ' + t.to + ' was written to ' + t.detail + ' and not emailed.'];
      lines.push(t.signed_with.length ? 'Signed with ' + t.signed_with.join(', ') + '.'
        : 'Not DKIM-signed: there is no key for the sender\'s domain (muster dkim generate makes one), or signing is off.');
      const judged = [a.dkim, a.spf, a.dmarc];
      if (judged.every(v => v.result === 'not_checked')) {
        lines.push('Not judged: ' + a.dkim.words + '.');
      } else {
        for (const [name, v] of [['DKIM', a.dkim], ['SPF', a.spf], ['DMARC', a.dmarc]]) {
          lines.push(name + ': ' + v.result.replace(/_/g, ' ') + ' (' + v.words + ')');
        }
        lines.push('Checked as a receiver checks it, against the DNS published now. The DNS page says what to publish.');
      }
      const allPass = [a.dkim, a.spf, a.dmarc].every(v => v.result === 'pass');
      say('test-status', t.delivery_state === 'sent' && allPass ? 'ok' : 'warn', lines);
    } catch (err) {
      // The API names its field (`to`); here the field is the one on screen.
      const text = errorText(err);
      say('test-status', 'bad', err.body && err.body.code === 'invalid_to' && typeof text === 'string'
        ? 'Send a test to: ' + text.replace(/^`to`: /, '') : text);
    } finally { $('send-test').disabled = false; }
  });

  $('send').addEventListener('click', async () => {
    $('send').disabled = true;
    try {
      const created = await api('POST', '/batches',
        { domain: $('domain').value, rows, expires_in: $('expiry').value, reminders: reminderList(), only_clean: onlyClean },
        { 'Idempotency-Key': newKey() });
      show(4);
      follow(created.batch_id);
    } catch (err) {
      $('send').disabled = false;
      if (err.body && err.body.code === 'invalid_reminders') {
        // Back to where the reminders are chosen, with the field marked.
        show(2);
        reminderError(err.message);
        $('reminders').focus();
        return;
      }
      say('status', 'bad', errorText(err));
    }
  });

  async function follow(batchId) {
    const status = await api('GET', '/batches/' + encodeURIComponent(batchId));
    const count = s => (status.delivery.find(x => x.state === s) || { count: 0 }).count;
    const open = count('queued') + count('sending') + count('deferred');
    const outbox = count('in_outbox') ? count('in_outbox') + ' in the outbox (not emailed), ' : '';
    // The same words as the rows' states below, so the line and the rows agree.
    const withdrawn = count('withdrawn') ? count('withdrawn') + ' withdrawn (revoked), ' : '';
    $('progress').textContent = count('sent') + ' sent, ' + outbox + count('failed') + ' failed, ' + withdrawn + count('deferred') +
      ' deferred, ' + count('sending') + ' sending, ' + count('queued') + ' queued.' + (open === 0 ? ' Done.' : '');
    $('sent').querySelector('tbody').replaceChildren(...status.invites.map(i => el('tr', { 'data-delivery': i.delivery_state },
      el('td', { 'data-label': 'Recipient', text: i.recipient_email }), el('td', { 'data-label': 'Mailbox', text: i.mailbox }),
      el('td', {}, stateBadge(i.delivery_state)),
      el('td', { 'data-label': 'Detail', title: i.delivery_detail || null, text: shortDetail(i) }))));
    if (open > 0) setTimeout(() => follow(batchId), 1000);
  }
});
