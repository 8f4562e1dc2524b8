//! Server-rendered pages for recipients: plain HTML that works without
//! JavaScript, every value escaped, in English or German by the invite's
//! locale.

use crate::config::Config;
use crate::domain::invite::Invite;
use crate::mail::compose::plain_date;

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
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
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub fn of(invite: Option<&Invite>) -> Self {
        match invite.and_then(|i| i.locale.as_deref()) {
            Some(l) if l.starts_with("de") => Lang::De,
            _ => Lang::En,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// Picks the English or German text.
    pub fn t<'a>(self, en: &'a str, de: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::De => de,
        }
    }
}

/// The page frame. `head_extra` is for a meta refresh.
pub fn layout(lang: Lang, title: &str, body: &str, head_extra: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"referrer\" content=\"no-referrer\">\n{head_extra}<title>{title}</title>\n\
<link rel=\"stylesheet\" href=\"/assets/muster.css\">\n</head>\n<body>\n\
<main class=\"page\"><div class=\"card\">\n{body}\n</div></main>\n</body>\n</html>\n",
        lang = lang.code(),
        title = esc(title),
    )
}

fn simple(lang: Lang, title: &str, paragraphs: &[String]) -> String {
    let body: String = paragraphs.iter().map(|p| format!("<p>{p}</p>\n")).collect();
    layout(lang, title, &format!("<h1>{}</h1>\n{body}", esc(title)), "")
}

pub fn invalid() -> String {
    simple(
        Lang::En,
        "This link is not valid",
        &[
            "It may have been replaced by a newer link, or withdrawn. Ask the person who invited you to send a new one.".into(),
            "<span lang=\"de\">Dieser Link ist nicht gültig. Bitten Sie die einladende Person um einen neuen Link.</span>".into(),
        ],
    )
}

pub fn too_many(retry_after_secs: u64) -> String {
    simple(
        Lang::En,
        "Too many attempts",
        &[format!(
            "Please wait {retry_after_secs} seconds, then try again."
        )],
    )
}

pub fn password_form(
    config: &Config,
    invite: &Invite,
    token: &str,
    errors: &[String],
    blocked: bool,
) -> String {
    let lang = Lang::of(Some(invite));
    let title = lang.t("Set up your mailbox", "Postfach einrichten");
    let mut body = format!("<h1>{}</h1>\n", esc(title));
    if blocked {
        body.push_str(&format!(
            "<div class=\"alert warn\" role=\"status\">{}</div>\n",
            esc(lang.t(
                "Your mailbox could not be created yet: there is not enough storage left for it. The administrator has to free space first. Your link stays valid; try again later.",
                "Ihr Postfach konnte noch nicht angelegt werden: Es ist nicht genug Speicher frei. Die Administration muss erst Platz schaffen. Ihr Link bleibt gültig; versuchen Sie es später erneut.",
            ))
        ));
    }
    if !errors.is_empty() {
        let items: String = errors
            .iter()
            .map(|e| format!("<li>{}</li>", esc(e)))
            .collect();
        body.push_str(&format!(
            "<div class=\"alert bad\" role=\"alert\" id=\"errors\"><ul>{items}</ul></div>\n"
        ));
    }
    body.push_str(&format!(
        "<p>{}</p>\n<p class=\"address\">{}</p>\n",
        esc(lang.t(
            &format!("{} invites you to your new mailbox:", config.organisation),
            &format!(
                "{} lädt Sie zu Ihrem neuen Postfach ein:",
                config.organisation
            ),
        )),
        esc(&invite.mailbox)
    ));
    let min = config.password_policy.min_length;
    let hint = match lang {
        Lang::En => format!(
            "At least {min} characters, hard to guess, and not containing the mailbox name. A few unrelated words work well."
        ),
        Lang::De => format!(
            "Mindestens {min} Zeichen, schwer zu erraten und ohne den Postfachnamen. Einige zusammenhanglose Wörter eignen sich gut."
        ),
    };
    let described = if errors.is_empty() {
        "hint"
    } else {
        "hint errors"
    };
    body.push_str(&format!(
        "<form method=\"post\" action=\"/invite/{token}\">\n\
<input type=\"text\" name=\"username\" value=\"{mailbox}\" autocomplete=\"username\" class=\"sr-only\" tabindex=\"-1\" aria-hidden=\"true\" readonly>\n\
<label for=\"password\">{pw}</label>\n\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required minlength=\"{min}\" maxlength=\"128\" aria-describedby=\"{described}\">\n\
<p class=\"muted\" id=\"hint\">{hint}</p>\n\
<label for=\"confirmation\">{again}</label>\n\
<input type=\"password\" id=\"confirmation\" name=\"confirmation\" autocomplete=\"new-password\" required maxlength=\"128\">\n\
<button type=\"submit\">{submit}</button>\n</form>\n",
        token = esc(token),
        mailbox = esc(&invite.mailbox),
        pw = esc(lang.t("Choose a password", "Passwort wählen")),
        again = esc(lang.t("Type it again", "Passwort wiederholen")),
        hint = esc(&hint),
        submit = esc(lang.t("Create my mailbox", "Postfach anlegen")),
    ));
    body.push_str(&format!(
        "<p class=\"muted\">{} {}</p>\n",
        esc(lang.t("This link expires on", "Dieser Link läuft ab am")),
        esc(&plain_date(invite.expires_at, lang.code()))
    ));
    layout(lang, title, &body, "")
}

fn webmail_link(config: &Config, lang: Lang) -> String {
    match &config.client.webmail_url {
        Some(url) => format!(
            "<p><a class=\"button\" href=\"{}\">{}</a></p>",
            esc(url),
            esc(lang.t("Open webmail", "Webmail öffnen"))
        ),
        None => String::new(),
    }
}

pub fn already_redeemed(config: &Config, invite: &Invite) -> String {
    let lang = Lang::of(Some(invite));
    let title = lang.t(
        "This mailbox is already set up",
        "Dieses Postfach ist bereits eingerichtet",
    );
    let body = format!(
        "<h1>{}</h1>\n<p class=\"address\">{}</p>\n<p>{}</p>\n{}",
        esc(title),
        esc(&invite.mailbox),
        esc(lang.t(
            "This link was used to set it up and cannot be used again. Sign in with the password you chose.",
            "Dieser Link wurde zum Einrichten benutzt und gilt nicht mehr. Melden Sie sich mit Ihrem gewählten Passwort an.",
        )),
        webmail_link(config, lang)
    );
    layout(lang, title, &body, "")
}

pub fn expired(invite: &Invite, token: &str) -> String {
    let lang = Lang::of(Some(invite));
    let title = lang.t("This link has expired", "Dieser Link ist abgelaufen");
    let action = match invite.new_link_requested_at {
        Some(at) => format!(
            "<div class=\"alert ok\" role=\"status\">{} {}</div>",
            esc(lang.t(
                "You asked for a new link; the administrator was told on",
                "Sie haben einen neuen Link angefordert; die Administration wurde benachrichtigt am",
            )),
            esc(&plain_date(at, lang.code()))
        ),
        None => format!(
            "<form method=\"post\" action=\"/invite/{}/new-link\"><button type=\"submit\">{}</button></form>",
            esc(token),
            esc(lang.t("Ask for a new link", "Neuen Link anfordern"))
        ),
    };
    let body = format!(
        "<h1>{}</h1>\n<p>{} <strong>{}</strong> {} {}.</p>\n{action}\n",
        esc(title),
        esc(lang.t("The link for", "Der Link für")),
        esc(&invite.mailbox),
        esc(lang.t("expired on", "ist abgelaufen am")),
        esc(&plain_date(invite.expires_at, lang.code())),
    );
    layout(lang, title, &body, "")
}

pub fn new_link_requested(invite: &Invite) -> String {
    let lang = Lang::of(Some(invite));
    simple(
        lang,
        lang.t("Your request was sent", "Ihre Anfrage wurde gesendet"),
        &[esc(lang.t(
            "The administrator will see that you asked for a new link and can send you one by email.",
            "Die Administration sieht Ihre Anfrage und kann Ihnen einen neuen Link per E-Mail senden.",
        ))],
    )
}

pub fn busy(invite: &Invite) -> String {
    let lang = Lang::of(Some(invite));
    simple(
        lang,
        lang.t(
            "Your mailbox is being set up",
            "Ihr Postfach wird gerade eingerichtet",
        ),
        &[esc(lang.t(
            "This takes a moment. Reload this page in a few seconds.",
            "Das dauert einen Moment. Laden Sie diese Seite in ein paar Sekunden neu.",
        ))],
    )
}

pub fn provision_failed(invite: &Invite) -> String {
    let lang = Lang::of(Some(invite));
    simple(
        lang,
        lang.t("We could not create your mailbox right now", "Ihr Postfach konnte gerade nicht angelegt werden"),
        &[esc(lang.t(
            "Nothing was created and your link still works. The administrator has been told; please try again later.",
            "Es wurde nichts angelegt und Ihr Link funktioniert weiterhin. Die Administration wurde informiert; bitte versuchen Sie es später erneut.",
        ))],
    )
}

/// After success (R12): the address, client settings, and on to webmail.
pub fn ready(config: &Config, invite: &Invite) -> String {
    let lang = Lang::of(Some(invite));
    let title = lang.t("Your mailbox is ready", "Ihr Postfach ist bereit");
    let c = &config.client;
    let host = config.public_host();
    let imap_host = c.imap_host.clone().unwrap_or_else(|| host.clone());
    let smtp_host = c.smtp_host.clone().unwrap_or_else(|| host.clone());
    let row = |k: &str, v: &str| format!("<tr><td>{}</td><td>{}</td></tr>\n", esc(k), esc(v));
    let mut rows = String::new();
    rows.push_str(&row(
        lang.t("Address and user name", "Adresse und Benutzername"),
        &invite.mailbox,
    ));
    rows.push_str(&row(
        lang.t("Incoming mail (IMAP)", "Posteingang (IMAP)"),
        &format!("{imap_host}, port {}, {}", c.imap_port, c.imap_security),
    ));
    rows.push_str(&row(
        lang.t("Outgoing mail (SMTP)", "Postausgang (SMTP)"),
        &format!("{smtp_host}, port {}, {}", c.smtp_port, c.smtp_security),
    ));
    if let Some(mb) = invite.storage_allocation_mb {
        rows.push_str(&row(lang.t("Storage", "Speicher"), &format!("{mb} MB")));
    }
    let (refresh, onward) = match &c.webmail_url {
        Some(url) => (
            format!(
                "<meta http-equiv=\"refresh\" content=\"8; url={}\">\n",
                esc(url)
            ),
            format!(
                "<p>{}</p>\n{}",
                esc(lang.t(
                    "You will be taken to webmail in a few seconds.",
                    "Sie werden in ein paar Sekunden zum Webmail weitergeleitet.",
                )),
                webmail_link(config, lang)
            ),
        ),
        None => (String::new(), String::new()),
    };
    let body = format!(
        "<h1>{}</h1>\n<div class=\"alert ok\" role=\"status\">{}</div>\n<p class=\"address\">{}</p>\n{onward}\n\
<h2>{}</h2>\n<table class=\"settings\">\n{rows}</table>\n",
        esc(title),
        esc(lang.t(
            "Your password is set and your mailbox has been created.",
            "Ihr Passwort ist gesetzt und Ihr Postfach wurde angelegt."
        )),
        esc(&invite.mailbox),
        esc(lang.t(
            "Settings for a mail app",
            "Einstellungen für ein Mailprogramm"
        )),
    );
    layout(lang, title, &body, &refresh)
}

/// A password-policy problem in the page's language.
pub fn policy_message(p: &crate::domain::password::PasswordProblem, lang: Lang) -> String {
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
