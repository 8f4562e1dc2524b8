'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, readFile, dropZone, download, csvCell, newKey } = Muster;
  const settings = await requireSession();
  const $ = id => document.getElementById(id);
  settings.domains.forEach(d => $('domain').append(el('option', { value: d, text: d })));
  let uploaded = null;
  let rows = [];
  let preview = null;
  let created = null;

  async function chooseFile(file) { uploaded = await readFile(file); say('status', 'ok', 'Read ' + file.name + '. Press Preview.'); }
  $('file').addEventListener('change', e => { if (e.target.files.length) chooseFile(e.target.files[0]); });
  dropZone($('dropzone'), chooseFile);

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
    const text = uploaded !== null ? uploaded : $('paste').value;
    if (!text.trim()) { say('status', 'bad', 'Paste the CSV or choose a file.'); return; }
    check({ text });
  });

  function render() {
    Capacity.preview($('capacity'), preview.capacity);
    const tbody = $('preview').querySelector('tbody');
    tbody.replaceChildren(...preview.rows.map((r, i) => el('tr', { class: r.flags.length ? 'flagged' : 'clean' },
      el('td', { text: r.line || r.index + 1 }),
      el('td', { text: r.mailbox || r.local_part }),
      el('td', { text: r.password === 'generate' ? 'generated' : 'given' }),
      el('td', { text: r.storage_allocation_mb ? r.storage_allocation_mb : 'shared' }),
      el('td', {}, r.flags.length ? r.flags.map(f => el('div', { class: 'flag', 'data-code': f.code, text: f.message })) : 'ok'),
      el('td', {}, el('button', { type: 'button', class: 'secondary', text: 'Drop', onclick: () => { rows.splice(i, 1); recheck(); } })))));
    $('summary').textContent = preview.rows.length + ' rows: ' + preview.clean_rows + ' clean, ' + preview.flagged_rows + ' flagged.';
    $('create').disabled = preview.flagged_rows > 0 || preview.clean_rows === 0;
    $('only-clean').hidden = preview.flagged_rows === 0;
  }
  function recheck() { rows.length ? check({ rows }) : ($('step2').hidden = true, $('step1').hidden = false); }

  async function create(onlyClean) {
    try {
      created = await api('POST', '/creations', { domain: $('domain').value, rows, only_clean: onlyClean }, { 'Idempotency-Key': newKey() });
      $('step2').hidden = true;
      $('result').hidden = false;
      $('created').querySelector('tbody').replaceChildren(...created.mailboxes.map(m => el('tr', {},
        el('td', { text: m.mailbox }),
        el('td', { text: m.storage_allocation_mb ? m.storage_allocation_mb + ' MB' : 'shared' }),
        el('td', {}, m.generated_password ? el('span', { class: 'secret', text: m.generated_password }) : el('span', { class: 'muted', text: 'as given' })))));
      rows = [];
    } catch (err) { say('status', 'bad', errorText(err)); }
  }
  $('create').addEventListener('click', () => create(false));
  $('only-clean').addEventListener('click', () => create(true));
  $('back').addEventListener('click', () => { $('step2').hidden = true; $('step1').hidden = false; });
  $('download').addEventListener('click', () => {
    const lines = ['mailbox,password'].concat(created.mailboxes.map(m => csvCell(m.mailbox) + ',' + csvCell(m.generated_password || '')));
    download('muster-mailboxes.csv', lines.join('\n') + '\n');
  });
});
