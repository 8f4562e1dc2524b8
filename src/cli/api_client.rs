//! `muster invite --api URL --token T FILE`: sends a list of any length to
//! a running Muster in calls of at most 100 items, once the whole file is
//! checked (see `api_check`): a flagged row stops it before the first
//! call, unless `--only-clean`. Rows whose invite is already pending are
//! not sent again, so running the same file again after a failure sends
//! only what was not created; each call's Idempotency-Key is the hash of
//! its items, so a call whose answer was lost is replayed, not repeated.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::EXIT_PROBLEMS;
use crate::domain::roster::{InviteRow, parse_allocation};

pub struct ApiTarget {
    pub url: String,
    pub token: String,
}

/// What happened to one chunk (or to the check before the first).
pub(super) enum ChunkResult {
    Created {
        batch_id: String,
        invites: usize,
    },
    /// No answer at all: the calls after it would fare no better.
    Unreachable(String),
    /// Sent, but no answer in time: Muster may have made it (the same
    /// command again replays it) or not.
    NoAnswer(String),
    Refused {
        status: u16,
        message: String,
        errors: Vec<String>,
    },
}

/// What every call of a long list carries besides its rows.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    pub domain: Option<String>,
    /// A link lifetime such as `7d`.
    pub expires: Option<String>,
    /// `50%`, `48h`…; an empty list turns reminders off.
    pub reminders: Option<Vec<String>>,
}

fn chunk_body(rows: &[InviteRow], options: &BatchOptions) -> Result<Value, String> {
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let local = r.local_part.clone().unwrap_or_else(|| {
            r.recipient_email
                .split('@')
                .next()
                .unwrap_or("")
                .to_lowercase()
        });
        let mut item = json!({"local_part": local, "recipient_email": r.recipient_email});
        if let Some(raw) = &r.storage_allocation_mb {
            let mb = parse_allocation(raw).map_err(|e| {
                format!(
                    "line {}: {e}",
                    r.line.map(|l| l.to_string()).unwrap_or_default()
                )
            })?;
            item["storage_allocation_mb"] = json!(mb);
        }
        if let Some(name) = &r.display_name {
            item["display_name"] = json!(name);
        }
        if let Some(locale) = &r.locale {
            item["locale"] = json!(locale);
        }
        items.push(item);
    }
    let mut body = json!({"items": items});
    if let Some(d) = &options.domain {
        body["domain"] = json!(d);
    }
    if let Some(e) = &options.expires {
        body["expires_in"] = json!(e);
    }
    if let Some(r) = &options.reminders {
        body["reminders"] = json!(r);
    }
    Ok(body)
}

/// A flag naming another item of the same call ("… by item 4", counted
/// from 0 as the API counts) names its file line instead, as every line
/// the CLI prints does.
pub(super) fn by_line(message: &str, rows: &[InviteRow]) -> String {
    let Some((before, after)) = message.split_once(" by item ") else {
        return message.to_string();
    };
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let line = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| rows.get(n))
        .and_then(|r| r.line);
    match line {
        Some(line) => format!("{before} by line {line}{}", &after[digits.len()..]),
        None => message.to_string(),
    }
}

fn key_for(body: &Value) -> String {
    let digest = Sha256::digest(body.to_string().as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("muster-cli-{hex}")
}

async fn send(
    client: &reqwest::Client,
    target: &ApiTarget,
    body: &Value,
    rows: &[InviteRow],
) -> ChunkResult {
    let url = format!(
        "{}/api/v1/mailboxes/invites:bulk",
        target.url.trim_end_matches('/')
    );
    let resp = client
        .post(url)
        .bearer_auth(&target.token)
        .header("idempotency-key", key_for(body))
        .json(body)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return ChunkResult::NoAnswer(e.to_string()),
        Err(e) => return ChunkResult::Unreachable(e.to_string()),
    };
    let status = resp.status().as_u16();
    let data: Value = resp.json().await.unwrap_or(Value::Null);
    if status == 201 {
        return ChunkResult::Created {
            batch_id: data["batch_id"].as_str().unwrap_or("").to_string(),
            invites: data["invites"].as_array().map(Vec::len).unwrap_or(0),
        };
    }
    refusal(status, &data, rows)
}

/// A refusal's words, with each item's error at its file line.
pub(super) fn refusal(status: u16, data: &Value, rows: &[InviteRow]) -> ChunkResult {
    let errors = data["errors"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    let idx = e["index"].as_u64().unwrap_or(0) as usize;
                    let line = rows
                        .get(idx)
                        .and_then(|r| r.line)
                        .map(|l| format!("line {l}"))
                        .unwrap_or_else(|| format!("item {idx}"));
                    format!(
                        "{line}: {} ({})",
                        by_line(e["message"].as_str().unwrap_or(""), rows),
                        e["code"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ChunkResult::Refused {
        status,
        message: data["message"]
            .as_str()
            .unwrap_or("the request was refused")
            .to_string(),
        errors,
    }
}

/// How many rows go in one call, and in one preview before the first
/// (the running Muster's own limits; the local configuration's where it
/// does not say).
pub struct Sizes {
    pub call: usize,
    pub window: usize,
}

pub async fn run(
    target: ApiTarget,
    rows: Vec<InviteRow>,
    options: BatchOptions,
    only_clean: bool,
    sizes: Sizes,
) -> anyhow::Result<u8> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let (checked, sizes) = match super::api_check::check(&client, &target, &rows, &options, &sizes)
        .await
    {
        Ok(c) => c,
        Err(failed) => {
            let (text, advice) = match failed {
                ChunkResult::Unreachable(why) => (
                    format!("cannot reach Muster at {}: {why}", target.url),
                    Advice::Reach,
                ),
                ChunkResult::NoAnswer(why) => (format!("no answer in time ({why})"), Advice::Later),
                ChunkResult::Refused {
                    status,
                    message,
                    errors,
                } => {
                    let mut text = format!("refused ({status}): {message}");
                    for e in errors {
                        text.push_str(&format!("\n  {e}"));
                    }
                    (text, advice_for(status))
                }
                ChunkResult::Created { .. } => unreachable!("a check creates nothing"),
            };
            println!("checking the file: {text}; nothing was sent");
            return Ok(advise(advice));
        }
    };
    if !checked.already.is_empty() {
        let n = checked.already.len();
        let mut at = checked.already[..n.min(3)].join(", ");
        if n > 3 {
            at.push_str(&format!(" and {} more", n - 3));
        }
        let rows = if n == 1 {
            "row's invite is"
        } else {
            "rows' invites are"
        };
        println!("{n} {rows} already pending ({at}): not sent again.");
    }
    for line in &checked.flagged {
        println!("{line}");
    }
    if checked.flagged_rows > 0 && !only_clean {
        eprintln!(
            "\n{}",
            super::output::flagged_refusal(checked.flagged_rows, checked.clean.len())
        );
        return Ok(EXIT_PROBLEMS);
    }
    if checked.clean.is_empty() {
        if checked.flagged_rows > 0 {
            eprintln!("\nNothing was sent: no row is clean.");
            return Ok(EXIT_PROBLEMS);
        }
        println!("Nothing to send: every row's invite is already pending.");
        return Ok(0);
    }
    if checked.flagged_rows > 0 {
        println!("{} flagged rows are left out.", checked.flagged_rows);
    }
    let rows = checked.clean;
    let chunks: Vec<&[InviteRow]> = rows.chunks(sizes.call).collect();
    let mut bodies = Vec::with_capacity(chunks.len());
    for c in &chunks {
        match chunk_body(c, &options) {
            Ok(b) => bodies.push(b),
            Err(e) => {
                eprintln!("error: {e}; nothing was sent");
                return Ok(super::EXIT_UNUSABLE);
            }
        }
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(rows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let (mut created, mut failed_chunks, mut done) = (0usize, 0usize, 0usize);
    // What the refusals call for, worst first: the next step to suggest.
    let mut advice = Advice::None;
    // Above the progress bar when there is one.
    let say = |text: String| match &bar {
        Some(b) => b.println(text),
        None => println!("{text}"),
    };
    for (n, (chunk, body)) in chunks.iter().zip(&bodies).enumerate() {
        let first = chunk.first().and_then(|r| r.line).unwrap_or(0);
        let last = chunk.last().and_then(|r| r.line).unwrap_or(0);
        let call = format!("call {}/{}: lines {first}-{last}", n + 1, chunks.len());
        match send(&client, &target, body, chunk).await {
            ChunkResult::Created { batch_id, invites } => {
                created += invites;
                say(format!("{call}: {invites} invites in batch {batch_id}"));
            }
            ChunkResult::Unreachable(why) => {
                failed_chunks += chunks.len() - n;
                advice = Advice::Reach;
                say(format!(
                    "{call}: cannot reach Muster at {}: {why}; nothing more was sent",
                    target.url
                ));
                break;
            }
            ChunkResult::NoAnswer(why) => {
                failed_chunks += 1;
                advice = advice.max(Advice::Later);
                say(format!(
                    "{call}: no answer in time ({why}); it may have been made"
                ));
            }
            ChunkResult::Refused {
                status,
                message,
                errors,
            } => {
                failed_chunks += 1;
                let this = advice_for(status);
                advice = advice.max(this);
                let mut text = format!("{call}: refused ({status}): {message}");
                for e in errors {
                    text.push_str(&format!("\n  {e}"));
                }
                if this == Advice::Token {
                    // Every later call carries the same token.
                    failed_chunks += chunks.len() - n - 1;
                    text.push_str("; nothing more was sent");
                    say(text);
                    break;
                }
                say(text);
            }
        }
        done += chunk.len();
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let calls = match chunks.len() {
        1 => "1 call".to_string(),
        n => format!("{n} calls"),
    };
    let outcome = match failed_chunks {
        0 => "all accepted".to_string(),
        f => format!("{} accepted, {f} refused or not sent", chunks.len() - f),
    };
    println!(
        "{calls}: {outcome}; {} invites created or already created.",
        created + checked.already.len()
    );
    Ok(advise(advice))
}

/// What a refusal's status calls for.
fn advice_for(status: u16) -> Advice {
    match status {
        401 | 403 => Advice::Token,
        400 | 409 | 413 | 422 => Advice::Rows,
        _ => Advice::Later,
    }
}

/// Prints the next step, and returns the exit code.
fn advise(advice: Advice) -> u8 {
    let again = "run the same command again: what was created is not created twice.";
    match advice {
        Advice::None => return 0,
        Advice::Rows => println!("Fix the rows above and {again}"),
        Advice::Later => println!("Muster could not take them now; later, {again}"),
        Advice::Token => println!(
            "Check --token (from the web app's API tokens page or `muster token create`), then {again}"
        ),
        Advice::Reach => {
            println!("Check the --api address and that Muster is running there, then {again}")
        }
    }
    EXIT_PROBLEMS
}

/// The next step after refusals, in rising order of what blocks every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Advice {
    None,
    Rows,
    Later,
    Token,
    Reach,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_naming_another_row_names_its_file_line() {
        let rows: Vec<InviteRow> = (0..3)
            .map(|i| InviteRow {
                line: Some(101 + i),
                ..InviteRow::to(format!("p{i}@x.org"))
            })
            .collect();
        assert_eq!(
            by_line("a@x.org is already invited by item 1", &rows),
            "a@x.org is already invited by line 102"
        );
        assert_eq!(
            by_line("the mailbox a@y.org is already used by item 2; more", &rows),
            "the mailbox a@y.org is already used by line 103; more"
        );
        // Out of range or no row named: as sent.
        assert_eq!(by_line("used by item 9", &rows), "used by item 9");
        assert_eq!(by_line("no row here", &rows), "no row here");
    }
}
