//! The password policy (R11): length, a zxcvbn strength estimate, and not
//! built from the address itself.

use zxcvbn::zxcvbn;

/// Longer passwords are refused: hashing and strength estimation cost grows
/// with length, and nobody types more.
pub const MAX_PASSWORD_CHARS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasswordPolicy {
    pub min_length: usize,
    /// zxcvbn score 0–4.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            min_score: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("The password needs at least {0} characters.")]
    TooShort(usize),
    #[error("The password can have at most {MAX_PASSWORD_CHARS} characters.")]
    TooLong,
    #[error("The password must not contain the mailbox name.")]
    ContainsName,
    #[error("The password is too easy to guess.{0}")]
    Weak(String),
    #[error("The two passwords do not match.")]
    Mismatch,
}

/// The shortest mailbox name a password is refused for containing.
const MIN_NAME_CHARS: usize = 3;

impl PasswordPolicy {
    /// Checks `password` for the mailbox `local@domain`. `confirmation` is
    /// compared when the form has one.
    pub fn check(
        &self,
        password: &str,
        confirmation: Option<&str>,
        local_part: &str,
        domain: &str,
    ) -> Result<(), Vec<PasswordProblem>> {
        let mut problems = Vec::new();
        let chars = password.chars().count();
        if chars < self.min_length {
            problems.push(PasswordProblem::TooShort(self.min_length));
        }
        if chars > MAX_PASSWORD_CHARS {
            problems.push(PasswordProblem::TooLong);
        }
        // A name of one or two letters is in half of all passwords: it is
        // left to the strength estimate, which knows the name too.
        // Compared as letters and digits only: "carolsmith12345" holds the
        // mailbox carol.smith as surely as "carol.smith1" does.
        let bare = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        };
        let name = bare(local_part);
        if name.chars().count() >= MIN_NAME_CHARS && bare(password).contains(&name) {
            problems.push(PasswordProblem::ContainsName);
        }
        if chars <= MAX_PASSWORD_CHARS && problems.is_empty() {
            let address = format!("{local_part}@{domain}");
            let estimate = zxcvbn(password, &[local_part, domain, &address]);
            if (estimate.score() as u8) < self.min_score {
                let hint = estimate
                    .feedback()
                    .and_then(|f| {
                        f.warning()
                            .map(|w| format!(" {}.", w.to_string().trim_end_matches('.')))
                    })
                    .unwrap_or_else(|| " Add more words or characters.".to_string());
                problems.push(PasswordProblem::Weak(hint));
            }
        }
        if confirmation.is_some_and(|c| c != password) {
            problems.push(PasswordProblem::Mismatch);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &str, c: Option<&str>) -> Result<(), Vec<PasswordProblem>> {
        PasswordPolicy::default().check(p, c, "jane.doe", "team.example")
    }

    #[test]
    fn the_mailbox_name_counts_without_its_dots() {
        for p in [
            "janedoe-1974-spring",
            "Jane_Doe rides 4 bikes",
            "xx jane.doe xx yy",
        ] {
            assert_eq!(
                check(p, None),
                Err(vec![PasswordProblem::ContainsName]),
                "{p}"
            );
        }
        assert_eq!(check("jane walks the doe trail 7", None), Ok(()));
    }

    #[test]
    fn policy() {
        assert_eq!(
            check("short", None),
            Err(vec![PasswordProblem::TooShort(12)])
        );
        assert!(matches!(
            check("password1234", None).unwrap_err()[0],
            PasswordProblem::Weak(_)
        ));
        assert_eq!(
            check("Jane.Doe-correct-horse", None),
            Err(vec![PasswordProblem::ContainsName])
        );
        assert_eq!(
            check("plinth-ferry-quartz-77", Some("plinth-ferry-quartz-78")),
            Err(vec![PasswordProblem::Mismatch])
        );
        assert_eq!(
            check("plinth-ferry-quartz-77", Some("plinth-ferry-quartz-77")),
            Ok(())
        );
        // zxcvbn's warning ends with its own full stop: one is enough.
        let weak = check("password1234", None).unwrap_err()[0].to_string();
        assert!(weak.ends_with('.') && !weak.contains(".."), "{weak}");
        assert_eq!(
            check(&"x".repeat(200), None),
            Err(vec![PasswordProblem::TooLong])
        );
        // A one-letter mailbox does not rule out every password with its letter.
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("Vivid-Tiger-Forest-8812", None, "e", "team.example"),
            Ok(())
        );
        assert_eq!(
            policy.check("Vivid-Tiger-Forest-8812", None, "tiger", "team.example"),
            Err(vec![PasswordProblem::ContainsName])
        );
    }
}
