'use strict';
(() => {
  const { api, say, errorText } = Muster;
  // The token is in the fragment (never sent to a server); links sent by
  // an older Muster had it in the path.
  const token = location.hash.replace(/^#/, '') || location.pathname.split('/').pop();
  document.getElementById('reset').addEventListener('submit', async e => {
    e.preventDefault();
    const password = document.getElementById('password').value;
    if (password !== document.getElementById('confirmation').value) {
      say('status', 'bad', 'The two passwords do not match.');
      return;
    }
    try {
      const r = await api('POST', '/password-reset/confirm', { token, password });
      say('status', 'ok', r.message);
      document.getElementById('reset').hidden = true;
    } catch (err) {
      say('status', 'bad', errorText(err));
    }
  });
})();
