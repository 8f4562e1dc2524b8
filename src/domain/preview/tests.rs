use std::collections::{HashMap, HashSet};

use time::{Duration, OffsetDateTime, macros::datetime};

use super::*;
use crate::domain::address::DomainName;
use crate::domain::roster::{RosterFormat, parse_invite_roster};

const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

#[derive(Default)]
struct Fake {
    existing: HashSet<String>,
    pending: HashMap<String, OffsetDateTime>,
}

impl Occupancy for Fake {
    fn mailbox_exists(&self, m: &MailboxAddress) -> bool {
        self.existing.contains(&m.to_string())
    }
    fn pending_invite_expiry(&self, m: &MailboxAddress) -> Option<OffsetDateTime> {
        self.pending.get(&m.to_string()).copied()
    }
}

fn facts(cap: u64, existing: u64, pending: u64, pool: u64, allocated: u64) -> Capacity {
    Capacity {
        domain: DomainName::parse("team.example").unwrap(),
        cap,
        existing,
        pending,
        pool_mb: pool,
        pool_allocated_mb: allocated,
        host_limit: None,
    }
}

fn rows(text: &str) -> Vec<InviteRow> {
    parse_invite_roster(text.as_bytes(), RosterFormat::Csv, 500).unwrap()
}

fn codes(p: &InvitePreview) -> Vec<Vec<&'static str>> {
    p.rows
        .iter()
        .map(|r| r.flags.iter().map(|f| f.code.as_str()).collect())
        .collect()
}

fn run(text: &str, f: &Capacity, occ: &Fake) -> InvitePreview {
    preview_invites(&rows(text), f, occ, &ReservedNames::default(), NOW).0
}

#[test]
fn clean_rows_become_mailboxes_on_the_batch_domain() {
    let (p, clean) = preview_invites(
        &rows("Jane.Doe@Gmail.com,100\nbob@example.org\n"),
        &facts(10, 0, 0, 1000, 0),
        &Fake::default(),
        &ReservedNames::default(),
        NOW,
    );
    assert_eq!(p.rows[0].mailbox.as_deref(), Some("jane.doe@team.example"));
    assert_eq!(p.rows[0].recipient_email, "Jane.Doe@gmail.com");
    assert_eq!(p.rows[0].storage_allocation_mb, Some(100));
    assert_eq!(p.rows[1].mailbox.as_deref(), Some("bob@team.example"));
    assert_eq!(p.clean_rows, 2);
    assert!(clean.iter().all(Option::is_some));
    assert_eq!(p.capacity.this_batch, 2);
    assert_eq!(p.capacity.left_after, 8);
    assert_eq!(p.capacity.batch_allocated_mb, 100);
    assert_eq!(p.capacity.pool_left_after_mb, 900);
}

#[test]
fn duplicates_that_differ_only_in_case() {
    let p = run(
        "a@x.org\nA@X.ORG\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert_eq!(
        codes(&p),
        vec![vec![], vec!["duplicate_recipient", "duplicate_mailbox"]]
    );
    // Named by the line the preview shows.
    assert!(
        p.rows[1].flags[0].message.ends_with("by line 1"),
        "{:?}",
        p.rows[1].flags
    );
}

#[test]
fn two_recipients_deriving_the_same_local_part() {
    let p = run(
        "sam@one.org\nsam@two.org\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert_eq!(codes(&p), vec![vec![], vec!["duplicate_mailbox"]]);
}

#[test]
fn plus_tags_and_dots() {
    let p = run(
        "jane+team@x.org\njane.doe@x.org\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert_eq!(p.rows[0].flags[0].code, FlagCode::InvalidLocalPart);
    assert!(
        p.rows[0].flags[0]
            .message
            .contains("set the mailbox name (local_part)")
    );
    assert!(p.rows[1].flags.is_empty());
    assert_eq!(p.rows[1].mailbox.as_deref(), Some("jane.doe@team.example"));
    // The local_part column overrides the derived one.
    let p = run(
        "email,local_part\njane+team@x.org,jane\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert!(p.rows[0].flags.is_empty());
    assert_eq!(p.rows[0].mailbox.as_deref(), Some("jane@team.example"));
}

#[test]
fn invalid_recipients_are_flagged_with_the_reason() {
    let p = run(
        "not-an-address\nx@localhost\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert_eq!(p.rows[0].flags[0].code, FlagCode::InvalidRecipientEmail);
    assert!(p.rows[0].flags[0].message.contains("no @"));
    assert!(p.rows[1].flags[0].message.contains("dot"));
    assert_eq!(p.clean_rows, 0);
}

#[test]
fn bad_allocations() {
    let p = run(
        "a@x.org,lots\nb@x.org,-5\nc@x.org,0\nd@x.org,1.5\ne@x.org,99999999999999999999999\nf@x.org,7\n",
        &facts(10, 0, 0, 1000, 0),
        &Fake::default(),
    );
    let c = codes(&p);
    for row in &c[..5] {
        assert_eq!(row, &vec!["invalid_allocation"]);
    }
    assert!(c[5].is_empty());
}

#[test]
fn a_row_over_the_pool_is_flagged_and_later_rows_that_fit_are_not() {
    // 35 MB available: rows of 10 MB cross at the fourth; 1 MB still fits.
    let p = run(
        "a@x.org,10\nb@x.org,10\nc@x.org\nd@x.org,10\ne@x.org,10\nf@x.org,1\ng@x.org\n",
        &facts(100, 0, 0, 50, 15),
        &Fake::default(),
    );
    assert_eq!(
        codes(&p),
        vec![
            vec![],
            vec![],
            vec![],
            vec![],
            vec!["allocation_over_pool"],
            vec![],
            // Rows without an allocation use the shared pool.
            vec![],
        ]
    );
    assert_eq!(
        p.rows[4].flags[0].message,
        "10 MB does not fit: the rows above take 30 MB of the 35 MB left in the storage pool; raise storage_pool_mb, allocate less, or leave rows out"
    );
    // The panel shows what the clean rows take.
    assert_eq!(p.capacity.batch_allocated_mb, 31);
    assert_eq!(p.capacity.pool_left_after_mb, 35 - 31);
}

#[test]
fn rows_past_the_cap() {
    let p = run(
        "a@x.org\nbad\nb@x.org\nc@x.org\nd@x.org\n",
        &facts(5, 2, 1, 0, 0),
        &Fake::default(),
    );
    // Two places left; the invalid row does not take one.
    assert_eq!(
        codes(&p),
        vec![
            vec![],
            vec!["invalid_recipient_email"],
            vec![],
            vec!["over_cap"],
            vec!["over_cap"]
        ]
    );
    // The panel counts the rows that would go.
    assert_eq!(p.capacity.this_batch, 2);
    assert_eq!(p.capacity.left_after, 0);
    assert_eq!(
        p.rows[3].flags[0].message,
        "past the cap of 5 mailboxes for team.example: 2 exist, 1 invite is pending and the rows above take the other 2; raise mailbox_cap for team.example in muster.toml, or leave rows out"
    );
    assert_eq!(p.capacity.host_limit, None);
}

#[test]
fn the_mail_hosts_own_limit_counts_when_it_is_lower() {
    let limited = |limit| Capacity {
        host_limit: Some(limit),
        ..facts(50, 2, 1, 0, 0)
    };
    let pfa = |allowed| crate::domain::capacity::HostLimit::Mailboxes {
        allowed,
        set_in: "Postfix Admin".into(),
    };
    let text = "a@x.org\nb@x.org\nc@x.org\n";
    let p = run(text, &limited(pfa(4)), &Fake::default());
    assert_eq!(codes(&p), vec![vec![], vec!["over_cap"], vec!["over_cap"]]);
    assert_eq!(
        p.rows[1].flags[0].message,
        "past the 4 mailboxes Postfix Admin allows team.example: 2 exist, 1 invite is pending and the rows above take the other 1; raise the limit there, or leave rows out"
    );
    assert_eq!(p.capacity.host_limit, Some(4));
    assert_eq!(p.capacity.left_after, 0);
    // A higher host limit leaves the cap in charge, and its words.
    let p = run(text, &limited(pfa(400)), &Fake::default());
    assert_eq!(p.flagged_rows, 0);
    assert_eq!(p.capacity.left_after, 44);
    // A domain the host takes no mailbox in: every row, with the reason.
    let closed = crate::domain::capacity::HostLimit::Closed("inactive there".into());
    let p = run(text, &limited(closed), &Fake::default());
    assert_eq!(p.flagged_rows, 3);
    assert!(
        p.rows
            .iter()
            .all(|r| r.flags[0].message == "inactive there")
    );
    assert_eq!(p.capacity.host_limit, Some(0));
}

#[test]
fn live_pending_invites_count_and_expired_ones_do_not() {
    let mut occ = Fake::default();
    occ.pending
        .insert("live@team.example".into(), NOW + Duration::days(3));
    occ.pending
        .insert("old@team.example".into(), NOW - Duration::seconds(1));
    occ.existing.insert("taken@team.example".into());
    let p = run(
        "live@x.org\nold@x.org\ntaken@x.org\n",
        &facts(10, 0, 0, 0, 0),
        &occ,
    );
    assert_eq!(
        codes(&p),
        vec![vec!["invite_pending"], vec![], vec!["mailbox_exists"]]
    );
}

#[test]
fn display_name_and_locale_are_checked() {
    let p = run(
        "email,display_name,locale\na@x.org,\"Jane\rBcc: x@y.org\",de_DE\nb@x.org,Bob,klingon!\nc@x.org,\"Ann \u{202e}gpj.exe\",\nd@x.org,\"Zo\u{200b}e\",\ne@x.org,\"\u{645}\u{200c}\u{646} \u{2764}\u{fe0f}\",\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert_eq!(
        codes(&p),
        vec![
            vec![],
            vec!["invalid_locale"],
            vec!["invalid_display_name"],
            vec!["invalid_display_name"],
            // A zero-width non-joiner and an emoji's variation selector are fine.
            vec![],
        ]
    );
    // A line break in a quoted name folds into a space: one line, no header.
    assert_eq!(p.rows[0].display_name.as_deref(), Some("Jane Bcc: x@y.org"));
    assert_eq!(p.rows[0].locale.as_deref(), Some("de-de"));
    assert!(
        p.rows[2].flags[0].message.contains("U+202E"),
        "{:?}",
        p.rows[2].flags
    );
    // Rows that do not come from a file (API items) keep the control check.
    let api_row = InviteRow {
        display_name: Some("Jane\r\nBcc: x@y.org".into()),
        ..InviteRow::to("e@x.org")
    };
    let (p, _) = preview_invites(
        &[api_row],
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
        &ReservedNames::default(),
        NOW,
    );
    assert_eq!(codes(&p), vec![vec!["invalid_display_name"]]);
}

#[test]
fn unreadable_rows_are_flagged() {
    let p = run(
        "a@x.org,1,a,b,de,d\n",
        &facts(10, 0, 0, 0, 0),
        &Fake::default(),
    );
    assert_eq!(codes(&p), vec![vec!["unreadable_row"]]);
}

#[test]
fn creation_preview_applies_the_same_rules() {
    use crate::domain::roster::parse_creation_roster;
    let rows = parse_creation_roster(
        b"local_part,password,allocation\njane,generate,10\njane,,\nbob,short,\nann+x,,\n",
        500,
    )
    .unwrap();
    let check = |p: &str, _: &MailboxAddress| {
        if p.len() < 12 {
            Err("too short".to_string())
        } else {
            Ok(())
        }
    };
    let (p, clean) = preview_creation(
        &rows,
        &facts(10, 0, 0, 100, 0),
        &Fake::default(),
        &ReservedNames::default(),
        NOW,
        &check,
    );
    let c: Vec<Vec<&str>> = p
        .rows
        .iter()
        .map(|r| r.flags.iter().map(|f| f.code.as_str()).collect())
        .collect();
    assert_eq!(
        c,
        vec![
            vec![],
            vec!["duplicate_mailbox"],
            vec!["invalid_password"],
            vec!["invalid_local_part"]
        ]
    );
    assert_eq!(
        clean[0].as_ref().unwrap().password,
        PasswordChoice::Generate
    );
    assert_eq!(p.rows[0].password, "generate");
}

#[test]
fn reserved_names_are_flagged_unless_allowed() {
    let text = "postmaster@x.org\njane@x.org\nabuse@x.org\nnoreply@x.org\n";
    let reserved = ReservedNames::new(&["abuse".into()], Some("noreply@team.example"));
    let (p, clean) = preview_invites(
        &rows(text),
        &facts(10, 0, 0, 1000, 0),
        &Fake::default(),
        &reserved,
        NOW,
    );
    assert_eq!(
        codes(&p),
        [
            vec!["reserved_local_part"],
            vec![],
            vec![],
            vec!["reserved_local_part"]
        ]
    );
    assert!(p.rows[3].flags[0].message.contains("sender address"));
    // Flagged rows hold no place under the cap.
    assert_eq!(p.capacity.this_batch, 2);
    assert_eq!(clean.iter().flatten().count(), 2);
    let creation = vec![CreationRow {
        local_part: "Hostmaster".into(),
        ..Default::default()
    }];
    let (p, _) = preview_creation(
        &creation,
        &facts(10, 0, 0, 100, 0),
        &Fake::default(),
        &ReservedNames::default(),
        NOW,
        &|_, _| Ok(()),
    );
    assert_eq!(p.rows[0].flags[0].code, FlagCode::ReservedLocalPart);
}

#[test]
fn an_invite_to_the_mailbox_it_creates_is_flagged() {
    let p = run(
        "Loop@Team.Example\nloop2@elsewhere.org\n",
        &facts(10, 0, 0, 1000, 0),
        &Fake::default(),
    );
    assert_eq!(codes(&p), vec![vec!["invalid_recipient_email"], vec![]]);
    assert!(
        p.rows[0].flags[0]
            .message
            .contains("is the mailbox this invite creates"),
        "{:?}",
        p.rows[0].flags
    );
}

#[test]
fn control_and_hiding_characters_are_made_visible() {
    assert!(matches!(
        visible("ann@elsewhere.org"),
        std::borrow::Cow::Borrowed(_)
    ));
    assert_eq!(
        visible("\u{1b}]0;PWNED\u{7}\u{1b}[2Jx\r\ny\u{202e}z"),
        "\\u{1b}]0;PWNED\\u{7}\\u{1b}[2Jx\\u{d}\\u{a}y\\u{202e}z"
    );
    // Letters of every script stay as they are.
    assert_eq!(visible("Zoë Ørsted 王"), "Zoë Ørsted 王");
}
