'use strict';
(() => {
  const { api, say, setCsrf, errorText } = Muster;
  // Served without its form once an admin exists: the page says so.
  if (document.getElementById('setup').hidden) return;
  // The token travels in the fragment, which never reaches a server or a log.
  const token = location.hash.replace(/^#/, '');
  if (!token) say('status', 'bad', 'This page needs the setup link printed when Muster first started.');
  document.getElementById('setup').addEventListener('submit', async e => {
    e.preventDefault();
    const password = document.getElementById('password').value;
    if (password !== document.getElementById('confirmation').value) {
      say('status', 'bad', 'The two passwords do not match.');
      return;
    }
    try {
      const s = await api('POST', '/setup', { token, email: document.getElementById('email').value, password });
      setCsrf(s.csrf_token);
      history.replaceState(null, '', '/setup');
      location.href = '/';
    } catch (err) {
      say('status', 'bad', err.body && err.body.code === 'link_invalid'
        ? 'This setup link is not valid or was already used. If an admin exists, sign in at /login; otherwise create one on the server with: muster admin add you@example.org'
        : errorText(err));
    }
  });
})();
