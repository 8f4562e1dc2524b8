//! A small template language for the emails and the recipient pages:
//! `{{name}}` is a value, escaped for where it goes (HTML, a header line,
//! or plain text); `{{#name}}…{{/name}}` shows its text only when the value
//! is not empty and `{{^name}}…{{/name}}` only when it is; `{{{name}}}`
//! puts in HTML made by the code (never a value someone typed), and only
//! for names the caller allows. Pure: parsing and rendering, no files.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
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
    #[error(
        "template {file}: {{{{{{{name}}}}}}} puts in HTML unescaped, which only built-in pages may do"
    )]
    Raw { file: String, name: String },
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Value(usize),
    /// `{{{name}}}`: HTML made by the code, put in as it is.
    Raw(usize),
    /// `{{#name}}…{{/name}}` (shown when the value is not empty) or
    /// `{{^name}}…{{/name}}` (shown when it is).
    Section {
        index: usize,
        inverted: bool,
        body: Vec<Segment>,
    },
}

#[derive(Debug, Clone)]
pub struct Template(Vec<Segment>);

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

impl Template {
    /// Parses `text` (from `file`, for errors) whose placeholders are
    /// among `known`; `raw_ok` names those that may be put in unescaped.
    pub fn parse(
        file: &str,
        text: &str,
        known: &[&str],
        raw_ok: &[&str],
    ) -> Result<Self, TemplateError> {
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
            if let Some(inner) = after.strip_prefix('{') {
                let end = inner.find("}}}").ok_or_else(|| TemplateError::Unclosed {
                    file: file.to_string(),
                })?;
                let name = inner[..end].trim();
                if !raw_ok.contains(&name) {
                    return Err(TemplateError::Raw {
                        file: file.to_string(),
                        name: name.to_string(),
                    });
                }
                segments.push(Segment::Raw(index_of(name)?));
                rest = &inner[end + 3..];
                continue;
            }
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

    /// Renders with `values` in the order of the `known` names given to
    /// [`Template::parse`].
    pub fn render(&self, values: &[&str], escape: Escape) -> String {
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
            Segment::Raw(i) => out.push_str(value(*i)),
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

/// The best of the `offered` locales for a requested tag: `de-at`, then
/// `de`, then `en`.
pub fn best_locale(asked: Option<&str>, offered: impl Fn(&str) -> bool) -> String {
    let asked = asked
        .unwrap_or("en")
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-");
    let lang = asked.split('-').next().unwrap_or("en").to_string();
    [asked, lang]
        .into_iter()
        .find(|l| offered(l))
        .unwrap_or_else(|| "en".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["name", "url", "rows"];

    #[test]
    fn values_sections_and_raw_html() {
        let t = Template::parse(
            "t",
            "<p>{{name}}</p>{{#url}}<a href=\"{{url}}\">go</a>{{/url}}{{^url}}none{{/url}}<table>{{{rows}}}</table>",
            KNOWN,
            &["rows"],
        )
        .unwrap();
        let html = t.render(&["<b>Ann</b>", "", "<tr><td>x</td></tr>"], Escape::Html);
        assert_eq!(
            html,
            "<p>&lt;b&gt;Ann&lt;/b&gt;</p>none<table><tr><td>x</td></tr></table>"
        );
        let html = t.render(&["Ann", "https://w.example/?a=1&b=2", ""], Escape::Html);
        assert!(
            html.contains("href=\"https://w.example/?a=1&amp;b=2\""),
            "{html}"
        );
        // Raw only where the code allows it.
        assert!(matches!(
            Template::parse("t", "{{{name}}}", KNOWN, &[]),
            Err(TemplateError::Raw { .. })
        ));
        assert!(matches!(
            Template::parse("t", "{{{rows}}", KNOWN, &["rows"]),
            Err(TemplateError::Unclosed { .. })
        ));
    }

    #[test]
    fn sections_must_pair() {
        for bad in ["{{#name}}x", "x{{/name}}", "{{#name}}{{/url}}"] {
            assert!(
                matches!(
                    Template::parse("t", bad, KNOWN, &[]),
                    Err(TemplateError::Section { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn locales() {
        let offered = |l: &str| ["en", "de"].contains(&l);
        assert_eq!(best_locale(Some("de-AT"), offered), "de");
        assert_eq!(best_locale(Some("de_DE"), offered), "de");
        assert_eq!(best_locale(Some("fr"), offered), "en");
        assert_eq!(best_locale(None, offered), "en");
    }
}
