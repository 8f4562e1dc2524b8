//! Email templates: `{kind}.{locale}.{subject|txt|html}` files, embedded in
//! the binary and overridable by files of the same name in
//! `invites.templates_dir`. Placeholders are `{{name}}`; every value is
//! escaped in HTML and stripped of line breaks in the subject.

use std::collections::HashMap;
use std::path::Path;

use rust_embed::RustEmbed;

use crate::domain::template::{Escape, Template};
pub use crate::domain::template::{escape_html, escape_html_into};

#[derive(RustEmbed)]
#[folder = "src/mail/templates/"]
struct Embedded;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template folder {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] crate::domain::template::TemplateError),
    #[error("template {file} is not UTF-8")]
    NotUtf8 { file: String },
    #[error("no template {0} (neither built in nor in the template folder)")]
    Missing(String),
}

/// Which email: the placeholders each may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Invite,
    /// A reminder of an invite's link, still unused.
    Reminder,
    /// The admin's own password reset.
    Reset,
    /// A mailbox owner's new password (a password-reset link).
    Password,
    /// The first message in a new mailbox.
    Welcome,
    /// An admin told what became of one invite.
    Notice,
    /// An admin's daily digest of their invites.
    Digest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Invite => "invite",
            Kind::Reminder => "reminder",
            Kind::Reset => "reset",
            Kind::Password => "password",
            Kind::Welcome => "welcome",
            Kind::Notice => "notice",
            Kind::Digest => "digest",
        }
    }

    fn placeholders(self) -> &'static [&'static str] {
        match self {
            Kind::Invite => &[
                "organisation",
                "greeting_name",
                "mailbox",
                "recipient_email",
                "link",
                "expires",
                "webmail_url",
            ],
            Kind::Reminder => &[
                "organisation",
                "greeting_name",
                "mailbox",
                "recipient_email",
                "link",
                "expires",
                "time_left",
                "webmail_url",
            ],
            Kind::Reset => &["organisation", "account", "link", "expires"],
            Kind::Password => &[
                "organisation",
                "greeting_name",
                "mailbox",
                "link",
                "expires",
            ],
            Kind::Welcome => &[
                "organisation",
                "greeting_name",
                "mailbox",
                "inviter",
                "webmail_url",
                "imap",
                "smtp",
                "profile_url",
            ],
            Kind::Notice => &["organisation", "headline", "details", "link", "link_label"],
            Kind::Digest => &[
                "organisation",
                "until",
                "redeemed_count",
                "redeemed_list",
                "pending_count",
                "pending_list",
                "expiring_count",
                "expiring_list",
                "setup_failed_count",
                "setup_failed_list",
                "failed_count",
                "failed_list",
                "link_redeemed",
                "link_pending",
                "link_expiring",
                "link_setup_failed",
                "link_failed",
            ],
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "invite" => Some(Kind::Invite),
            "reminder" => Some(Kind::Reminder),
            "reset" => Some(Kind::Reset),
            "password" => Some(Kind::Password),
            "welcome" => Some(Kind::Welcome),
            "notice" => Some(Kind::Notice),
            "digest" => Some(Kind::Digest),
            _ => None,
        }
    }
}

/// The three parts of one email, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone)]
pub struct Templates {
    /// (kind, locale, part) → compiled template.
    parts: HashMap<(Kind, String, &'static str), Template>,
}

const PARTS: [&str; 3] = ["subject", "txt", "html"];

fn split_name(name: &str) -> Option<(Kind, String, &'static str)> {
    let mut it = name.splitn(3, '.');
    let kind = Kind::parse(it.next()?)?;
    let locale = it.next()?.to_ascii_lowercase();
    let part = it.next()?;
    let part = PARTS.iter().find(|p| **p == part)?;
    Some((kind, locale, part))
}

impl Templates {
    /// The built-in templates, then any overrides from `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut parts = HashMap::new();
        // `name` says what the file is; `file` names it in errors.
        let mut add = |name: &str, file: &str, text: &str| -> Result<(), TemplateError> {
            if let Some((kind, locale, part)) = split_name(name) {
                let compiled =
                    Template::parse(file, text.trim_end_matches('\n'), kind.placeholders(), &[])?;
                parts.insert((kind, locale, part), compiled);
            }
            Ok(())
        };
        for file in Embedded::iter() {
            let data =
                Embedded::get(&file).ok_or_else(|| TemplateError::Missing(file.to_string()))?;
            let text = std::str::from_utf8(&data.data).map_err(|_| TemplateError::NotUtf8 {
                file: file.to_string(),
            })?;
            add(&file, &file, text)?;
        }
        if let Some(dir) = dir {
            let read_err = |source| TemplateError::Read {
                path: dir.display().to_string(),
                source,
            };
            for entry in std::fs::read_dir(dir).map_err(read_err)? {
                let entry = entry.map_err(read_err)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if split_name(&name).is_none() {
                    continue;
                }
                let path = entry.path();
                let bytes = std::fs::read(&path).map_err(read_err)?;
                let text = String::from_utf8(bytes).map_err(|_| TemplateError::NotUtf8 {
                    file: path.display().to_string(),
                })?;
                add(&name, &path.display().to_string(), &text)?;
            }
        }
        let templates = Self { parts };
        for kind in [
            Kind::Invite,
            Kind::Reminder,
            Kind::Reset,
            Kind::Password,
            Kind::Welcome,
            Kind::Notice,
            Kind::Digest,
        ] {
            for part in PARTS {
                templates.get(kind, "en", part)?;
            }
        }
        Ok(templates)
    }

    fn get(
        &self,
        kind: Kind,
        locale: &str,
        part: &'static str,
    ) -> Result<&Template, TemplateError> {
        self.parts
            .get(&(kind, locale.to_string(), part))
            .ok_or_else(|| TemplateError::Missing(format!("{}.{locale}.{part}", kind.name())))
    }

    /// The best locale on offer for a requested tag: `de-at` → `de` → `en`.
    pub fn locale_for(&self, kind: Kind, asked: Option<&str>) -> String {
        crate::domain::template::best_locale(asked, |l| {
            self.parts.contains_key(&(kind, l.to_string(), "txt"))
        })
    }

    /// Renders the email. `values` pairs placeholder names with values.
    pub fn render(
        &self,
        kind: Kind,
        locale: &str,
        values: &[(&str, &str)],
    ) -> Result<Rendered, TemplateError> {
        let ordered: Vec<&str> = kind
            .placeholders()
            .iter()
            .map(|p| {
                values
                    .iter()
                    .find(|(k, _)| k == p)
                    .map(|(_, v)| *v)
                    .unwrap_or("")
            })
            .collect();
        Ok(Rendered {
            subject: self
                .get(kind, locale, "subject")?
                .render(&ordered, Escape::Header),
            text: self
                .get(kind, locale, "txt")?
                .render(&ordered, Escape::Text),
            html: self
                .get(kind, locale, "html")?
                .render(&ordered, Escape::Html),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_load_and_escape() {
        let t = Templates::load(None).unwrap();
        assert_eq!(t.locale_for(Kind::Invite, Some("de-at")), "de");
        assert_eq!(t.locale_for(Kind::Invite, Some("fr")), "en");
        let r = t
            .render(
                Kind::Invite,
                "en",
                &[
                    ("organisation", "A&B <Team>"),
                    ("greeting_name", "<script>x</script>"),
                    ("mailbox", "jane@team.example"),
                    ("link", "https://m.example/invite/abc"),
                    ("expires", "1 January 2027"),
                ],
            )
            .unwrap();
        assert_eq!(r.subject, "Set up your new mailbox jane@team.example");
        assert!(r.html.contains("A&amp;B &lt;Team&gt;"));
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(!r.html.contains("<script>"));
        assert!(r.text.contains("https://m.example/invite/abc"));
    }

    #[test]
    fn the_invite_mentions_webmail_only_when_there_is_one() {
        let t = Templates::load(None).unwrap();
        let with = t
            .render(Kind::Invite, "en", &[("webmail_url", "https://w.example/")])
            .unwrap();
        assert!(with.text.contains("a button takes you to webmail"));
        let without = t.render(Kind::Invite, "en", &[]).unwrap();
        assert!(!without.text.contains("webmail"), "{}", without.text);
        assert!(!without.html.contains("webmail"));
    }

    #[test]
    fn overrides_are_checked_for_unknown_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("invite.en.subject"),
            "Welcome to {{organisation}}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(Kind::Invite, "en", &[("organisation", "Acme\r\nBcc: x")])
            .unwrap();
        assert_eq!(r.subject, "Welcome to Acme  Bcc: x");
        std::fs::write(dir.path().join("invite.fr.txt"), "Bonjour {{nom}}").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("invite.fr.txt") && err.contains("{{nom}}"),
            "{err}"
        );
    }
}
