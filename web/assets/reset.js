'use strict';
(() => {
  const { api, say, errorText } = Muster;
  const token = location.pathname.split('/').pop();
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
