//! Email templates: `{kind}.{locale}.{subject|txt|html}` files, embedded in
//! the binary and overridable by files of the same name in
//! `invites.templates_dir`. Placeholders are `{{name}}`; every value is
//! escaped in HTML and stripped of line breaks in the subject.

use std::collections::HashMap;
use std::path::Path;

use rust_embed::RustEmbed;

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
    #[error("template {file}: unknown placeholder {{{{{name}}}}}; known: {known}")]
    UnknownPlaceholder {
        file: String,
        name: String,
        known: String,
    },
    #[error("template {file}: a {{{{ has no closing }}}}")]
    Unclosed { file: String },
    #[error(
        "template {file}: the section {{{{#{name}}}}} (or {{{{^{name}}}}}) and its {{{{/{name}}}}} do not pair up"
    )]
    Section { file: String, name: String },
    #[error("template {file} is not UTF-8")]
    NotUtf8 { file: String },
    #[error("no template {0} (neither built in nor in the template folder)")]
    Missing(String),
}

/// Which email: the placeholders each may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Invite,
    Reset,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Invite => "invite",
            Kind::Reset => "reset",
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
            Kind::Reset => &["organisation", "account", "link", "expires"],
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "invite" => Some(Kind::Invite),
            "reset" => Some(Kind::Reset),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Value(usize),
    /// `{{#name}}…{{/name}}` (shown when the value is not empty) or
    /// `{{^name}}…{{/name}}` (shown when it is).
    Section {
        index: usize,
        inverted: bool,
        body: Vec<Segment>,
    },
}

#[derive(Debug, Clone)]
struct Compiled(Vec<Segment>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Html,
    /// One line: control characters become spaces.
    Header,
    Text,
}

/// Escapes text for HTML content and quoted attribute values; the one
/// escaper for emails and pages.
pub fn escape_html_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_html_into(s, &mut out);
    out
}

impl Compiled {
    fn parse(file: &str, text: &str, known: &[&str]) -> Result<Self, TemplateError> {
        let index_of = |name: &str| {
            known
                .iter()
                .position(|k| *k == name)
                .ok_or_else(|| TemplateError::UnknownPlaceholder {
                    file: file.to_string(),
                    name: name.to_string(),
                    known: known.join(", "),
                })
        };
        // Open sections: (index, inverted, name, the segments before it).
        let mut open: Vec<(usize, bool, String, Vec<Segment>)> = Vec::new();
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                segments.push(Segment::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
                file: file.to_string(),
            })?;
            let tag = after[..end].trim();
            if let Some(name) = tag.strip_prefix('#').or_else(|| tag.strip_prefix('^')) {
                let name = name.trim();
                let index = index_of(name)?;
                let outer = std::mem::take(&mut segments);
                open.push((index, tag.starts_with('^'), name.to_string(), outer));
            } else if let Some(name) = tag.strip_prefix('/') {
                let name = name.trim();
                let (index, inverted, opened, outer) = open
                    .pop()
                    .filter(|(_, _, n, _)| n == name)
                    .ok_or_else(|| TemplateError::Section {
                        file: file.to_string(),
                        name: name.to_string(),
                    })?;
                debug_assert_eq!(opened, name);
                let body = std::mem::replace(&mut segments, outer);
                segments.push(Segment::Section {
                    index,
                    inverted,
                    body,
                });
            } else {
                segments.push(Segment::Value(index_of(tag)?));
            }
            rest = &after[end + 2..];
        }
        if let Some((_, _, name, _)) = open.pop() {
            return Err(TemplateError::Section {
                file: file.to_string(),
                name,
            });
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_string()));
        }
        Ok(Self(segments))
    }

    fn render(&self, values: &[&str], escape: Escape) -> String {
        let mut out = String::with_capacity(2048);
        render_into(&self.0, values, escape, &mut out);
        out
    }
}

fn render_into(segments: &[Segment], values: &[&str], escape: Escape, out: &mut String) {
    let value = |i: usize| values.get(i).copied().unwrap_or("");
    for s in segments {
        match s {
            Segment::Literal(l) => out.push_str(l),
            Segment::Value(i) => {
                let v = value(*i);
                match escape {
                    Escape::Html => escape_html_into(v, out),
                    Escape::Header => {
                        out.extend(v.chars().map(|c| if c.is_control() { ' ' } else { c }))
                    }
                    Escape::Text => out.push_str(v),
                }
            }
            Segment::Section {
                index,
                inverted,
                body,
            } => {
                if value(*index).is_empty() == *inverted {
                    render_into(body, values, escape, out);
                }
            }
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
    parts: HashMap<(Kind, String, &'static str), Compiled>,
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
                    Compiled::parse(file, text.trim_end_matches('\n'), kind.placeholders())?;
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
        for kind in [Kind::Invite, Kind::Reset] {
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
    ) -> Result<&Compiled, TemplateError> {
        self.parts
            .get(&(kind, locale.to_string(), part))
            .ok_or_else(|| TemplateError::Missing(format!("{}.{locale}.{part}", kind.name())))
    }

    /// The best locale on offer for a requested tag: `de-at` → `de` → `en`.
    pub fn locale_for(&self, kind: Kind, asked: Option<&str>) -> String {
        let asked = asked.unwrap_or("en").to_ascii_lowercase();
        let lang = asked.split('-').next().unwrap_or("en").to_string();
        [asked, lang]
            .into_iter()
            .find(|l| self.parts.contains_key(&(kind, l.clone(), "txt")))
            .unwrap_or_else(|| "en".to_string())
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
    fn sections_show_on_a_value_or_its_absence() {
        let c = Compiled::parse(
            "t",
            "a{{#webmail_url}} go to {{webmail_url}}{{/webmail_url}}{{^webmail_url}} no webmail{{/webmail_url}}.",
            Kind::Invite.placeholders(),
        )
        .unwrap();
        let index = Kind::Invite
            .placeholders()
            .iter()
            .position(|p| *p == "webmail_url")
            .unwrap();
        let mut values = vec![""; Kind::Invite.placeholders().len()];
        assert_eq!(c.render(&values, Escape::Text), "a no webmail.");
        values[index] = "https://w.example/";
        assert_eq!(
            c.render(&values, Escape::Text),
            "a go to https://w.example/."
        );
        for bad in ["{{#mailbox}}x", "x{{/mailbox}}", "{{#mailbox}}{{/link}}"] {
            assert!(
                matches!(
                    Compiled::parse("t", bad, Kind::Invite.placeholders()),
                    Err(TemplateError::Section { .. })
                ),
                "{bad}"
            );
        }
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
