//! `hookd verify`: checks a delivery a receiver got, for debugging signature problems.

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use hookd_verify::{Delivery, VerifiedScheme, VerifyOptions, verify};

use crate::cli::VerifyArgs;

pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let tolerance = parse_tolerance(&args.tolerance)?;
    let mut headers = Vec::new();
    for line in &args.headers {
        let Some((name, value)) = line.split_once(':') else {
            bail!("--header `{line}` must look like `name: value`");
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading the body from standard input")?;
    let now = hookd_core::time::unix_ms(SystemTime::now()).div_euclid(1000);
    let delivery =
        Delivery::from_parts(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())), &body);
    match verify(
        &delivery,
        &args.secret,
        &VerifyOptions::new(now).with_tolerance(tolerance),
    ) {
        Ok(VerifiedScheme::StandardWebhooks) => {
            println!("valid: Standard Webhooks signature (webhook-signature)");
            Ok(ExitCode::SUCCESS)
        }
        Ok(VerifiedScheme::Hex { header }) => {
            println!("valid: HMAC-SHA256 hex signature ({header})");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn parse_tolerance(text: &str) -> anyhow::Result<Option<Duration>> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    humantime::parse_duration(text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("--tolerance `{text}`: {e} (write e.g. 5m, or none)"))
}
