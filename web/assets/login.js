'use strict';
(() => {
  const { api, say, setCsrf, errorText } = Muster;
  const next = new URLSearchParams(location.search).get('next');
  const safeNext = next && next.startsWith('/') && !next.startsWith('//') ? next : '/';

  document.getElementById('sign-in').addEventListener('submit', async e => {
    e.preventDefault();
    say('status', 'ok', '');
    try {
      const s = await api('POST', '/session', {
        email: document.getElementById('email').value,
        password: document.getElementById('password').value,
      });
      setCsrf(s.csrf_token);
      location.href = safeNext;
    } catch (err) {
      say('status', 'bad', errorText(err));
      document.getElementById('password').value = '';
      document.getElementById('password').focus();
    }
  });

  document.getElementById('forgot-link').addEventListener('click', e => {
    e.preventDefault();
    const form = document.getElementById('forgot');
    form.hidden = false;
    document.getElementById('forgot-email').value = document.getElementById('email').value;
    document.getElementById('forgot-email').focus();
  });

  document.getElementById('forgot').addEventListener('submit', async e => {
    e.preventDefault();
    try {
      const r = await api('POST', '/password-reset', { email: document.getElementById('forgot-email').value });
      say('status', 'ok', r.message);
    } catch (err) {
      say('status', 'bad', errorText(err));
    }
  });
})();
