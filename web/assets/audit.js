'use strict';
Muster.page(async () => {
  const { api, el, say, errorText, requireSession, fmtDate, plural } = Muster;
  await requireSession();
  const $ = id => document.getElementById(id);

  // What happened, in words; an action not listed shows as written.
  const ACTIONS = {
    'admin.add': 'Admin added', 'admin.sign_in': 'Signed in', 'admin.sign_in_failed': 'Sign-in failed',
    'admin.sign_out': 'Signed out', 'admin.password_reset': 'Password reset', 'admin.password_set': 'Password set',
    'admin.reset_email.send': 'Reset email sent', 'admin.reset_email.outbox': 'Reset email written to the outbox',
    'admin.reset_email.send_failed': 'Reset email not delivered', 'admin.reset_requested': 'Password reset asked for',
    'admin.reset_throttled': 'Reset email held back', 'admin.reset_unknown': 'Reset asked for an unknown account',
    'audit.outsiders_counted': 'Failed sign-ins counted, not listed',
    'batch.create': 'Batch sent', 'invite.send': 'Invite sent',
    'invite.outbox': 'Invite written to the outbox', 'invite.send_failed': 'Invite not delivered',
    'invite.resend': 'Invite resent', 'invite.revoke': 'Invite revoked', 'invite.copy_link': 'Link copied',
    'invite.new_link_requested': 'New link asked for', 'invite.redeem': 'Mailbox set up',
    'invite.redeem_failed': 'Setup failed', 'invite.blocked': 'Invite blocked', 'invite.test_sent': 'Test invite sent',
    'invite.skipped': 'Invite not sent (no longer wanted)', 'invite.bulk_resend': 'Still-pending invites resent',
    'invite.reminder.send': 'Reminder sent', 'invite.reminder.outbox': 'Reminder written to the outbox',
    'invite.reminder.send_failed': 'Reminder not delivered', 'invite.reminder.skipped': 'Reminder not sent (no longer wanted)',
    'mailbox.forget': 'Mailbox forgotten', 'mailboxes.bulk_create': 'Mailboxes created',
    'mailbox.allocation': 'Allocation changed', 'mailbox.suspend': 'Mailbox suspended', 'mailbox.restore': 'Mailbox restored',
    'mailbox.remove': 'Mailbox removed', 'mailbox.reset_link': 'Password reset link sent', 'mailbox.password_reset': 'Mailbox password reset',
    'mailbox.welcome.send': 'Welcome email sent', 'mailbox.welcome.outbox': 'Welcome email written to the outbox',
    'mailbox.welcome.send_failed': 'Welcome email not delivered', 'mailbox.welcome.skipped': 'Welcome email not sent',
    'notice.send': 'Notice sent to an admin', 'notice.outbox': 'Notice written to the outbox',
    'notice.send_failed': 'Notice not delivered', 'notice.skipped': 'Notice not sent (no longer news)',
    'digest.send': 'Daily digest sent', 'digest.outbox': 'Daily digest written to the outbox',
    'digest.send_failed': 'Daily digest not delivered', 'digest.skipped': 'Daily digest not sent',
    'admin.reset_email.skipped': 'Reset email not sent (no longer wanted)',
    'token.create': 'Token created', 'token.revoke': 'Token revoked', 'token.use': 'Token used',
    'webhook.create': 'Webhook endpoint added', 'webhook.delete': 'Webhook endpoint removed', 'webhook.redeliver': 'Webhook delivery sent again',
  };

  function query(cursor) {
    const q = new URLSearchParams();
    for (const id of ['kind', 'actor', 'from', 'until']) if ($(id).value.trim()) q.set(id, $(id).value.trim());
    if (cursor) q.set('cursor', cursor);
    return q;
  }

  let cursor = null;
  let shown = 0;
  async function load(fresh) {
    try {
      if (fresh) { cursor = null; shown = 0; $('audit').querySelector('tbody').replaceChildren(); }
      const q = query(cursor);
      q.set('limit', '100');
      const page = await api('GET', '/audit?' + q);
      page.events.forEach(e => $('audit').querySelector('tbody').append(el('tr', { 'data-action': e.action },
        el('td', { 'data-label': 'When', class: 'nowrap', text: fmtDate(e.at) }),
        el('td', { 'data-label': 'Who', class: 'who', text: e.actor_name }),
        el('td', { 'data-label': 'What', text: ACTIONS[e.action] || e.action, title: e.action }),
        el('td', { 'data-label': 'Subject', class: 'who' }, e.subject_name ? [el('span', { text: e.subject_name }), el('br'), el('small', { class: 'muted', text: e.subject })] : e.subject),
        el('td', { 'data-label': 'Detail', class: 'readable', text: e.detail }))));
      shown += page.events.length;
      cursor = page.next_cursor || null;
      $('more').hidden = !cursor;
      // A range given backwards matches nothing: said, so it is not taken for an empty trail.
      const backwards = $('from').value && $('until').value && $('from').value > $('until').value;
      $('count').textContent = shown ? 'Showing ' + plural(shown, 'event') + (cursor ? ', more below.' : '.')
        : backwards ? 'No events match: From is after Until.' : 'No events match.';
      const csv = query();
      $('export').href = '/api/v1/audit.csv' + (csv.toString() ? '?' + csv : '');
    } catch (err) { say('status', 'bad', errorText(err)); }
  }
  $('filters').addEventListener('submit', e => { e.preventDefault(); load(true); });
  $('more').addEventListener('click', () => load(false));
  await load(true);
});
