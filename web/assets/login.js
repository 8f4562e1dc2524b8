'use strict';
(() => {
  const { api, say, setCsrf, errorText, cookieNotice } = Muster;
  // The same words as under every admin page.
  document.getElementById('main').append(cookieNotice());
  // Where to go after signing in: only a path on this origin. The value is
  // resolved against the origin and compared; backslashes and control
  // characters are refused first, since browsers read "/\\evil" as "//evil"
  // and drop tabs and line breaks from URLs ("/\t/evil" becomes "//evil").
  function sameOriginPath(raw) {
    if (!raw || raw[0] !== '/' || /[\\\u0000-\u001f\u007f]/.test(raw)) return '/';
    try {
      const url = new URL(raw, location.origin);
      // "/.//evil" resolves to the path "//evil", which on its own would
      // leave the origin: such paths are refused, and the whole URL is kept.
      if (url.origin !== location.origin || url.pathname.startsWith('//')) return '/';
      return url.href;
    } catch (e) {
      return '/';
    }
  }
  const safeNext = sameOriginPath(new URLSearchParams(location.search).get('next'));

  // A link from another site arrives without the (SameSite=Strict) session
  // cookie and is sent here; this page's own request carries it, so a
  // signed-in admin goes straight on. The server marks the page when the
  // visit showed there is no session to find.
  if (document.body.dataset.session !== 'none') {
    api('GET', '/session').then(s => { setCsrf(s.csrf_token); location.replace(safeNext); }, () => {});
  }

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
      // The API's words are a clause ("the email or the password is
      // wrong"); on the page they are a sentence.
      const words = String(errorText(err));
      say('status', 'bad', words.charAt(0).toUpperCase() + words.slice(1) + (/[.!?]$/.test(words) ? '' : '.'));
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
