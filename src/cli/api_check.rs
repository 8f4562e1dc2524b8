//! Before `muster invite --api` sends a row: the running Muster previews
//! the whole file, a window of its batch limit at a time, so a flagged row
//! stops the run before the first call (as the local `muster invite` does)
//! and `--only-clean` leaves the flagged rows out. A file longer than one
//! window is also checked across windows: a row repeating an earlier
//! window's address, and each clean row, in file order, against what the
//! rows above leave of the cap and the storage pool.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::api_client::{ApiTarget, BatchOptions, ChunkResult, Sizes, by_line, refusal};
use crate::domain::address::DomainName;
use crate::domain::capacity::{Capacity, HostLimit};
use crate::domain::preview::over_pool_words;
use crate::domain::roster::InviteRow;

/// The file as the running Muster sees it.
#[derive(Debug, Default)]
pub struct Checked {
    /// The rows to send, in file order.
    pub clean: Vec<InviteRow>,
    /// Where the rows are ("line N") whose mailbox already has a pending
    /// invite: not sent again (a run after a failure finds what it sent).
    pub already: Vec<String>,
    /// Every other problem, as "line N: message (code)".
    pub flagged: Vec<String>,
    /// How many rows are flagged.
    pub flagged_rows: usize,
}

/// The row as the preview takes it, with its file line.
fn row_body(r: &InviteRow) -> Value {
    let mut row = json!({"recipient_email": r.recipient_email});
    for (name, value) in [
        ("local_part", &r.local_part),
        ("storage_allocation_mb", &r.storage_allocation_mb),
        ("display_name", &r.display_name),
        ("locale", &r.locale),
    ] {
        if let Some(v) = value {
            row[name] = json!(v);
        }
    }
    if let Some(line) = r.line {
        row["line"] = json!(line);
    }
    row
}

fn line_of(r: &InviteRow, index: usize) -> String {
    match r.line {
        Some(l) => format!("line {l}"),
        None => format!("row {}", index + 1),
    }
}

/// What the clean rows of every window take together.
#[derive(Default)]
struct Totals {
    rows: u64,
    allocated_mb: u64,
    /// From the first window: places and pool left before any row.
    left: Option<(i64, i64, Value)>,
}

impl Totals {
    /// A flag for a clean row that the rows above (in every window so far)
    /// leave no place or no pool for: each window's preview counts only
    /// its own rows, so a later window's are counted here, in file order.
    fn past_limits(&self, mb: u64) -> Option<(String, String)> {
        let (places, pool, capacity) = self.left.as_ref()?;
        if self.rows as i64 >= *places {
            return Some(("over_cap".into(), over_words(capacity, self.rows)));
        }
        if mb > 0 && (self.allocated_mb + mb) as i64 > *pool {
            return Some((
                "allocation_over_pool".into(),
                over_pool_words(mb, self.allocated_mb, *pool),
            ));
        }
        None
    }
}

/// The preview's own words for a row past the cap (or the mail server's
/// limit), from the capacity the running Muster sent.
fn over_words(capacity: &Value, taken_above: u64) -> String {
    let number = |k: &str| capacity[k].as_u64().unwrap_or(0);
    let domain = capacity["domain"].as_str().unwrap_or("");
    let Ok(name) = DomainName::parse(domain) else {
        return format!("past the cap for {domain}: leave rows out");
    };
    Capacity {
        domain: name,
        cap: number("cap"),
        existing: number("existing"),
        pending: number("pending"),
        pool_mb: number("pool_mb"),
        pool_allocated_mb: number("pool_allocated_mb"),
        host_limit: capacity["host_limit"]
            .as_u64()
            .map(|allowed| HostLimit::Mailboxes {
                allowed,
                set_in: "the mail server".into(),
            }),
    }
    .over_words(taken_above)
}

/// A row whose mailbox has a pending invite.
struct Awaiting {
    at: String,
    mailbox: String,
    recipient: String,
    message: String,
}

/// One call to the running Muster: its JSON answer when it succeeded,
/// else what went wrong (with `rows` for a refusal's per-item words).
async fn ask(
    request: reqwest::RequestBuilder,
    target: &ApiTarget,
    rows: &[InviteRow],
) -> Result<Value, ChunkResult> {
    let resp = match request.bearer_auth(&target.token).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Err(ChunkResult::NoAnswer(e.to_string())),
        Err(e) => return Err(ChunkResult::Unreachable(e.to_string())),
    };
    let status = resp.status().as_u16();
    let data: Value = resp.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Err(refusal(status, &data, rows));
    }
    Ok(data)
}

/// Every pending invite's mailbox and recipient, page by page.
async fn pending_recipients(
    client: &reqwest::Client,
    target: &ApiTarget,
) -> Result<HashMap<String, String>, ChunkResult> {
    let url = format!("{}/api/v1/invites", target.url.trim_end_matches('/'));
    let mut pending = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_url = format!("{url}?state=pending&limit=500");
        if let Some(c) = &cursor {
            page_url.push_str("&cursor=");
            for b in c.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                        page_url.push(b as char)
                    }
                    _ => page_url.push_str(&format!("%{b:02X}")),
                }
            }
        }
        let page = ask(client.get(&page_url), target, &[]).await?;
        for i in page["invites"].as_array().into_iter().flatten() {
            if let (Some(m), Some(r)) = (i["mailbox"].as_str(), i["recipient_email"].as_str()) {
                pending.insert(m.to_lowercase(), r.to_lowercase());
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(pending),
        }
    }
}

/// The running Muster's own limits (GET /settings): rows a preview takes,
/// and items a call takes; `local` where it does not say.
async fn server_sizes(
    client: &reqwest::Client,
    target: &ApiTarget,
    local: &Sizes,
) -> Result<Sizes, ChunkResult> {
    let url = format!("{}/api/v1/settings", target.url.trim_end_matches('/'));
    let settings = ask(client.get(&url), target, &[]).await?;
    let size = |key: &str, local: usize| {
        settings[key]
            .as_u64()
            .map_or(local, |n| (n as usize).max(1))
    };
    Ok(Sizes {
        call: size("api_call_limit", local.call),
        window: size("batch_limit", local.window),
    })
}

/// The file checked by the running Muster, and the sizes to send it in.
pub async fn check(
    client: &reqwest::Client,
    target: &ApiTarget,
    rows: &[InviteRow],
    options: &BatchOptions,
    local: &Sizes,
) -> Result<(Checked, Sizes), ChunkResult> {
    let sizes = server_sizes(client, target, local).await?;
    let window = sizes.window;
    let url = format!(
        "{}/api/v1/previews/invites",
        target.url.trim_end_matches('/')
    );
    let mut checked = Checked::default();
    let mut totals = Totals::default();
    // Addresses and mailboxes of clean rows, with their lines: a later
    // window's repeat is flagged here (each window flags its own).
    let mut recipients: HashMap<String, String> = HashMap::new();
    let mut mailboxes: HashMap<String, String> = HashMap::new();
    // Rows whose mailbox has a pending invite: already sent, when it went
    // to the same recipient (a run after a failure).
    let mut awaiting: Vec<Awaiting> = Vec::new();
    for (w, part) in rows.chunks(window.max(1)).enumerate() {
        let mut body = json!({"rows": part.iter().map(row_body).collect::<Vec<_>>()});
        if let Some(d) = &options.domain {
            body["domain"] = json!(d);
        }
        let data = ask(client.post(&url).json(&body), target, part).await?;
        let capacity = &data["capacity"];
        if totals.left.is_none() {
            let places = capacity["left_after"].as_i64().unwrap_or(0)
                + capacity["this_batch"].as_i64().unwrap_or(0);
            let pool = capacity["pool_left_after_mb"].as_i64().unwrap_or(0)
                + capacity["batch_allocated_mb"].as_i64().unwrap_or(0);
            totals.left = Some((places, pool, capacity.clone()));
        }
        let empty = Vec::new();
        let answers = data["rows"].as_array().unwrap_or(&empty);
        for (i, (row, answer)) in part.iter().zip(answers).enumerate() {
            let at = line_of(row, w * window + i);
            // A row the file's reader found broken (a CSV row with extra
            // fields, say) is sent as the fields it could read: flagged here.
            let mut flags: Vec<(String, String)> = row
                .problem
                .iter()
                .map(|p| ("unreadable_row".to_string(), p.clone()))
                .collect();
            flags.extend(
                answer["flags"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|f| {
                        (
                            f["code"].as_str().unwrap_or("").to_string(),
                            by_line(f["message"].as_str().unwrap_or(""), part),
                        )
                    }),
            );
            let recipient = answer["recipient_email"]
                .as_str()
                .unwrap_or(&row.recipient_email)
                .to_lowercase();
            let mailbox = answer["mailbox"].as_str().map(str::to_lowercase);
            if flags.is_empty() {
                if let Some(first) = recipients.get(&recipient) {
                    flags.push((
                        "duplicate_recipient".into(),
                        format!("{recipient} is already invited by {first}"),
                    ));
                } else if let Some(first) = mailbox.as_ref().and_then(|m| mailboxes.get(m)) {
                    flags.push((
                        "duplicate_mailbox".into(),
                        format!(
                            "the mailbox {} is already used by {first}",
                            mailbox.as_deref().unwrap_or("")
                        ),
                    ));
                }
            }
            let mb = answer["storage_allocation_mb"].as_u64().unwrap_or(0);
            if flags.is_empty()
                && let Some(past) = totals.past_limits(mb)
            {
                flags.push(past);
            }
            if flags.is_empty() {
                recipients.insert(recipient, at.clone());
                if let Some(m) = mailbox {
                    mailboxes.insert(m, at.clone());
                }
                totals.rows += 1;
                totals.allocated_mb += mb;
                checked.clean.push(row.clone());
            } else if flags.iter().all(|(code, _)| code == "invite_pending")
                && let Some(m) = mailbox
            {
                awaiting.push(Awaiting {
                    at,
                    mailbox: m,
                    recipient,
                    message: flags[0].1.clone(),
                });
            } else {
                checked.flagged_rows += 1;
                for (code, message) in flags {
                    checked.flagged.push(format!("{at}: {message} ({code})"));
                }
            }
        }
    }
    if !awaiting.is_empty() {
        let pending = pending_recipients(client, target).await?;
        for a in awaiting {
            match pending.get(&a.mailbox) {
                Some(to) if *to == a.recipient => checked.already.push(a.at),
                other => {
                    let words = match other {
                        Some(to) => format!(
                            "an invite for {} is already pending, to {to}: resend or revoke that one, or choose another mailbox name (local_part)",
                            a.mailbox
                        ),
                        None => a.message,
                    };
                    checked.flagged_rows += 1;
                    checked
                        .flagged
                        .push(format!("{}: {words} (invite_pending)", a.at));
                }
            }
        }
    }
    Ok((checked, sizes))
}
