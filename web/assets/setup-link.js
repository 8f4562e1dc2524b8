// The setup-link page: a show-password toggle, and a check of the password
// policy before the form is sent, so a weak password is explained next to
// its field without the page reloading (nothing typed is lost). Without
// this script the form still works: the server answers the same problems.
'use strict';
(() => {
  const form = document.getElementById('setup');
  if (!form) return;
  const fields = ['password', 'confirmation'].map(id => document.getElementById(id));
  const button = form.querySelector('button[type=submit]');

  const reveal = document.getElementById('reveal');
  reveal.hidden = false;
  reveal.addEventListener('click', () => {
    const show = reveal.getAttribute('aria-pressed') !== 'true';
    for (const f of fields) f.type = show ? 'text' : 'password';
    reveal.setAttribute('aria-pressed', String(show));
    reveal.textContent = show ? reveal.dataset.hide : reveal.dataset.show;
  });

  function showProblems(field, messages) {
    const list = document.getElementById(field.id + '-error');
    list.replaceChildren(...messages.map(m => {
      const li = document.createElement('li');
      li.textContent = m;
      return li;
    }));
    list.hidden = messages.length === 0;
    if (messages.length) field.setAttribute('aria-invalid', 'true');
    else field.removeAttribute('aria-invalid');
  }

  let checked = false;
  form.addEventListener('submit', async event => {
    if (checked) return;
    event.preventDefault();
    button.disabled = true;
    let verdict = { ok: true };
    try {
      const resp = await fetch(form.action + '/check', {
        method: 'POST',
        credentials: 'same-origin',
        body: new URLSearchParams(new FormData(form)),
      });
      if (resp.ok) verdict = await resp.json();
    } catch (e) {
      // The submission itself will answer.
    }
    button.disabled = false;
    showProblems(fields[0], verdict.password || []);
    showProblems(fields[1], verdict.confirmation || []);
    if (verdict.ok) {
      checked = true;
      for (const f of fields) f.type = 'password';
      form.submit();
      // One submission: a second click would only send the form again.
      button.disabled = true;
      return;
    }
    const first = fields.find(f => f.getAttribute('aria-invalid') === 'true');
    if (first) first.focus();
  });
})();
