//! Server-rendered pages for recipients: plain HTML that works without
//! JavaScript, in English or German by the invite's locale. The text lives
//! in `src/http/pages/<page>.<lang>.html` (first line: the title) inside
//! one shared `layout.html`, on the same template engine as the emails, so
//! every value is escaped the same way.

use std::collections::HashMap;
use std::sync::OnceLock;

use rust_embed::RustEmbed;

use crate::config::Config;
use crate::domain::client_setup::Device;
use crate::domain::invite::{Invite, InvitePurpose};
use crate::domain::password::PasswordProblem;
use crate::domain::template::{Escape, Template, best_locale};
use crate::mail::compose::plain_date;

#[derive(RustEmbed)]
#[folder = "src/http/pages/"]
struct Embedded;

pub fn esc(s: &str) -> String {
    crate::domain::template::escape_html(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    /// The invite's language, as the emails choose it.
    pub fn of(invite: Option<&Invite>) -> Self {
        match best_locale(invite.and_then(|i| i.locale.as_deref()), |l| {
            ["en", "de"].contains(&l)
        })
        .as_str()
        {
            "de" => Lang::De,
            _ => Lang::En,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }
}

/// Each page and the placeholders its text may use; the `raw` ones are
/// HTML made here from escaped pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Page {
    Invalid,
    Unavailable,
    TooMany,
    Error,
    Form,
    Refused,
    Used,
    Expired,
    Requested,
    Busy,
    Failed,
    Taken,
    Ready,
    PasswordForm,
    PasswordUsed,
    PasswordReady,
}

const ALL: [Page; 16] = [
    Page::Invalid,
    Page::Unavailable,
    Page::TooMany,
    Page::Error,
    Page::Form,
    Page::Refused,
    Page::Used,
    Page::Expired,
    Page::Requested,
    Page::Busy,
    Page::Failed,
    Page::Taken,
    Page::Ready,
    Page::PasswordForm,
    Page::PasswordUsed,
    Page::PasswordReady,
];

impl Page {
    fn file(self) -> &'static str {
        match self {
            Page::Invalid => "invalid",
            Page::Unavailable => "unavailable",
            Page::TooMany => "too-many",
            Page::Error => "error",
            Page::Form => "form",
            Page::Refused => "refused",
            Page::Used => "used",
            Page::Expired => "expired",
            Page::Requested => "requested",
            Page::Busy => "busy",
            Page::Failed => "failed",
            Page::Taken => "taken",
            Page::Ready => "ready",
            Page::PasswordForm => "password-form",
            Page::PasswordUsed => "password-used",
            Page::PasswordReady => "password-ready",
        }
    }

    fn placeholders(self) -> &'static [&'static str] {
        match self {
            Page::Invalid
            | Page::Unavailable
            | Page::Error
            | Page::Requested
            | Page::Busy
            | Page::Failed => &[],
            Page::TooMany => &["wait"],
            Page::Taken => &["mailbox"],
            Page::Form | Page::PasswordForm => &[
                "busy",
                "blocked",
                "organisation",
                "token",
                "proof",
                "mailbox",
                "min_length",
                "password_errors",
                "focus_password",
                "confirmation_errors",
                "focus_confirmation",
                "expires",
            ],
            Page::Refused => &["token"],
            Page::Used => &["mailbox", "webmail_url", "welcome"],
            Page::PasswordUsed | Page::PasswordReady => &["mailbox", "webmail_url"],
            Page::Expired => &["mailbox", "expires", "requested_at", "token", "proof"],
            Page::Ready => &[
                "mailbox",
                "webmail_url",
                "imap",
                "smtp",
                "storage",
                "profile_url",
                "profile_qr",
                "on_apple",
                "on_desktop",
                "on_other",
            ],
        }
    }

    fn raw(self) -> &'static [&'static str] {
        match self {
            Page::Form | Page::PasswordForm => &["password_errors", "confirmation_errors"],
            Page::Ready => &["profile_qr"],
            _ => &[],
        }
    }
}

const LAYOUT: &[&str] = &["lang", "title", "script", "body"];

struct PageText {
    title: String,
    body: Template,
}

struct Pages {
    layout: Template,
    pages: HashMap<(Page, &'static str), PageText>,
}

fn load() -> Pages {
    let text = |name: &str| -> Option<String> {
        Embedded::get(name).map(|f| String::from_utf8_lossy(&f.data).into_owned())
    };
    // The built-in pages are part of the build: a mistake in one is a bug,
    // and the unit tests load them all.
    let layout = Template::parse(
        "layout.html",
        &text("layout.html").expect("layout.html is built in"),
        LAYOUT,
        &["body"],
    )
    .expect("layout.html parses");
    let mut pages = HashMap::new();
    for page in ALL {
        for lang in ["en", "de"] {
            let name = format!("{}.{lang}.html", page.file());
            let Some(t) = text(&name) else { continue };
            let (title, body) = t.split_once('\n').unwrap_or((&t, ""));
            let body = Template::parse(&name, body.trim_end(), page.placeholders(), page.raw())
                .unwrap_or_else(|e| panic!("{e}"));
            pages.insert(
                (page, lang),
                PageText {
                    title: title.trim().to_string(),
                    body,
                },
            );
        }
    }
    Pages { layout, pages }
}

fn pages() -> &'static Pages {
    static PAGES: OnceLock<Pages> = OnceLock::new();
    PAGES.get_or_init(load)
}

/// Renders `page` in `lang` (English when there is no such translation)
/// with `values` (name, value) inside the layout.
fn render(page: Page, lang: Lang, values: &[(&str, &str)], script: Option<&str>) -> String {
    let set = pages();
    let (code, text) = set
        .pages
        .get(&(page, lang.code()))
        .map(|t| (lang.code(), t))
        .unwrap_or_else(|| ("en", &set.pages[&(page, "en")]));
    let ordered: Vec<&str> = page
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
    let body = text.body.render(&ordered, Escape::Html);
    set.layout.render(
        &[code, &text.title, script.unwrap_or(""), &body],
        Escape::Html,
    ) + "\n"
}

pub fn invalid() -> String {
    render(Page::Invalid, Lang::En, &[], None)
}

/// The store takes no writes (a full disk): nothing changed, try later.
pub fn unavailable() -> String {
    render(Page::Unavailable, Lang::En, &[], None)
}

pub fn too_many(retry_after_secs: u64) -> String {
    render(
        Page::TooMany,
        Lang::En,
        &[(
            "wait",
            &match retry_after_secs {
                1 => "1 second".to_string(),
                n => format!("{n} seconds"),
            },
        )],
        None,
    )
}

/// Something failed inside Muster; the details went to the log.
pub fn error() -> String {
    render(Page::Error, Lang::En, &[], None)
}

/// Which field a password problem belongs next to.
pub fn problem_field(p: &PasswordProblem) -> &'static str {
    match p {
        PasswordProblem::Mismatch => "confirmation",
        _ => "password",
    }
}

/// Why the setup form is shown again, besides password problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormNotice {
    None,
    /// The pool has no room for the allocation (R7).
    Blocked,
    /// Too many passwords were being checked at once; nothing changed.
    Busy,
}

/// Yes for a template section: any non-empty value.
fn flag(on: bool) -> &'static str {
    if on { "1" } else { "" }
}

/// The setup form. `proof` is the form's [`crate::domain::form_proof`].
pub fn password_form(
    config: &Config,
    invite: &Invite,
    token: &str,
    proof: &str,
    problems: &[PasswordProblem],
    notice: FormNotice,
) -> String {
    let lang = Lang::of(Some(invite));
    // The problems under one field, as list items; the page's script fills
    // the same lists before it submits.
    let items = |field: &str| -> String {
        problems
            .iter()
            .filter(|p| problem_field(p) == field)
            .map(|p| format!("<li>{}</li>", esc(&policy_message(p, lang))))
            .collect()
    };
    // The field at fault takes the focus, so its reason is read out first.
    let first = problems.first().map(problem_field);
    let page = match invite.purpose {
        InvitePurpose::Setup => Page::Form,
        InvitePurpose::PasswordReset => Page::PasswordForm,
    };
    render(
        page,
        lang,
        &[
            ("busy", flag(notice == FormNotice::Busy)),
            ("blocked", flag(notice == FormNotice::Blocked)),
            ("organisation", &config.organisation),
            ("token", token),
            ("proof", proof),
            ("mailbox", &invite.mailbox.to_string()),
            ("min_length", &config.password_policy.min_length.to_string()),
            ("password_errors", &items("password")),
            ("focus_password", flag(first == Some("password"))),
            ("confirmation_errors", &items("confirmation")),
            ("focus_confirmation", flag(first == Some("confirmation"))),
            ("expires", &plain_date(invite.expires_at, lang.code())),
        ],
        Some("/assets/setup-link.js"),
    )
}

/// A form post Muster did not accept: from another site, served too long
/// ago, or sent twice. Nothing changed; the link itself still works.
pub fn form_refused(lang: Lang, token: &str) -> String {
    render(Page::Refused, lang, &[("token", token)], None)
}

fn webmail(config: &Config) -> String {
    config
        .client
        .webmail_url
        .as_ref()
        .map(|u| u.as_str().to_string())
        .unwrap_or_default()
}

pub fn already_redeemed(config: &Config, invite: &Invite) -> String {
    let page = match invite.purpose {
        InvitePurpose::Setup => Page::Used,
        InvitePurpose::PasswordReset => Page::PasswordUsed,
    };
    render(
        page,
        Lang::of(Some(invite)),
        &[
            ("mailbox", &invite.mailbox.to_string()),
            ("webmail_url", &webmail(config)),
            // Where the mail app settings shown once after setup are now.
            ("welcome", flag(config.client.welcome)),
        ],
        None,
    )
}

pub fn expired(invite: &Invite, token: &str, proof: &str) -> String {
    let lang = Lang::of(Some(invite));
    let requested = invite
        .new_link_requested_at
        .map(|at| plain_date(at, lang.code()))
        .unwrap_or_default();
    render(
        Page::Expired,
        lang,
        &[
            ("mailbox", &invite.mailbox.to_string()),
            ("expires", &plain_date(invite.expires_at, lang.code())),
            ("requested_at", &requested),
            ("token", token),
            ("proof", proof),
        ],
        None,
    )
}

pub fn new_link_requested(invite: &Invite) -> String {
    render(Page::Requested, Lang::of(Some(invite)), &[], None)
}

pub fn busy(invite: &Invite) -> String {
    render(Page::Busy, Lang::of(Some(invite)), &[], None)
}

pub fn provision_failed(invite: &Invite) -> String {
    render(Page::Failed, Lang::of(Some(invite)), &[], None)
}

/// The address was made on the mail server outside this invite: trying
/// again cannot help, the administrator has to choose.
pub fn address_taken(invite: &Invite) -> String {
    render(
        Page::Taken,
        Lang::of(Some(invite)),
        &[("mailbox", &invite.mailbox.to_string())],
        None,
    )
}

/// After success (R12): the address, a button on to webmail (not a timed
/// redirect that would take the settings away), and one way per device to
/// set up a mail app: the browser's own device first, all of them shown.
pub fn ready(config: &Config, invite: &Invite, device: Device) -> String {
    if invite.purpose == InvitePurpose::PasswordReset {
        return render(
            Page::PasswordReady,
            Lang::of(Some(invite)),
            &[
                ("mailbox", &invite.mailbox.to_string()),
                ("webmail_url", &webmail(config)),
            ],
            None,
        );
    }
    let settings = config.mail_settings();
    let mailbox = invite.mailbox.to_string();
    let profile_url = config.apple_profile_url(&mailbox);
    render(
        Page::Ready,
        Lang::of(Some(invite)),
        &[
            ("mailbox", &mailbox),
            ("webmail_url", &webmail(config)),
            (
                "imap",
                &settings.imap.in_words(Lang::of(Some(invite)).code()),
            ),
            (
                "smtp",
                &settings.smtp.in_words(Lang::of(Some(invite)).code()),
            ),
            (
                "storage",
                &invite
                    .storage_allocation_mb
                    .map(|mb| format!("{mb} MB"))
                    .unwrap_or_default(),
            ),
            ("profile_url", &profile_url),
            ("profile_qr", &qr_svg(&profile_url)),
            ("on_apple", flag(device == Device::Apple)),
            ("on_desktop", flag(device == Device::Desktop)),
            (
                "on_other",
                flag(matches!(device, Device::Android | Device::Other)),
            ),
        ],
        None,
    )
}

/// A QR code of `text` as inline SVG, made here (no outside service).
fn qr_svg(text: &str) -> String {
    use qrcode::render::svg;
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(180, 180)
        .quiet_zone(true)
        .build();
    // Inline in HTML: without the XML declaration, and read as an image.
    let svg = image
        .split_once("?>")
        .map_or(image.as_str(), |(_, rest)| rest);
    svg.replacen(
        "<svg ",
        "<svg role=\"img\" aria-labelledby=\"profile-qr-label\" ",
        1,
    )
}

/// A password-policy problem in the page's language.
pub fn policy_message(p: &PasswordProblem, lang: Lang) -> String {
    use crate::domain::password::PasswordProblem as P;
    match (p, lang) {
        (_, Lang::En) => p.to_string(),
        (P::TooShort(n), Lang::De) => format!("Das Passwort braucht mindestens {n} Zeichen."),
        (P::TooLong, Lang::De) => "Das Passwort darf höchstens 128 Zeichen haben.".into(),
        (P::ContainsName, Lang::De) => {
            "Das Passwort darf den Postfachnamen nicht enthalten.".into()
        }
        (P::Weak(_), Lang::De) => {
            "Das Passwort ist zu leicht zu erraten. Verwenden Sie mehr Wörter oder Zeichen.".into()
        }
        (P::Mismatch, Lang::De) => "Die beiden Passwörter stimmen nicht überein.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_loads_in_english_and_escapes_its_values() {
        for page in ALL {
            assert!(pages().pages.contains_key(&(page, "en")), "{page:?}");
        }
        let html = render(Page::Refused, Lang::De, &[("token", "\"><script>")], None);
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"de\">"),
            "{html}"
        );
        assert!(html.contains("<h1>Bitte öffnen Sie Ihren Link erneut</h1>"));
        assert!(html.contains("/invite/&quot;&gt;&lt;script&gt;"), "{html}");
        assert!(too_many(1).contains("Please wait 1 second, then"));
        assert!(too_many(30).contains("Please wait 30 seconds, then"));
        // A page without a German text falls back to English, saying so.
        assert!(
            render(Page::TooMany, Lang::De, &[("wait", "5 seconds")], None)
                .contains("<html lang=\"en\">")
        );
    }
}
