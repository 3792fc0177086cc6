//! What pages never show: the values of environment variables named like credentials, wherever
//! they appear (the environment itself, the command, the launch log), whether the launch's
//! environment holds them or its command assigns them (`export X509_USER_PROXY=...` in a login
//! setup).

/// Parts of a variable's name that say its value is a credential.
const SECRET_WORDS: [&str; 9] = [
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "PROXY",
    "CREDENTIAL",
    "APIKEY",
    "API_KEY",
    "PRIVATE",
];

pub const MASK: &str = "••••••";

/// Values shorter than this are masked in the environment only: replacing `1` or `on`
/// everywhere in a log would hide more than it protects.
const MIN_MASKED_IN_TEXT: usize = 4;

pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// The secret values of an environment, longest first (so a value containing another is
/// replaced whole).
pub struct Secrets(Vec<String>);

/// The values `texts` assign to credentials' names (`NAME=value`, `NAME="value"`).
fn assigned(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let bytes = text.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for (eq, _) in text.match_indices('=') {
        let start = text[..eq]
            .bytes()
            .rposition(|b| !is_name(b))
            .map_or(0, |p| p + 1);
        if start == eq || !is_secret_name(&text[start..eq]) {
            continue;
        }
        let rest = &text[eq + 1..];
        let value = match bytes.get(eq + 1) {
            Some(q @ (b'"' | b'\'')) => rest[1..].split(*q as char).next().unwrap_or(""),
            _ => rest
                .split(|c: char| c.is_whitespace() || ";&|)".contains(c))
                .next()
                .unwrap_or(""),
        };
        values.push(value.to_string());
    }
    values
}

impl Secrets {
    /// The secrets of a launch: its environment's, and those its `texts` (its command)
    /// assign.
    pub fn of(env: &[(String, String)], texts: &[&str]) -> Secrets {
        let mut values: Vec<String> = env
            .iter()
            .filter(|(k, _)| is_secret_name(k))
            .map(|(_, v)| v.clone())
            .chain(texts.iter().flat_map(|t| assigned(t)))
            .filter(|v| v.len() >= MIN_MASKED_IN_TEXT)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets(values)
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.0 {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// The environment with every credential's value masked.
    pub fn mask_env(env: &[(String, String)]) -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| {
                let shown = if is_secret_name(k) && !v.is_empty() {
                    MASK.to_string()
                } else {
                    v.clone()
                };
                (k.clone(), shown)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn credentials_are_masked_everywhere_and_nothing_else() {
        let e = env(&[
            ("X509_USER_PROXY", "/tmp/x509up_u1234"),
            ("BEARER_TOKEN_FILE", "/run/user/1234/bt_u1234"),
            ("db_password", "hunter22"),
            ("CASCADE_STAGE", "reco"),
            ("SHORT_SECRET", "ab"),
        ]);
        let s = Secrets::of(&e, &[]);
        let masked = Secrets::mask_env(&e);
        assert_eq!(masked[0].1, MASK);
        assert_eq!(masked[1].1, MASK);
        assert_eq!(masked[2].1, MASK);
        assert_eq!(masked[3].1, "reco");
        assert_eq!(masked[4].1, MASK);
        let log = "using /tmp/x509up_u1234 with hunter22 for reco (ab)";
        assert_eq!(
            s.mask(log),
            format!("using {MASK} with {MASK} for reco (ab)")
        );
    }

    #[test]
    fn credentials_a_command_assigns_are_masked() {
        let command = "/bin/sh -c 'export X509_USER_PROXY=/tmp/x509up_u42; BEARER_TOKEN=\"abc def\" run --token=zzzz1234 STAGE=reco'";
        let s = Secrets::of(&[], &[command]);
        let masked = s.mask(command);
        assert!(!masked.contains("x509up_u42"), "{masked}");
        assert!(!masked.contains("abc def"), "{masked}");
        assert!(
            !masked.contains("zzzz1234"),
            "`--token=` is a credential too: {masked}"
        );
        assert!(masked.contains("STAGE=reco"), "{masked}");
    }
}
