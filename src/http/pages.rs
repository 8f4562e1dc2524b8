//! Server-rendered pages for recipients: plain HTML that works without
//! JavaScript, every value escaped, in English or German by the invite's
//! locale.

use crate::config::Config;
use crate::domain::invite::Invite;
use crate::domain::password::PasswordProblem;
use crate::mail::compose::plain_date;

pub fn esc(s: &str) -> String {
    crate::mail::templates::escape_html(s)
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

/// The page frame with one script (deferred; the page works without it).
fn layout_with_script(lang: Lang, title: &str, body: &str, script: &str) -> String {
    layout(
        lang,
        title,
        body,
        &format!("<script src=\"{}\" defer></script>\n", esc(script)),
    )
}

/// The page frame. `head_extra` goes into the head (a script tag).
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

/// The store takes no writes (a full disk): nothing changed, try later.
pub fn unavailable() -> String {
    simple(
        Lang::En,
        "Muster cannot save anything right now",
        &[
            "Nothing was changed and your link still works. The administrator has been told; please try again later.".into(),
            "<span lang=\"de\">Muster kann gerade nichts speichern. Es wurde nichts geändert und Ihr Link funktioniert weiterhin; bitte versuchen Sie es später erneut.</span>".into(),
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

/// Which field a password problem belongs next to.
pub fn problem_field(p: &PasswordProblem) -> &'static str {
    match p {
        PasswordProblem::Mismatch => "confirmation",
        _ => "password",
    }
}

/// The problems shown under one field (hidden when there are none); the
/// setup page's script fills the same list before it submits.
fn field_errors(id: &str, messages: &[String]) -> String {
    let items: String = messages
        .iter()
        .map(|m| format!("<li>{}</li>", esc(m)))
        .collect();
    let hidden = if messages.is_empty() { " hidden" } else { "" };
    format!("<ul class=\"field-error\" id=\"{id}-error\"{hidden}>{items}</ul>\n")
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
    let title = lang.t("Set up your mailbox", "Postfach einrichten");
    let mut body = format!("<h1>{}</h1>\n", esc(title));
    if notice == FormNotice::Busy {
        body.push_str(&format!(
            "<div class=\"alert warn\" role=\"alert\">{}</div>\n",
            esc(lang.t(
                "Many people are setting up their mailboxes right now. Nothing was changed: wait a minute, then enter your password again.",
                "Gerade richten viele Personen ihr Postfach ein. Es wurde nichts geändert: Warten Sie eine Minute und geben Sie Ihr Passwort dann erneut ein.",
            ))
        ));
    }
    if notice == FormNotice::Blocked {
        body.push_str(&format!(
            "<div class=\"alert warn\" role=\"status\">{}</div>\n",
            esc(lang.t(
                "Your mailbox could not be created yet: there is not enough storage left for it. The administrator has to free space first. Your link stays valid; try again later.",
                "Ihr Postfach konnte noch nicht angelegt werden: Es ist nicht genug Speicher frei. Die Administration muss erst Platz schaffen. Ihr Link bleibt gültig; versuchen Sie es später erneut.",
            ))
        ));
    }
    let messages = |field: &str| -> Vec<String> {
        problems
            .iter()
            .filter(|p| problem_field(p) == field)
            .map(|p| policy_message(p, lang))
            .collect()
    };
    let (password_errors, confirmation_errors) = (messages("password"), messages("confirmation"));
    let invalid = |errors: &[String]| {
        if errors.is_empty() {
            ""
        } else {
            " aria-invalid=\"true\""
        }
    };
    // The field at fault takes the focus, so the reason is read out first.
    let focus = |field: &str| {
        if problems.first().map(problem_field) == Some(field) {
            " autofocus"
        } else {
            ""
        }
    };
    body.push_str(&format!(
        "<p>{}</p>\n",
        esc(&match lang {
            Lang::En => format!("{} invites you to your new mailbox.", config.organisation),
            Lang::De => format!(
                "{} lädt Sie zu Ihrem neuen Postfach ein.",
                config.organisation
            ),
        }),
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
    body.push_str(&format!(
        "<form method=\"post\" action=\"/invite/{token}\" id=\"setup\">\n\
<input type=\"hidden\" name=\"form_token\" value=\"{proof}\">\n\
<label for=\"username\">{address_label}</label>\n\
<input type=\"text\" id=\"username\" name=\"username\" class=\"address\" value=\"{mailbox}\" autocomplete=\"username\" readonly>\n\
<label for=\"password\">{pw}</label>\n\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required minlength=\"{min}\" maxlength=\"128\" aria-describedby=\"password-error hint\"{pw_invalid}{pw_focus}>\n\
{pw_errors}<p class=\"muted\" id=\"hint\">{hint}</p>\n\
<label for=\"confirmation\">{again}</label>\n\
<input type=\"password\" id=\"confirmation\" name=\"confirmation\" autocomplete=\"new-password\" required maxlength=\"128\" aria-describedby=\"confirmation-error\"{c_invalid}{c_focus}>\n\
{c_errors}<div class=\"actions\">\n\
<button type=\"submit\">{submit}</button>\n\
<button type=\"button\" class=\"secondary\" id=\"reveal\" aria-pressed=\"false\" aria-controls=\"password confirmation\" data-show=\"{show}\" data-hide=\"{hide}\" hidden>{show}</button>\n\
</div>\n</form>\n",
        token = esc(token),
        proof = esc(proof),
        address_label = esc(lang.t("Your new address", "Ihre neue Adresse")),
        mailbox = esc(&invite.mailbox.to_string()),
        pw = esc(lang.t("Choose a password", "Passwort wählen")),
        pw_invalid = invalid(&password_errors),
        pw_focus = focus("password"),
        pw_errors = field_errors("password", &password_errors),
        again = esc(lang.t("Type it again", "Passwort wiederholen")),
        c_invalid = invalid(&confirmation_errors),
        c_focus = focus("confirmation"),
        c_errors = field_errors("confirmation", &confirmation_errors),
        hint = esc(&hint),
        submit = esc(lang.t("Create my mailbox", "Postfach anlegen")),
        show = esc(lang.t("Show password", "Passwort anzeigen")),
        hide = esc(lang.t("Hide password", "Passwort verbergen")),
    ));
    body.push_str(&format!(
        "<p class=\"muted\">{} {}</p>\n",
        esc(lang.t("This link expires on", "Dieser Link läuft ab am")),
        esc(&plain_date(invite.expires_at, lang.code()))
    ));
    layout_with_script(lang, title, &body, "/assets/setup-link.js")
}

/// A form post Muster did not accept: from another site, served too long
/// ago, or sent twice. Nothing changed; the link itself still works.
pub fn form_refused(lang: Lang, token: &str) -> String {
    let title = lang.t(
        "Please open your link again",
        "Bitte öffnen Sie Ihren Link erneut",
    );
    let body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p><a class=\"button\" href=\"/invite/{}\">{}</a></p>\n",
        esc(title),
        esc(lang.t(
            "This page was open for too long, was sent twice, or did not come from Muster, so it was not accepted. Nothing was changed. Open your setup link again and repeat the step.",
            "Diese Seite war zu lange geöffnet, wurde zweimal gesendet oder stammt nicht von Muster und wurde deshalb nicht angenommen. Es wurde nichts geändert. Öffnen Sie Ihren Link erneut und wiederholen Sie den Schritt.",
        )),
        esc(token),
        esc(lang.t("Open the setup link again", "Link erneut öffnen")),
    );
    layout(lang, title, &body, "")
}

fn webmail_link(config: &Config, lang: Lang) -> String {
    match &config.client.webmail_url {
        Some(url) => format!(
            "<p><a class=\"button\" href=\"{}\">{}</a></p>",
            esc(url.as_str()),
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
        esc(&invite.mailbox.to_string()),
        esc(lang.t(
            "This link was used to set it up and cannot be used again. Sign in with the password you chose.",
            "Dieser Link wurde zum Einrichten benutzt und gilt nicht mehr. Melden Sie sich mit Ihrem gewählten Passwort an.",
        )),
        webmail_link(config, lang)
    );
    layout(lang, title, &body, "")
}

pub fn expired(invite: &Invite, token: &str, proof: &str) -> String {
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
            "<form method=\"post\" action=\"/invite/{}/new-link\" id=\"new-link\">\
<input type=\"hidden\" name=\"form_token\" value=\"{}\">\
<button type=\"submit\">{}</button></form>",
            esc(token),
            esc(proof),
            esc(lang.t("Ask for a new link", "Neuen Link anfordern"))
        ),
    };
    let body = format!(
        "<h1>{}</h1>\n<p>{} <strong>{}</strong> {} {}.</p>\n{action}\n",
        esc(title),
        esc(lang.t("The link for", "Der Link für")),
        esc(&invite.mailbox.to_string()),
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
        &invite.mailbox.to_string(),
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
    // The email promised webmail: a prominent button, not a timed
    // redirect that would take the settings below away mid-read.
    let onward = match &c.webmail_url {
        Some(url) => format!(
            "<p><a class=\"button big\" id=\"webmail\" href=\"{}\">{}</a></p>\n<p class=\"muted\">{}</p>\n",
            esc(url.as_str()),
            esc(lang.t("Go to webmail", "Zum Webmail")),
            esc(lang.t(
                "Sign in there with your address and the password you just chose.",
                "Melden Sie sich dort mit Ihrer Adresse und dem eben gewählten Passwort an.",
            )),
        ),
        None => String::new(),
    };
    let body = format!(
        "<h1>{}</h1>\n<div class=\"alert ok\" role=\"status\">{}</div>\n<p class=\"address\">{}</p>\n{onward}\
<h2>{}</h2>\n<table class=\"settings\">\n{rows}</table>\n",
        esc(title),
        esc(lang.t(
            "Your password is set and your mailbox has been created.",
            "Ihr Passwort ist gesetzt und Ihr Postfach wurde angelegt."
        )),
        esc(&invite.mailbox.to_string()),
        esc(lang.t(
            "Settings for a mail app",
            "Einstellungen für ein Mailprogramm"
        )),
    );
    layout(lang, title, &body, "")
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
