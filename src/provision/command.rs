//! The command backend: an operator's program, run with `sh -c`, gets a
//! JSON request on stdin and answers JSON on stdout, so Muster can drive
//! any mail server.
//!
//! Requests: `{"action":"list"}` → `{"mailboxes":[{"address":"a@x.org","quota_mb":100}]}`;
//! `{"action":"create","address":…,"password_hash":…,"quota_mb":…,"display_name":…}`
//! → `{"status":"created"}` or `{"status":"exists"}`. A non-zero exit is a
//! failure; its stderr reaches the admin.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Created, HostIndex, HostMailbox, MailHost, NewMailbox, ProvisionError};

/// How long a listing is reused before the command is asked again.
const LIST_TTL: Duration = Duration::from_secs(10);

pub struct CommandHost {
    command: String,
    cache: Mutex<Option<(Instant, Arc<HostIndex>)>>,
}

#[derive(Deserialize)]
struct ListReply {
    mailboxes: Vec<ListedMailbox>,
}

#[derive(Deserialize)]
struct ListedMailbox {
    address: String,
    quota_mb: Option<u64>,
}

#[derive(Deserialize)]
struct CreateReply {
    status: String,
}

impl CommandHost {
    pub fn new(command: String) -> Self {
        Self {
            command,
            cache: Mutex::new(None),
        }
    }

    fn run(&self, request: &serde_json::Value) -> Result<Vec<u8>, ProvisionError> {
        let failed = |status: String, stderr: String| ProvisionError::Command { status, stderr };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed("not started".into(), e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading its input is judged by its exit status.
            let _ = stdin.write_all(request.to_string().as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| failed("lost".into(), e.to_string()))?;
        if !out.status.success() {
            return Err(failed(
                out.status.to_string(),
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .chars()
                    .take(1000)
                    .collect(),
            ));
        }
        Ok(out.stdout)
    }
}

impl MailHost for CommandHost {
    fn list(&self) -> Result<Arc<HostIndex>, ProvisionError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, index)) = cache.as_ref()
            && at.elapsed() < LIST_TTL
        {
            return Ok(index.clone());
        }
        let out = self.run(&serde_json::json!({ "action": "list" }))?;
        let reply: ListReply = serde_json::from_slice(&out)
            .map_err(|e| ProvisionError::CommandOutput(e.to_string()))?;
        let index = Arc::new(HostIndex::new(reply.mailboxes.into_iter().map(|m| {
            HostMailbox {
                address: m.address.to_lowercase(),
                quota_mb: m.quota_mb,
                suspended: false,
            }
        })));
        *cache = Some((Instant::now(), index.clone()));
        Ok(index)
    }

    fn create(&self, m: &NewMailbox) -> Result<Created, ProvisionError> {
        let out = self.run(&serde_json::json!({
            "action": "create",
            "address": m.address,
            "password_hash": m.password_hash,
            "quota_mb": m.quota_mb,
            "display_name": m.display_name,
        }))?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let reply: CreateReply = serde_json::from_slice(&out)
            .map_err(|e| ProvisionError::CommandOutput(e.to_string()))?;
        match reply.status.as_str() {
            "created" => Ok(Created::Created),
            "exists" => Ok(Created::AlreadyExists),
            other => Err(ProvisionError::CommandOutput(format!(
                "unknown status {other:?}"
            ))),
        }
    }

    fn describe(&self) -> String {
        format!("command `{}`", self.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::address::MailboxAddress;

    #[test]
    fn speaks_json_both_ways_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("req");
        let script = format!(
            "cat > {log}; if grep -q list {log}; then echo '{{\"mailboxes\":[{{\"address\":\"A@x.org\",\"quota_mb\":5}}]}}'; \
             elif grep -q bad@ {log}; then echo 'quota exceeded' >&2; exit 2; else echo '{{\"status\":\"created\"}}'; fi",
            log = log.display()
        );
        let host = CommandHost::new(script);
        let index = host.list().unwrap();
        assert!(index.contains("a@x.org"));
        assert_eq!(index.allocated_mb(), 5);
        let m = NewMailbox {
            address: MailboxAddress::parse("jane@x.org").unwrap(),
            password_hash: "{ARGON2ID}x".into(),
            quota_mb: None,
            display_name: Some("Jane".into()),
        };
        assert_eq!(host.create(&m).unwrap(), Created::Created);
        let sent: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
        assert_eq!(sent["address"], "jane@x.org");
        assert_eq!(sent["display_name"], "Jane");
        let bad = NewMailbox {
            address: MailboxAddress::parse("bad@x.org").unwrap(),
            ..m
        };
        let err = host.create(&bad).unwrap_err().to_string();
        assert!(
            err.contains("quota exceeded") && err.contains("exit status: 2"),
            "{err}"
        );
    }
}
