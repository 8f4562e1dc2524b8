'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, sourcePicker, focusKeeper, download, csvCell, newKey, confirmAction, plural, size } = Muster;
  const settings = await requireSession();
  const $ = id => document.getElementById(id);
  settings.domains.forEach(d => $('domain').append(el('option', { value: d, text: d })));
  let rows = [];
  let preview = null;
  let created = null;

  const source = sourcePicker({ paste: 'paste', pasteBox: 'paste-box', file: 'file', dropzone: 'dropzone', chosen: 'chosen' });

  async function check(body) {
    $('create').disabled = true;
    try {
      preview = await api('POST', '/previews/creations', Object.assign({ domain: $('domain').value }, body));
      rows = preview.rows.map(r => r.input);
      render();
      $('step1').hidden = true;
      $('step2').hidden = false;
      say('status', 'ok', '');
    } catch (err) { say('status', 'bad', errorText(err)); }
  }

  $('to-preview').addEventListener('click', () => {
    const text = source.text();
    if (!text.trim()) { say('status', 'bad', 'Paste the CSV or choose a file.'); return; }
    check({ text });
  });

  let focusAfter = null;
  // Until the re-check answers, the row is gone and the rest keep their flags.
  function drop(i) {
    rows.splice(i, 1);
    preview.rows.splice(i, 1);
    focusAfter = { row: String(Math.min(i, rows.length - 1)), field: 'drop', none: $('summary') };
    if (rows.length) render();
    recheck();
  }
  function render() {
    Capacity.preview($('capacity'), preview.capacity);
    const tbody = $('preview').querySelector('tbody');
    const restore = focusKeeper(tbody);
    tbody.replaceChildren(...preview.rows.map((r, i) => el('tr', { 'data-row': i, class: r.flags.length ? 'flagged' : 'clean' },
      el('td', { 'data-label': 'Line', text: r.line || r.index + 1 }),
      el('td', { 'data-label': 'Mailbox', class: 'who', text: r.mailbox || r.local_part }),
      el('td', { 'data-label': 'Password', text: r.password === 'generate' ? 'generated' : 'given' }),
      // As typed when it is not a size (the flag beside it says why).
      el('td', { 'data-label': 'Allocation (MB)', text: r.storage_allocation_mb || (rows[i] && rows[i].storage_allocation_mb) || 'shared' }),
      el('td', { class: 'problems' }, r.flags.length ? r.flags.map((f, k) => el('div', { class: 'flag', id: 'flag-' + i + '-' + k, 'data-code': f.code, text: f.message })) : 'ok'),
      el('td', {}, el('button', { type: 'button', class: 'secondary', text: 'Drop', 'data-field': 'drop', 'aria-label': 'Drop ' + (r.mailbox || r.local_part || 'row ' + (i + 1)),
        'aria-describedby': r.flags.length ? r.flags.map((f, k) => 'flag-' + i + '-' + k).join(' ') : null,
        onclick: () => drop(i) })))));
    restore(focusAfter);
    focusAfter = null;
    $('summary').textContent = plural(preview.rows.length, 'row') + ': ' + preview.clean_rows + ' clean, ' + preview.flagged_rows + ' flagged.';
    // With flagged rows the one way on says what it leaves out.
    $('create').hidden = preview.flagged_rows > 0;
    $('create').disabled = preview.flagged_rows > 0 || preview.clean_rows === 0;
    $('create').textContent = 'Create ' + plural(preview.clean_rows, 'mailbox', 'mailboxes');
    $('only-clean').hidden = preview.flagged_rows === 0;
    $('only-clean').textContent = 'Leave out ' + plural(preview.flagged_rows, 'flagged row') + ', create ' + plural(preview.clean_rows, 'mailbox', 'mailboxes');
  }
  function recheck() { rows.length ? check({ rows }) : ($('step2').hidden = true, $('step1').hidden = false); }

  // While generated passwords are on screen, leaving the page asks first:
  // they are shown once and nowhere else.
  function guardPasswords(e) { e.preventDefault(); e.returnValue = ''; }

  async function create(onlyClean) {
    const n = preview.clean_rows;
    const left = onlyClean && preview.flagged_rows ? ' The ' + plural(preview.flagged_rows, 'flagged row') + ' ' + (preview.flagged_rows === 1 ? 'is' : 'are') + ' left out.' : '';
    const ok = await confirmAction('Create ' + plural(n, 'mailbox', 'mailboxes') + ' on ' + $('domain').value + ' now? They can sign in at once with the passwords given or generated.' + left,
      'Create ' + plural(n, 'mailbox', 'mailboxes'));
    if (!ok) return;
    try {
      created = await api('POST', '/creations', { domain: $('domain').value, rows, only_clean: onlyClean }, { 'Idempotency-Key': newKey() });
      $('step2').hidden = true;
      $('result').hidden = false;
      $('created').querySelector('tbody').replaceChildren(...created.mailboxes.map(m => el('tr', {},
        el('td', { text: m.mailbox }),
        el('td', { text: m.storage_allocation_mb ? size(m.storage_allocation_mb) : 'shared' }),
        el('td', {}, m.generated_password ? el('span', { class: 'secret', text: m.generated_password }) : el('span', { class: 'muted', text: 'as given' })))));
      rows = [];
      if (created.mailboxes.some(m => m.generated_password)) window.addEventListener('beforeunload', guardPasswords);
      $('clear').hidden = !created.mailboxes.some(m => m.generated_password);
    } catch (err) { say('status', 'bad', errorText(err)); }
  }
  $('create').addEventListener('click', () => create(false));
  $('only-clean').addEventListener('click', () => create(true));
  $('back').addEventListener('click', () => { $('step2').hidden = true; $('step1').hidden = false; });
  $('clear').addEventListener('click', () => {
    window.removeEventListener('beforeunload', guardPasswords);
    $('created').querySelectorAll('.secret').forEach(s => s.replaceWith(el('span', { class: 'muted', text: 'cleared from the screen' })));
    $('clear').hidden = true;
    $('download').hidden = true;
    say('status', 'ok', 'The generated passwords are off the screen. Muster keeps only their hashes.');
  });
  $('download').addEventListener('click', () => {
    const lines = ['mailbox,password'].concat(created.mailboxes.map(m => csvCell(m.mailbox) + ',' + csvCell(m.generated_password || '')));
    download('muster-mailboxes.csv', lines.join('\n') + '\n');
  });
});
