//! `hookd verify`: checks a delivery a receiver got, for scripts and for debugging
//! signature problems. Exit 0 and `valid: …` on stdout when it verifies; exit 1 and
//! `invalid: <reason>` on stderr when it does not; bad flags are usage errors (exit 2).

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use hookd_verify::{Delivery, VerifiedScheme, VerifyOptions, verify};

use crate::cli::VerifyArgs;

/// `--tolerance`: a duration, or `None` for no timestamp check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tolerance(pub(crate) Option<Duration>);

/// Parses `--tolerance`: `none`, or a duration such as `5m` or `90s`.
pub(crate) fn parse_tolerance(text: &str) -> Result<Tolerance, String> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(Tolerance(None));
    }
    humantime::parse_duration(text.trim())
        .map(|duration| Tolerance(Some(duration)))
        .map_err(|e| format!("{e} (write a duration such as 5m or 30s, or none)"))
}

/// Parses `--header 'name: value'` (as curl takes it): the value is trimmed, the name
/// must be a non-empty header name.
pub(crate) fn parse_header(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once(':') else {
        return Err("write it as `name: value`".to_owned());
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("`{name}` is not a header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        // A usage error (2), not an invalid delivery (1).
        eprintln!("hookd: pipe the received body into standard input: hookd verify … < body.json");
        return Ok(ExitCode::from(2));
    }
    let mut body = Vec::new();
    stdin
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    let now = hookd_core::time::unix_ms(SystemTime::now()).div_euclid(1000);
    let delivery = Delivery::from_parts(
        args.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        &body,
    );
    let mut options = VerifyOptions::new(now).with_tolerance(args.tolerance.0);
    if !args.signature_headers.is_empty() {
        options = options.with_hex_header_names(args.signature_headers.iter().cloned());
    }
    match verify(&delivery, &args.secret, &options) {
        Ok(VerifiedScheme::StandardWebhooks) => {
            println!("valid: Standard Webhooks signature (webhook-signature)");
            Ok(ExitCode::SUCCESS)
        }
        Ok(VerifiedScheme::Hex { header }) => {
            println!("valid: HMAC-SHA256 hex signature ({header})");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_takes_durations_and_none() {
        assert_eq!(
            parse_tolerance("5m"),
            Ok(Tolerance(Some(Duration::from_secs(300))))
        );
        assert_eq!(
            parse_tolerance(" 90s "),
            Ok(Tolerance(Some(Duration::from_secs(90))))
        );
        assert_eq!(parse_tolerance("None"), Ok(Tolerance(None)));
        assert!(parse_tolerance("soon").is_err());
        assert!(parse_tolerance("").is_err());
    }

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("webhook-id:  evt_1 "),
            Ok(("webhook-id".to_owned(), "evt_1".to_owned()))
        );
        // Only the first colon splits: values may hold more.
        assert_eq!(
            parse_header("x-thing: a:b"),
            Ok(("x-thing".to_owned(), "a:b".to_owned()))
        );
        assert!(parse_header("webhook-id evt_1").is_err());
        assert!(parse_header(": evt_1").is_err());
        assert!(parse_header("web hook: x").is_err());
    }
}
