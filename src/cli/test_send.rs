//! `muster test-send --to ADDRESS`: one invite-shaped message sent the
//! way invites go, then whether it was taken and how SPF, DKIM and DMARC
//! judge it.

use std::sync::Arc;

use clap::Args;

use super::{EXIT_PROBLEMS, EXIT_UNUSABLE};
use crate::config::Config;
use crate::domain::address::RecipientEmail;
use crate::domain::duration::HumanDuration;
use crate::domain::roster::InviteRow;
use crate::service::{Muster, SystemClock, TestDelivery};
use crate::store::Actor;

#[derive(Args, Debug)]
pub struct TestSendArgs {
    /// Where the test goes.
    #[arg(long)]
    to: String,
    /// The invite it imitates: this recipient's (default a made-up
    /// colleague's), so the words, language and mailbox name are theirs.
    #[arg(long, default_value = "new.colleague@example.org")]
    recipient: String,
    /// The hosted domain (needed when Muster hosts several).
    #[arg(long)]
    domain: Option<String>,
    /// The link lifetime the words mention (e.g. 7d).
    #[arg(long)]
    expires: Option<String>,
}

pub async fn run(config: Config, args: TestSendArgs) -> anyhow::Result<u8> {
    let to = match RecipientEmail::parse(&args.to) {
        Ok(to) => to,
        Err(e) => {
            eprintln!("error: --to: {e}");
            return Ok(EXIT_UNUSABLE);
        }
    };
    let expires_in = match args.expires.as_deref().map(HumanDuration::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            eprintln!("error: --expires: {e}");
            return Ok(EXIT_UNUSABLE);
        }
    };
    let sender_domain = config.sender_domain();
    let signing = config.dkim.sign;
    let muster = Arc::new(Muster::open(Arc::new(config), Arc::new(SystemClock))?);
    let sent = match muster
        .send_test_invite(
            args.domain.as_deref(),
            &InviteRow::to(args.recipient),
            expires_in,
            &to,
            &Actor::cli(),
        )
        .await
    {
        Ok(sent) => sent,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_PROBLEMS);
        }
    };
    match &sent.delivery {
        TestDelivery::Sent { reply, via } => println!(
            "Sent to {to}: {} answered {reply}",
            via.as_deref().unwrap_or("the relay")
        ),
        TestDelivery::InOutbox(file) => {
            println!("No SMTP relay: the test for {to} was written to {file} and not emailed")
        }
    }
    if !sent.signed_with.is_empty() {
        println!("Signed with {}", sent.signed_with.join(", "));
    } else if !signing {
        println!("Not DKIM-signed: signing is off (dkim.sign = false)");
    } else {
        println!(
            "Not DKIM-signed: no key for {sender_domain}; `muster dkim generate --domain {sender_domain}` makes one"
        );
    }
    let a = &sent.authentication;
    let judged = [&a.dkim, &a.spf, &a.dmarc];
    if judged.iter().all(|v| v.result == "not_checked") {
        println!("Not judged: {}", a.dkim.words);
        return Ok(0);
    }
    for (name, v) in [("DKIM", &a.dkim), ("SPF", &a.spf), ("DMARC", &a.dmarc)] {
        println!("{name:<6}{:<12}{}", v.result.replace('_', " "), v.words);
    }
    println!(
        "Checked as a receiver checks it, against the DNS published now; `muster check --deliverability` says what to publish."
    );
    let fine = judged.iter().all(|v| v.passed());
    Ok(if fine { 0 } else { EXIT_PROBLEMS })
}
