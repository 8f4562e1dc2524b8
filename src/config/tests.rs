use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_toml(
        text,
        "test.toml",
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
}

#[test]
fn defaults_are_valid() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.invites.batch_limit, 500);
    assert_eq!(c.passwd_file(), PathBuf::from("data/dovecot/passwd"));
    assert_eq!(c.from_address(), "noreply@example.org");
    assert_eq!(c.public_host(), "localhost");
}

#[test]
fn the_example_file_loads_and_documents_every_key() {
    let text = include_str!("../../config/muster.example.toml");
    load(text, &[]).unwrap();
    for key in keys() {
        let leaf = key.rsplit('.').next().unwrap();
        let documented = text.lines().any(|l| {
            let l = l.trim_start_matches('#').trim();
            l.starts_with(&format!("{leaf} =")) || (key == "domains" && l == "[[domains]]")
        });
        assert!(documented, "{key} is not in config/muster.example.toml");
    }
}

#[test]
fn unknown_keys_are_refused_with_file_and_key() {
    let err = load("listen = \"127.0.0.1:1\"\ncolour = \"blue\"\n", &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("test.toml:"), "{msg}");
    assert!(msg.contains("colour"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    let err = load("[smtp]\nhots = \"x\"\n", &[]).unwrap_err().to_string();
    assert!(err.contains("hots"), "{err}");
    // Types in words, not the parser's names for them.
    let err = load("[smtp]\nport = \"abc\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected a whole number from 0 to 65535") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn environment_overrides_every_kind_of_key() {
    let c = load(
        "[smtp]\nport = 25\n",
        &[
            ("MUSTER_SMTP_PORT", "2525"),
            ("MUSTER_SMTP_HOST", "relay.example.org"),
            ("MUSTER_SMTP_ALLOW_INVALID_CERTS", "true"),
            ("MUSTER_DOMAINS", "a.example=5, b.example=7"),
            ("MUSTER_INVITES_DEFAULT_EXPIRY", "7d"),
            ("MUSTER_MAIL_HOST_HASH_SCHEME", "BLF-CRYPT"),
            ("MUSTER_CONFIG", "ignored"),
            ("PATH", "/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.smtp.port, 2525);
    assert_eq!(c.smtp.host.as_deref(), Some("relay.example.org"));
    assert!(c.smtp.allow_invalid_certs);
    assert_eq!(c.domains.len(), 2);
    assert_eq!(c.domains[1].mailbox_cap, 7);
    assert_eq!(c.default_expiry(), HumanDuration::days(7));
    assert_eq!(c.mail_host.hash_scheme, HashScheme::BlfCrypt);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let err = load("", &[("MUSTER_SMTP_PORT", "many")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("MUSTER_SMTP_PORT"), "{err}");
    let err = load("", &[("MUSTER_SMPT_HOST", "x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("MUSTER_SMPT_HOST"), "{err}");
}

#[test]
fn values_are_validated_at_load() {
    let cases = [
        (
            "[[domains]]\nname = \"a.example\"\nmailbox_cap = 0\n",
            "domains",
        ),
        ("[invites]\nmax_expiry = \"31d\"\n", "invites.max_expiry"),
        (
            "[invites]\ndefault_expiry = \"30m\"\n",
            "invites.default_expiry",
        ),
        ("public_url = \"ftp://x.example\"\n", "public_url"),
        ("public_url = \"http://\"\n", "public_url"),
        ("listen = \"everywhere\"\n", "listen"),
        (
            "[[domains]]\nname = \"localhost\"\nmailbox_cap = 5\n",
            "domains",
        ),
        ("[invites]\nbatch_limit = 501\n", "invites.batch_limit"),
        (
            "[invites]\napi_call_limit = 101\n",
            "invites.api_call_limit",
        ),
        ("[mail_host]\nuid = 0\n", "mail_host.uid"),
        ("[http]\nmetrics_token = \"short\"\n", "http.metrics_token"),
        ("[smtp]\nusername = \"u\"\n", "smtp.username"),
        ("[smtp]\nfrom_address = \"nobody\"\n", "smtp.from_address"),
        (
            "[client]\nwebmail_url = \"webmail\"\n",
            "client.webmail_url",
        ),
        ("[mail_host]\nbackend = \"command\"\n", "mail_host.command"),
        (
            "[mail_host]\nbackend = \"sql\"\n[mail_host.sql]\nurl = \"postgres://m@127.0.0.1/mail\"\nquota_multiplier = 0\n",
            "mail_host.sql.quota_multiplier",
        ),
    ];
    for (text, key) in cases {
        match load(text, &[]) {
            Err(ConfigError::Invalid { key: k, env, .. }) => {
                assert_eq!(k, key, "{text}");
                assert_eq!(env, env_name(key));
            }
            other => panic!("{text}: expected an error for {key}, got {other:?}"),
        }
    }
    // Durations and enums are checked while reading, with the file named.
    let err = load("[invites]\ndefault_expiry = \"soon\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("test.toml") && err.contains("soon"), "{err}");
    let err = load("[smtp]\ntls = \"maybe\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("maybe"), "{err}");
}

#[test]
fn client_security_is_one_of_three() {
    let c = load(
        "[client]\nimap_security = \"starttls\"\nsmtp_security = \"SSL/TLS\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.client.imap_security, ClientSecurity::Starttls);
    assert_eq!(c.client.smtp_security, ClientSecurity::Tls);
    assert_eq!(c.client.smtp_security.to_string(), "SSL/TLS");
    let err = load("[client]\nimap_security = \"ssl3\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("imap_security"), "{err}");
    assert!(
        err.contains("`tls`") && err.contains("`starttls`") && err.contains("`none`"),
        "{err}"
    );
    let err = load("", &[("MUSTER_CLIENT_SMTP_SECURITY", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("MUSTER_CLIENT_SMTP_SECURITY") || err.contains("smtp_security"),
        "{err}"
    );
}

#[test]
fn reminders_and_notifications_are_checked_at_load() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.invites.reminders, ["50%", "48h"]);
    let off = load("", &[("MUSTER_INVITES_REMINDERS", "")]).unwrap();
    assert!(off.invites.reminders.is_empty());
    let two = load("", &[("MUSTER_INVITES_REMINDERS", "25%, 3d")]).unwrap();
    assert_eq!(two.invites.reminders, ["25%", "3d"]);
    let err = load("[invites]\nreminders = [\"50%\", \"soon\"]\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invites.reminders") && err.contains("item 2"),
        "{err}"
    );
    let err = load("[notifications]\ndigest_hour = 24\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("notifications.digest_hour"), "{err}");
    let err = load("", &[("MUSTER_NOTIFICATIONS_TO", "not an address")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("notifications.to"), "{err}");
    let c = load(
        "[notifications]\nmode = \"digest\"\nto = \"ops@example.org\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.notifications.mode,
        crate::config::NotificationMode::Digest
    );
}

#[test]
fn direct_delivery_needs_a_helo_name_that_is_a_name() {
    let text = "public_url = \"http://192.0.2.7:8080\"\n[smtp]\nmode = \"direct\"\n";
    let err = load(text, &[]).unwrap_err().to_string();
    assert!(err.contains("smtp.helo_name"), "{err}");
    assert!(err.contains("\"192.0.2.7\""), "{err}");
    let named = format!("{text}helo_name = \"mail.team.example\"\n");
    assert_eq!(load(&named, &[]).unwrap().smtp_mode(), SmtpMode::Direct);
}
