'use strict';
// The capacity panel, shared by the mailboxes page and the wizards.
const Capacity = (() => {
  const { el, size } = Muster;
  // Sizes as the mailboxes page writes them ("100 GB"), below zero too.
  const signed = mb => (mb < 0 ? '−' + size(-mb) : size(mb));
  function stat(label, value, over) {
    return el('div', { class: 'stat' + (over ? ' over' : '') }, el('b', { text: value }), label);
  }
  // From a preview's capacity (cap, existing, pending, this batch, left; pool).
  function preview(box, c) {
    box.replaceChildren(
      stat('mailbox cap on ' + c.domain, c.cap),
      ...hostLimit(c),
      stat('existing', c.existing),
      stat('pending invites', c.pending),
      stat('this batch', c.this_batch),
      stat('left after', c.left_after, c.left_after < 0),
      stat('storage pool', size(c.pool_mb)),
      stat('allocated', size(c.pool_allocated_mb)),
      stat('allocated by this batch', size(c.batch_allocated_mb)),
      stat('pool left after', signed(c.pool_left_after_mb), c.pool_left_after_mb < 0));
  }
  // The mail server's own limit on the domain, when it keeps one.
  function hostLimit(c) {
    return c.host_limit == null ? [] : [stat('the mail server allows', c.host_limit)];
  }
  return { stat, preview, hostLimit };
})();
