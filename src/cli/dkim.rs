//! `muster dkim generate | list`: DKIM keys for the sender's domain and the
//! DNS records to publish for them.

use clap::Subcommand;

use super::EXIT_UNUSABLE;
use crate::config::Config;
use crate::mail::dkim::{self, Algorithm};

#[derive(Subcommand, Debug)]
pub enum DkimCommand {
    /// Make a signing key for DOMAIN and print the TXT record to publish.
    Generate {
        #[arg(long)]
        domain: String,
        /// ed25519 (small, modern) or rsa (2048 bits, read by every
        /// receiver); make one of each to sign with both.
        #[arg(long, default_value = "rsa")]
        algorithm: String,
        /// The selector (default muster-rsa or muster-ed25519).
        #[arg(long)]
        selector: Option<String>,
    },
    /// The keys in the data folder and the records they need.
    List {
        /// Only this domain (default: every domain with keys).
        #[arg(long)]
        domain: Option<String>,
    },
}

pub fn run(config: Config, cmd: DkimCommand) -> anyhow::Result<u8> {
    let dir = config.dkim_dir();
    match cmd {
        DkimCommand::Generate {
            domain,
            algorithm,
            selector,
        } => {
            let Some(alg) = Algorithm::parse(&algorithm) else {
                eprintln!("error: --algorithm {algorithm:?}: choose ed25519 or rsa");
                return Ok(EXIT_UNUSABLE);
            };
            let selector = selector.unwrap_or_else(|| format!("muster-{}", alg.tag()));
            match dkim::generate(&dir, &domain, &selector, alg) {
                Ok(key) => {
                    println!("Wrote {}", key.path.display());
                    println!("Publish this TXT record, then run `muster check --deliverability`:");
                    println!();
                    println!("Name: {}", key.name);
                    println!("Type: TXT");
                    println!("Value: {}", key.txt);
                    println!();
                    println!("As a zone file line:");
                    println!("{}", dkim::zone_line(&key.name, &key.txt));
                    println!();
                    let from = config.from_address();
                    if !from.ends_with(&format!("@{}", domain.to_ascii_lowercase())) {
                        println!(
                            "Note: Muster sends as {from}; it signs with the keys of that address's domain only."
                        );
                    }
                    println!(
                        "Muster signs with it from its next start (dkim.sign = {}).",
                        config.dkim.sign
                    );
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(EXIT_UNUSABLE)
                }
            }
        }
        DkimCommand::List { domain } => {
            let domains: Vec<String> = match domain {
                Some(d) => vec![d.to_ascii_lowercase()],
                None => std::fs::read_dir(&dir)
                    .map(|entries| {
                        let mut d: Vec<String> = entries
                            .flatten()
                            .filter(|e| e.path().is_dir())
                            .filter_map(|e| e.file_name().to_str().map(str::to_string))
                            .collect();
                        d.sort();
                        d
                    })
                    .unwrap_or_default(),
            };
            let mut any = false;
            for d in domains {
                for key in dkim::keys_of(&dir, &d)? {
                    any = true;
                    let name = format!("{}._domainkey.{d}", key.selector);
                    let value = format!("v=DKIM1; k={}; p={}", key.algorithm.tag(), key.public_b64);
                    println!("{}", dkim::zone_line(&name, &value));
                }
            }
            if !any {
                println!(
                    "No DKIM keys in {}; make one with `muster dkim generate --domain DOMAIN`.",
                    dir.display()
                );
            }
            Ok(0)
        }
    }
}
