//! Composing the emails Muster sends: text and HTML alternatives with the
//! same content, a text link, a correct Date in UTC and a Message-ID on the
//! sender's domain (see the notes on what makes invites look like spam).

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use time::OffsetDateTime;

use super::templates::{Kind, TemplateError, Templates};
use crate::config::Config;
use crate::domain::invite::{Invite, InvitePurpose};

/// A message ready for the wire or the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub from: String,
    pub to: String,
    pub message_id: String,
    pub bytes: Vec<u8>,
}

/// What an invite email is about: an invite, or a row not sent yet.
#[derive(Debug, Clone, Copy)]
pub struct InviteText<'a> {
    pub recipient: &'a str,
    pub mailbox: &'a str,
    pub display_name: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct Composer {
    templates: Templates,
    organisation: String,
    from_address: String,
    from_name: String,
    reply_to: Option<String>,
    webmail_url: String,
    id_domain: String,
    imap: crate::domain::client_setup::Server,
    smtp: crate::domain::client_setup::Server,
    /// The Apple profile's link, missing only the address at its end.
    profile_url: String,
}

/// Whose new mailbox a welcome message greets.
#[derive(Debug, Clone, Copy)]
pub struct WelcomeText<'a> {
    pub mailbox: &'a str,
    pub display_name: Option<&'a str>,
    pub locale: Option<&'a str>,
    pub inviter: Option<&'a str>,
}

const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DE_MONTHS: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const EN_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const DE_DAYS: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];

/// A date and time in plain words, in UTC: "Wednesday, 30 December 2026 at
/// 12:00 UTC" or "Mittwoch, 30. Dezember 2026 um 12:00 UTC".
pub fn plain_date(t: OffsetDateTime, locale: &str) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let day = t.weekday().number_days_from_monday() as usize;
    let month = t.month() as usize - 1;
    if locale.starts_with("de") {
        format!(
            "{}, {}. {} {} um {:02}:{:02} UTC",
            DE_DAYS[day],
            t.day(),
            DE_MONTHS[month],
            t.year(),
            t.hour(),
            t.minute()
        )
    } else {
        format!(
            "{}, {} {} {} at {:02}:{:02} UTC",
            EN_DAYS[day],
            t.day(),
            EN_MONTHS[month],
            t.year(),
            t.hour(),
            t.minute()
        )
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Composer {
    pub fn new(config: &Config) -> Result<Self, TemplateError> {
        let from_address = config.from_address();
        let id_domain = from_address
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| config.public_host());
        Ok(Self {
            templates: Templates::load(config.invites.templates_dir.as_deref())?,
            organisation: one_line(&config.organisation),
            from_address,
            from_name: one_line(&config.from_name()),
            reply_to: config.smtp.reply_to.as_ref().map(ToString::to_string),
            webmail_url: config
                .client
                .webmail_url
                .as_ref()
                .map(|u| u.as_str().to_string())
                .unwrap_or_default(),
            id_domain,
            imap: config.mail_settings().imap,
            smtp: config.mail_settings().smtp,
            profile_url: config.apple_profile_url(""),
        })
    }

    fn build(
        &self,
        to_name: Option<&str>,
        to: &str,
        id: &str,
        rendered: super::templates::Rendered,
        now: OffsetDateTime,
    ) -> Outgoing {
        let message_id = format!("{id}@{}", self.id_domain);
        let to_address: Address<'_> = match to_name {
            Some(name) => (one_line(name), to.to_string()).into(),
            None => to.to_string().into(),
        };
        let mut builder = MessageBuilder::new()
            .from((self.from_name.clone(), self.from_address.clone()))
            .to(to_address)
            .subject(rendered.subject)
            .date(now.unix_timestamp())
            .message_id(message_id.clone())
            .text_body(rendered.text)
            .html_body(rendered.html);
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        Outgoing {
            from: self.from_address.clone(),
            to: to.to_string(),
            message_id,
            bytes: builder.write_to_vec().unwrap_or_default(),
        }
    }

    /// The invite email for the invite's current link.
    pub fn invite(
        &self,
        invite: &Invite,
        link: &str,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let kind = match invite.purpose {
            InvitePurpose::Setup => Kind::Invite,
            InvitePurpose::PasswordReset => Kind::Password,
        };
        let id = format!("invite.{}.{}", invite.id, invite.generation);
        self.about_invite(kind, invite, link, &id, now)
    }

    /// Reminder `number` of an invite's link, still unused: the same link,
    /// and how long it has left.
    pub fn reminder(
        &self,
        invite: &Invite,
        number: u32,
        link: &str,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let id = format!("reminder.{}.{}.{number}", invite.id, invite.generation);
        self.about_invite(Kind::Reminder, invite, link, &id, now)
    }

    /// An email about an invite's link to its recipient; `kind` picks the
    /// words.
    fn about_invite(
        &self,
        kind: Kind,
        invite: &Invite,
        link: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let recipient = invite.recipient_email.to_string();
        let mailbox = invite.mailbox.to_string();
        let about = InviteText {
            recipient: &recipient,
            mailbox: &mailbox,
            display_name: invite.display_name.as_deref(),
            locale: invite.locale.as_deref(),
            expires_at: invite.expires_at,
        };
        let locale = self.templates.locale_for(kind, about.locale);
        let left = crate::domain::reminders::time_left(now, invite.expires_at, &locale);
        let (_, rendered) = self.render_about(kind, &about, link, &left)?;
        Ok(self.build(
            invite.display_name.as_deref(),
            &recipient,
            id,
            rendered,
            now,
        ))
    }

    /// The invite email's words for one recipient, and the language chosen.
    pub fn render_invite(
        &self,
        about: &InviteText<'_>,
        link: &str,
    ) -> Result<(String, super::templates::Rendered), TemplateError> {
        self.render_about(Kind::Invite, about, link, "")
    }

    /// An email about one mailbox (`kind` picks the words: an invite, or
    /// a link to choose a new password), and the language chosen. Each
    /// kind's templates take the placeholders they name from these.
    fn render_about(
        &self,
        kind: Kind,
        about: &InviteText<'_>,
        link: &str,
        time_left: &str,
    ) -> Result<(String, super::templates::Rendered), TemplateError> {
        let locale = self.templates.locale_for(kind, about.locale);
        let expires = plain_date(about.expires_at, &locale);
        // An invite greets the person at the address it goes to; a reset,
        // the mailbox's owner.
        let unnamed = match kind {
            Kind::Password => about.mailbox,
            _ => about.recipient,
        };
        let greeting = match about.display_name {
            Some(name) => one_line(name),
            None => one_line(&crate::domain::address::readable(unnamed)),
        };
        let rendered = self.templates.render(
            kind,
            &locale,
            &[
                ("organisation", &self.organisation),
                ("greeting_name", &greeting),
                ("mailbox", about.mailbox),
                ("recipient_email", about.recipient),
                ("link", link),
                ("expires", &expires),
                ("time_left", time_left),
                ("webmail_url", &self.webmail_url),
            ],
        )?;
        Ok((locale, rendered))
    }

    /// An invite-shaped test message to `to`: the words one recipient will
    /// get, marked as a test in the subject.
    pub fn test_invite(
        &self,
        about: &InviteText<'_>,
        link: &str,
        to: &str,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let (_, mut rendered) = self.render_invite(about, link)?;
        rendered.subject = format!("[Test] {}", rendered.subject);
        Ok(self.build(None, to, &format!("test.{id}"), rendered, now))
    }

    /// The first message in a new mailbox: who invited its owner, and how
    /// to set up a mail app.
    pub fn welcome(
        &self,
        about: &WelcomeText<'_>,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let locale = self.templates.locale_for(Kind::Welcome, about.locale);
        let greeting = match about.display_name {
            Some(name) => one_line(name),
            None => one_line(&crate::domain::address::readable(about.mailbox)),
        };
        let profile_url = format!(
            "{}{}",
            self.profile_url,
            crate::domain::client_setup::query_value(about.mailbox)
        );
        let rendered = self.templates.render(
            Kind::Welcome,
            &locale,
            &[
                ("organisation", &self.organisation),
                ("greeting_name", &greeting),
                ("mailbox", about.mailbox),
                ("inviter", &one_line(about.inviter.unwrap_or(""))),
                ("webmail_url", &self.webmail_url),
                ("imap", &self.imap.in_words(&locale)),
                ("smtp", &self.smtp.in_words(&locale)),
                ("profile_url", &profile_url),
            ],
        )?;
        use sha2::Digest;
        let hash = crate::store::hex_hash(&sha2::Sha256::digest(about.mailbox.as_bytes()).into());
        let id = format!("welcome.{}.{}", &hash[..16], now.unix_timestamp());
        Ok(self.build(about.display_name, about.mailbox, &id, rendered, now))
    }

    /// A notice to an admin about one invite.
    pub fn notice(
        &self,
        to: &str,
        words: &super::notices::NoticeWords,
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let rendered = self.templates.render(
            Kind::Notice,
            "en",
            &[
                ("organisation", &self.organisation),
                ("headline", &one_line(&words.headline)),
                ("details", &words.details),
                ("link", &words.link),
                ("link_label", words.link_label),
            ],
        )?;
        Ok(self.build(None, to, &format!("notice.{id}"), rendered, now))
    }

    /// An admin's daily digest; `values` from [`super::notices::digest_values`].
    pub fn digest(
        &self,
        to: &str,
        values: &[(&'static str, String)],
        id: &str,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let mut all: Vec<(&str, &str)> = vec![("organisation", &self.organisation)];
        all.extend(values.iter().map(|(k, v)| (*k, v.as_str())));
        let rendered = self.templates.render(Kind::Digest, "en", &all)?;
        Ok(self.build(None, to, &format!("digest.{id}"), rendered, now))
    }

    /// The sender as the recipient sees it.
    pub fn from_line(&self) -> String {
        format!("{} <{}>", self.from_name, self.from_address)
    }

    /// The admin password-reset email.
    pub fn reset(
        &self,
        email: &str,
        token_id: &str,
        link: &str,
        expires: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Outgoing, TemplateError> {
        let rendered = self.templates.render(
            Kind::Reset,
            "en",
            &[
                ("organisation", &self.organisation),
                ("account", email),
                ("link", link),
                ("expires", &plain_date(expires, "en")),
            ],
        )?;
        Ok(self.build(None, email, &format!("reset.{token_id}"), rendered, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn dates_in_plain_words() {
        let t = datetime!(2026-12-30 09:05 UTC);
        assert_eq!(
            plain_date(t, "en"),
            "Wednesday, 30 December 2026 at 09:05 UTC"
        );
        assert_eq!(
            plain_date(t, "de"),
            "Mittwoch, 30. Dezember 2026 um 09:05 UTC"
        );
    }
}
