//! Property tests of hookd-core's pure decisions, run in the ordinary test suite on the
//! stable toolchain: canonical JSON and the envelope (checked against Node's own
//! `JSON.stringify` too), the retry schedule and duration parsing, event-type filters and
//! the SSRF address classifier. Each property runs thousands of generated cases; inputs
//! are kept small so every property takes well under a few seconds in a debug build.
//!
//! Found failures are not written to `proptest-regressions/` files (see [`config`]):
//! proptest prints the shrunk input, which becomes a named unit test next to the code.
//! `PROPTEST_CASES=100000 cargo test -p hookd-core --test properties` runs a longer
//! campaign.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use hookd_core::envelope::{Envelope, EnvelopeFormat};
use hookd_core::event_type::{
    BUILTIN_EVENT_TYPES, EventFilter, EventType, MAX_EVENT_TYPE_LEN, OPERATIONAL_EVENT_TYPES,
    any_matches,
};
use hookd_core::json::{CanonicalJson, JsonError, JsonLimits};
use hookd_core::schedule::RetrySchedule;
use hookd_core::target::{TargetPolicy, is_public};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Number, Value};
use url::Host;

/// A property's configuration: `cases` generated inputs (or `PROPTEST_CASES`), no
/// regression files written into the source tree, and shrinking bounded (20 s) so a
/// failure is reported promptly.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_time: 20_000,
        // Generators filter (values JavaScript would change); long runs must not give up.
        max_local_rejects: u32::MAX,
        ..ProptestConfig::default()
    }
}

// ---- canonical JSON: generators --------------------------------------------------------

/// 2^53, the largest integer magnitude JavaScript holds exactly.
const MAX_SAFE: u64 = 1 << 53;

fn json_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::char::range(' ', '~'),
        2 => prop::char::range('\0', '\u{1f}'),
        2 => prop::sample::select(vec![
            '"', '\\', '/', '\u{7f}', '\u{80}', '\u{a0}', 'é', '中', '😀', '\u{2028}',
            '\u{2029}', '\u{feff}', '\u{fffd}', '\u{ffff}', '\u{10ffff}', '\u{d7ff}', '\u{e000}',
        ]),
        1 => any::<char>(),
    ]
}

fn json_string() -> impl Strategy<Value = String> {
    prop::collection::vec(json_char(), 0..10).prop_map(String::from_iter)
}

/// Keys JavaScript orders specially (array indices) next to ones that only look like them.
const KEYS: &[&str] = &[
    "0",
    "1",
    "2",
    "9",
    "10",
    "01",
    "-0",
    "-1",
    "1.0",
    "1e1",
    " 1",
    "4294967294",
    "4294967295",
    "4294967296",
    "99999999999",
    "a",
    "b",
    "id",
    "__proto__",
    "constructor",
    "",
];

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(String::from),
        1 => (0u32..=u32::MAX).prop_map(|n| n.to_string()),
        2 => json_string(),
    ]
}

/// Numbers; `out_of_range` weighs the ones JavaScript would change (0 leaves them out).
fn numbers(out_of_range: u32) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (-(MAX_SAFE as i64)..=MAX_SAFE as i64).prop_map(Value::from),
        4 => (-1000i64..1000).prop_map(Value::from),
        // Out of range for JavaScript: rare, since one refuses the whole document.
        out_of_range => any::<i64>().prop_map(Value::from),
        out_of_range => any::<u64>().prop_map(Value::from),
        4 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        2 => (-1e6f64..1e6).prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => prop::sample::select(vec![
            0.0, -0.0, 1e21, -1e21, 1e-7, 1e-6, 5e-324, f64::MAX, f64::MIN_POSITIVE,
            9007199254740992.0, 9007199254740994.0, 1.5e17, 123456789012345680000.0, 0.1,
        ])
        .prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_values(1)
}

fn json_values(out_of_range: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => numbers(out_of_range),
        4 => json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

/// Near-JSON text: a soup of JSON's tokens and the classic mistakes around them.
fn json_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\t",
        "\r",
        "\"a\"",
        "\"",
        "\\",
        "\\u",
        "\\ud83d",
        "\\ude00",
        "\\ud800",
        "\\n",
        "\\x",
        "d800",
        "0",
        "1",
        "-",
        "+",
        ".",
        "e",
        "E",
        "00",
        "9007199254740993",
        "1e400",
        "1e-400",
        "1.5e17",
        "true",
        "false",
        "null",
        "nul",
        "tru",
        "NaN",
        "Infinity",
        "\u{feff}",
        "\u{a0}",
        "\u{0}",
        "é",
        "😀",
        "'a'",
        "/*",
        "//",
        "\"\\ud83d\\ude00\"",
        "\"k\":",
        "[[[[",
        "]]]]",
    ]);
    prop::collection::vec(token, 0..24).prop_map(|tokens| tokens.concat())
}

/// A value nested `kinds.len()` levels deep (an array or an object per level).
fn nested_text(kinds: &[bool]) -> String {
    let mut text = String::new();
    for &object in kinds {
        text.push_str(if object { "{\"k\":" } else { "[" });
    }
    text.push('0');
    for &object in kinds.iter().rev() {
        text.push(if object { '}' } else { ']' });
    }
    text
}

// ---- canonical JSON: reference checks --------------------------------------------------

/// Same JSON data: numbers compared by value (`1.0` is `1`, `-0` is `0`), object entries
/// compared irrespective of order.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}

/// Whether the documented number policy refuses `number`: integers beyond ±2^53, and
/// integer-valued numbers with 2^53 < |x| < 1e21 however they are spelled.
fn number_refused(number: &Number) -> bool {
    if let Some(unsigned) = number.as_u64() {
        return unsigned > MAX_SAFE;
    }
    if let Some(signed) = number.as_i64() {
        return signed.unsigned_abs() > MAX_SAFE;
    }
    let float = number.as_f64().unwrap_or(f64::NAN);
    let magnitude = float.abs();
    !float.is_finite()
        || (float.trunc() == float && magnitude > MAX_SAFE as f64 && magnitude < 1e21)
}

fn any_number_refused(value: &Value) -> bool {
    match value {
        Value::Number(n) => number_refused(n),
        Value::Array(items) => items.iter().any(any_number_refused),
        Value::Object(map) => map.values().any(any_number_refused),
        _ => false,
    }
}

/// JavaScript's array-index property names: canonical decimals of 0..=2^32-2.
fn is_array_index(key: &str) -> bool {
    key.parse::<u32>()
        .is_ok_and(|n| n != u32::MAX && n.to_string() == key)
}

/// The order in which JavaScript enumerates an object's keys: indices ascending, then the
/// other keys in insertion order.
fn javascript_key_order(map: &Map<String, Value>) -> Vec<&str> {
    let mut indices: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| is_array_index(k))
        .collect();
    indices.sort_by_key(|k| k.parse::<u32>().unwrap_or(u32::MAX));
    let named = map
        .keys()
        .map(String::as_str)
        .filter(|k| !is_array_index(k));
    indices.into_iter().chain(named).collect()
}

/// Checks that every object of `printed` (parsed in text order) lists its keys in
/// JavaScript's order for the corresponding object of `original`.
fn keys_in_javascript_order(original: &Value, printed: &Value) -> Result<(), String> {
    match (original, printed) {
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .try_for_each(|(a, b)| keys_in_javascript_order(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            let expected = javascript_key_order(a);
            let actual: Vec<&str> = b.keys().map(String::as_str).collect();
            if expected != actual {
                return Err(format!("keys {actual:?}, JavaScript orders {expected:?}"));
            }
            a.iter()
                .try_for_each(|(key, a)| keys_in_javascript_order(a, &b[key.as_str()]))
        }
        _ => Ok(()),
    }
}

fn canonical(value: &Value) -> Result<CanonicalJson, JsonError> {
    CanonicalJson::from_value(value, JsonLimits::default())
}

// ---- canonical JSON: properties ---------------------------------------------------------

proptest! {
    #![proptest_config(config(4000))]

    /// Canonical output parses back to the same data, lists keys in JavaScript's order, and canonicalising it again is the
    /// identity; a value is refused exactly when the number policy says so.
    #[test]
    fn canonical_output_reparses_to_the_same_value(value in json_value()) {
        match canonical(&value) {
            Ok(text) => {
                prop_assert!(!any_number_refused(&value), "accepted {}", text);
                let reparsed = text.to_value();
                prop_assert!(same_json(&reparsed, &value), "{} reparsed as {}", text, reparsed);
                // serde_json reads it too (its float parsing is not exact, so only this).
                prop_assert!(serde_json::from_str::<Value>(text.as_str()).is_ok(), "{}", text);
                keys_in_javascript_order(&value, &reparsed).map_err(TestCaseError::fail)?;
                let again = CanonicalJson::parse(text.as_str(), JsonLimits::default());
                prop_assert_eq!(again.as_ref(), Ok(&text));
                prop_assert_eq!(canonical(&reparsed), Ok(text.clone()));
                // Whitespace of the input never shows.
                let pretty = serde_json::to_string_pretty(&value).unwrap();
                let from_pretty = CanonicalJson::parse(&pretty, JsonLimits::default());
                prop_assert_eq!(from_pretty.as_ref(), Ok(&text));
            }
            Err(JsonError::NumberOutOfRange { .. }) => {
                prop_assert!(any_number_refused(&value), "refused {}", value);
            }
            Err(other) => prop_assert!(false, "{} refused: {}", value, other),
        }
    }

    /// Arbitrary text never panics. What we accept, serde_json accepts too and our
    /// output is a fixed point; what we call a syntax error, serde_json refuses too.
    #[test]
    fn arbitrary_text_never_panics(
        text in prop_oneof![
            3 => json_soup(),
            1 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
            1 => prop::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        ],
        max_depth in 0usize..8,
    ) {
        let limits = JsonLimits { max_depth };
        match CanonicalJson::parse(&text, limits) {
            Ok(out) => {
                prop_assert!(
                    serde_json::from_str::<Value>(&text).is_ok(),
                    "we accept {:?}, serde_json does not", text
                );
                prop_assert_eq!(CanonicalJson::parse(out.as_str(), limits), Ok(out.clone()));
            }
            Err(JsonError::Syntax(message)) => {
                prop_assert!(!message.is_empty());
                prop_assert!(
                    serde_json::from_str::<Value>(&text).is_err(),
                    "we call {:?} a syntax error ({}), serde_json reads it", text, message
                );
            }
            Err(JsonError::TooDeep { max_depth: reported }) => {
                prop_assert_eq!(reported, max_depth);
            }
            Err(JsonError::NumberOutOfRange { number }) => prop_assert!(number.chars().count() <= 41),
        }
    }

    /// Nesting up to the limit is accepted and one level more is refused, from text and
    /// from parsed values alike.
    #[test]
    fn depth_limit_holds(
        kinds in prop::collection::vec(any::<bool>(), 0..80),
        max_depth in 0usize..72,
    ) {
        let text = nested_text(&kinds);
        let limits = JsonLimits { max_depth };
        let depth = kinds.len();
        let parsed = CanonicalJson::parse(&text, limits);
        let value: Value = serde_json::from_str(&text).unwrap();
        let from_value = CanonicalJson::from_value(&value, limits);
        if depth <= max_depth {
            prop_assert_eq!(parsed.as_ref().map(CanonicalJson::as_str), Ok(text.as_str()));
            prop_assert_eq!(from_value.as_ref().map(CanonicalJson::as_str), Ok(text.as_str()));
        } else {
            prop_assert_eq!(parsed, Err(JsonError::TooDeep { max_depth }));
            prop_assert_eq!(from_value, Err(JsonError::TooDeep { max_depth }));
        }
    }
}

// ---- envelope ------------------------------------------------------------------------------

/// Event ids as clients may choose them (printable ASCII), hookd's own, and any text.
fn event_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[!-~]{1,40}",
        1 => "evt_[0-9a-z]{26}",
        1 => json_string(),
    ]
}

fn event_type_name() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,12}(\\.[a-z0-9_-]{1,12}){0,3}"
}

/// Event data: an object, as the API requires (and as publishing accepts it).
fn event_data() -> impl Strategy<Value = CanonicalJson> {
    prop::collection::vec((json_key(), json_values(0)), 0..6)
        .prop_filter_map("numbers JavaScript would change", |entries| {
            canonical(&Value::Object(entries.into_iter().collect())).ok()
        })
}

fn envelope_body(
    id: &str,
    created: i64,
    event_type: &str,
    data: &CanonicalJson,
    format: EnvelopeFormat,
) -> String {
    Envelope {
        event_id: id,
        created,
        event_type,
        data,
    }
    .body(format)
}

proptest! {
    #![proptest_config(config(3000))]

    /// The body is canonical JSON (a fixed point of `JSON.stringify(JSON.parse(body))`)
    /// with exactly the envelope's fields, in order, carrying the event unchanged.
    #[test]
    fn envelopes_are_canonical_and_carry_the_event(
        id in event_id(),
        created in 0i64..=MAX_SAFE as i64,
        event_type in event_type_name(),
        data in event_data(),
    ) {
        for format in [EnvelopeFormat::Typed, EnvelopeFormat::Event] {
            let body = envelope_body(&id, created, &event_type, &data, format);
            let again = CanonicalJson::parse(&body, JsonLimits { max_depth: 65 });
            prop_assert_eq!(again.as_ref().map(CanonicalJson::as_str), Ok(body.as_str()));
            // serde_json must read it; the fields are read with our exact parser.
            prop_assert!(serde_json::from_str::<Value>(&body).is_ok(), "{}", body);
            let parsed = CanonicalJson::from_canonical_unchecked(body.clone()).to_value();
            let Value::Object(fields) = &parsed else {
                return Err(TestCaseError::fail(format!("not an object: {body}")));
            };
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            match format {
                EnvelopeFormat::Typed => {
                    prop_assert_eq!(names, ["id", "created", "type", "data"]);
                    prop_assert_eq!(fields["id"].as_str(), Some(id.as_str()));
                    prop_assert_eq!(fields["created"].as_i64(), Some(created));
                    prop_assert_eq!(fields["type"].as_str(), Some(event_type.as_str()));
                }
                EnvelopeFormat::Event => {
                    prop_assert_eq!(names, ["event", "data"]);
                    prop_assert_eq!(fields["event"].as_str(), Some(event_type.as_str()));
                }
            }
            prop_assert!(same_json(&fields["data"], &data.to_value()), "{}", body);
        }
    }
}

// ---- envelope and canonical JSON against Node ----------------------------------------------

/// Prints `JSON.stringify(JSON.parse(line))` for each line of the file `argv[2]`.
const NODE_ROUND_TRIP: &str = r#"
const fs = require('fs');
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n');
lines.pop();
process.stdout.write(lines.map((l) => JSON.stringify(JSON.parse(l)) + '\n').join(''));
"#;

/// Node 20 is on every machine of this project; under `CI=true` its absence fails the
/// test instead of skipping it.
fn node_present() -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "`node` is not on PATH; CI must run the JavaScript round-trip check"
        );
        eprintln!("note: `node` is not on PATH; skipping the JavaScript round-trip check");
    }
    found
}

fn generate<S: Strategy>(strategy: S, count: usize, runner: &mut TestRunner) -> Vec<S::Value> {
    (0..count)
        .map(|_| strategy.new_tree(runner).unwrap().current())
        .collect()
}

/// A deterministic corpus of envelopes (both formats) and bare canonical values goes
/// through Node's `JSON.parse` and `JSON.stringify`: every line comes back byte for byte.
#[test]
fn node_json_stringify_reproduces_envelopes_and_values() {
    if !node_present() {
        return;
    }
    let mut runner = TestRunner::deterministic();
    let mut lines = Vec::new();
    let envelopes = (
        event_id(),
        0i64..=MAX_SAFE as i64,
        event_type_name(),
        event_data(),
    );
    for (i, (id, created, event_type, data)) in generate(envelopes, 2000, &mut runner)
        .into_iter()
        .enumerate()
    {
        let format = if i % 2 == 0 {
            EnvelopeFormat::Typed
        } else {
            EnvelopeFormat::Event
        };
        lines.push(envelope_body(&id, created, &event_type, &data, format));
    }
    let values = generate(json_value(), 3000, &mut runner);
    lines.extend(
        values
            .iter()
            .filter_map(|v| canonical(v).ok())
            .map(CanonicalJson::into_string),
    );
    assert!(
        lines.len() > 4000,
        "too few accepted values: {}",
        lines.len()
    );
    assert!(lines.iter().all(|l| !l.contains('\n')));

    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    let script = dir.path().join("round-trip.js");
    std::fs::write(
        &corpus,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    std::fs::write(&script, NODE_ROUND_TRIP).unwrap();
    let output = run_node(&script, &corpus);
    let printed: Vec<&str> = output.lines().collect();
    assert_eq!(printed.len(), lines.len());
    for (ours, node) in lines.iter().zip(printed) {
        assert_eq!(
            ours, node,
            "Node re-serialises our canonical JSON differently"
        );
    }
}

fn run_node(script: &Path, corpus: &Path) -> String {
    let output = Command::new("node")
        .arg(script)
        .arg(corpus)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

// ---- retry schedule and durations -----------------------------------------------------------

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        // Realistic steps: whole seconds, minutes, hours.
        3 => (0u64..200_000).prop_map(Duration::from_secs),
        2 => (0u64..100_000).prop_map(Duration::from_millis),
        // Up to a century, with any sub-second part.
        2 => (0u64..3_155_760_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// Near-duration text: numbers of every size, units real and invented, separators.
fn duration_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "[0-9]{1,3}",
        "[0-9]{18,30}",
        prop::sample::select(vec![
            "ns", "us", "µs", "ms", "s", "sec", "m", "min", "h", "hr", "hours", "d", "days", "w",
            "week", "M", "month", "y", "years", "year", " ", ",", ".", "-", "+", "e", "1e9",
            "\u{a0}", "\t", "0", "", "off",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(token, 0..12).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(config(4000))]

    /// A schedule's text form parses back to the same schedule.
    #[test]
    fn retry_schedules_round_trip_through_their_text(
        delays in prop::collection::vec(duration(), 1..8),
    ) {
        let schedule = RetrySchedule::new(delays.clone()).unwrap();
        let text = schedule.to_string();
        let parsed = RetrySchedule::from_str(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&schedule), "text {:?}", text);
        prop_assert_eq!(schedule.max_attempts() as usize, delays.len());
        for (i, delay) in delays.iter().enumerate() {
            prop_assert_eq!(schedule.delay_before(i as u32 + 1), Some(*delay));
        }
        prop_assert_eq!(schedule.delay_before(delays.len() as u32 + 1), None);
        prop_assert_eq!(schedule.delay_before(0), None);
    }

    /// Arbitrary text never panics the schedule parser (the `--retry-schedule` flag) or the
    /// duration parser the configuration uses; a parsed schedule prints as it parses.
    #[test]
    fn schedule_and_duration_parsing_never_panic(
        text in prop_oneof![
            3 => duration_soup(),
            1 => prop::collection::vec(any::<char>(), 0..30).prop_map(String::from_iter),
        ],
    ) {
        if let Ok(schedule) = RetrySchedule::from_str(&text) {
            prop_assert!(schedule.max_attempts() >= 1);
            let again = RetrySchedule::from_str(&schedule.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&schedule));
        }
        if let Ok(parsed) = humantime::parse_duration(&text) {
            let printed = humantime::format_duration(parsed).to_string();
            prop_assert_eq!(humantime::parse_duration(&printed), Ok(parsed), "{:?}", printed);
        }
    }

    /// Every duration, up to the largest, prints as text that parses back to it.
    #[test]
    fn durations_round_trip_through_their_text(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let duration = Duration::new(secs, nanos);
        let printed = humantime::format_duration(duration).to_string();
        prop_assert_eq!(humantime::parse_duration(&printed), Ok(duration), "{:?}", printed);
    }
}

// ---- event types and filters ----------------------------------------------------------------

/// Segments chosen so that prefixes collide: `payment` is a prefix of `payment_intent`
/// as text but not as a segment.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "a", "ab", "b", "payment", "payment_intent", "payout_request", "webhook", "x-1", "0",
        ])
        .prop_map(String::from),
        1 => "[a-z0-9_-]{1,6}",
    ]
}

fn segments() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(segment(), 1..5)
}

/// Reference for [`EventType::parse`]: dot-separated non-empty segments of `[a-z0-9_-]`,
/// at most 128 bytes, written as a scan of the characters.
fn well_formed_type(name: &str) -> bool {
    let mut segment_len = 0;
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' | '-' => segment_len += 1,
            '.' if segment_len > 0 => segment_len = 0,
            _ => return false,
        }
    }
    segment_len > 0 && name.len() <= MAX_EVENT_TYPE_LEN
}

fn builtin_catalogue() -> Vec<&'static str> {
    BUILTIN_EVENT_TYPES
        .iter()
        .chain(OPERATIONAL_EVENT_TYPES)
        .map(|(name, _)| *name)
        .collect()
}

proptest! {
    #![proptest_config(config(5000))]

    /// `prefix.*` matches exactly the types that continue the prefix's segments with at
    /// least one more.
    #[test]
    fn prefix_filters_match_segment_wise(prefix in segments(), event in segments()) {
        let prefix_text = prefix.join(".");
        let event_text = event.join(".");
        let known = format!("{prefix_text}.known");
        let filter = EventFilter::parse(&format!("{prefix_text}.*"), [known.as_str()]).unwrap();
        let expected = event.len() > prefix.len() && event[..prefix.len()] == prefix[..];
        prop_assert_eq!(filter.matches(&event_text), expected, "{} vs {}", filter, event_text);
        prop_assert!(filter.matches(&known));
    }

    /// `*` matches every type except hookd's own `webhook.…` ones; an exact filter matches
    /// only its type; a list matches when one of its filters does.
    #[test]
    fn star_and_exact_filters(event in segments(), other in segments()) {
        let event_text = event.join(".");
        let other_text = other.join(".");
        let operational = event[0] == "webhook" && event.len() > 1;
        let star = EventFilter::parse("*", builtin_catalogue()).unwrap();
        prop_assert_eq!(star.matches(&event_text), !operational, "* vs {}", event_text);
        let exact = EventFilter::parse(&event_text, [event_text.as_str()]).unwrap();
        prop_assert!(exact.matches(&event_text));
        prop_assert_eq!(exact.matches(&other_text), event == other);
        let filters = [exact.clone(), EventFilter::from_stored(&format!("{other_text}.*"))];
        prop_assert_eq!(
            any_matches(&filters, &other_text),
            event == other || filters[1].matches(&other_text)
        );
        prop_assert!(!any_matches(&[], &event_text));
    }

    /// Parsing never panics, agrees with the reference grammar, and an accepted filter
    /// prints as written, reads back from storage as itself, and matches something in the
    /// catalogue it was checked against.
    #[test]
    fn filters_and_types_parse_without_panicking(
        text in prop_oneof![
            4 => "[a-zA-Z0-9_.*\\- ]{0,20}",
            1 => prop::collection::vec(any::<char>(), 0..20).prop_map(String::from_iter),
            1 => "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}(\\.\\*)?",
            1 => "[a-z]{60,70}\\.[a-z]{60,70}",
        ],
    ) {
        prop_assert_eq!(EventType::parse(&text).is_ok(), well_formed_type(&text), "{:?}", text);
        let catalogue = builtin_catalogue();
        if let Ok(filter) = EventFilter::parse(&text, catalogue.iter().copied()) {
            prop_assert_eq!(filter.to_string(), text.clone());
            prop_assert_eq!(EventFilter::from_stored(&text), filter.clone());
            prop_assert!(catalogue.iter().any(|t| filter.matches(t)), "{} matches nothing", text);
        }
    }
}

// ---- SSRF address classifier ------------------------------------------------------------------

/// Refused IPv4 ranges, written out independently of the classifier's table: IANA's
/// special-purpose ranges that are not globally reachable, plus Azure's platform endpoint.
const REFUSED_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "168.63.129.16/32",
];

/// IPv6 ranges refused whatever they contain. Anything outside 2000::/3 is refused too,
/// unless it embeds an IPv4 address ([`EMBEDS_V4`]).
const REFUSED_V6: &[&str] = &[
    "::/128",
    "::1/128",
    "::/96",
    "::ffff:0:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001::/32",
    "2001:db8::/32",
    "3fff::/20",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

/// IPv6 ranges that stand for an IPv4 address (mapped, NAT64, 6to4): judged as that address.
const EMBEDS_V4: &[&str] = &["::ffff:0:0/96", "64:ff9b::/96", "2002::/16"];

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|text| text.parse().unwrap()).collect()
}

fn v4_refused_by_reference(ip: Ipv4Addr) -> bool {
    nets(REFUSED_V4)
        .iter()
        .any(|net| net.contains(&IpAddr::V4(ip)))
}

fn v6_public_by_reference(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let embeds = nets(EMBEDS_V4);
    if embeds[..2].iter().any(|net| net.contains(&IpAddr::V6(ip))) {
        return !v4_refused_by_reference(Ipv4Addr::from(bits as u32));
    }
    if embeds[2].contains(&IpAddr::V6(ip)) {
        return !v4_refused_by_reference(Ipv4Addr::from((bits >> 80) as u32));
    }
    let global: Ipv6Net = "2000::/3".parse().unwrap();
    global.contains(&ip)
        && !nets(REFUSED_V6)
            .iter()
            .any(|net| net.contains(&IpAddr::V6(ip)))
}

/// IPv4 addresses spread over the whole space and crowded at every refused range's edges.
fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    let edges = (0..REFUSED_V4.len(), 0u8..5, any::<u32>()).prop_map(|(i, edge, random)| {
        let net: Ipv4Net = REFUSED_V4[i].parse().unwrap();
        let first = u32::from(net.network());
        let last = u32::from(net.broadcast());
        Ipv4Addr::from(match edge {
            0 => first,
            1 => last,
            2 => first.wrapping_sub(1),
            3 => last.wrapping_add(1),
            _ => first | (random & !u32::from(net.netmask())),
        })
    });
    prop_oneof![2 => any::<u32>().prop_map(Ipv4Addr::from), 3 => edges]
}

/// IPv6 addresses: random, inside and at the edges of every listed range, and IPv4
/// addresses in each embedding form.
fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    let ranges: Vec<&'static str> = REFUSED_V6.iter().chain(EMBEDS_V4).copied().collect();
    let count = ranges.len();
    let edges = (0..count, 0u8..5, any::<u128>()).prop_map(move |(i, edge, random)| {
        let net: Ipv6Net = ranges[i].parse().unwrap();
        let first = u128::from(net.network());
        let last = u128::from(net.broadcast());
        Ipv6Addr::from(match edge {
            0 => first,
            1 => last,
            2 => first.wrapping_sub(1),
            3 => last.wrapping_add(1),
            _ => first | (random & !u128::from(net.netmask())),
        })
    });
    let embedded = (ipv4(), 0u8..4).prop_map(|(v4, form)| {
        let v4bits = u128::from(u32::from(v4));
        match form {
            0 => v4.to_ipv6_mapped(),
            1 => v4.to_ipv6_compatible(),
            2 => Ipv6Addr::from((0x64_ff9b_u128 << 96) | v4bits),
            _ => Ipv6Addr::from((0x2002_u128 << 112) | (v4bits << 80)),
        }
    });
    prop_oneof![
        2 => any::<u128>().prop_map(Ipv6Addr::from),
        1 => any::<u128>().prop_map(|r| Ipv6Addr::from((0x2000_u128 << 112) | (r >> 3))),
        3 => edges,
        3 => embedded,
    ]
}

/// Spellings of hosts in URLs: dotted, integer, hex and octal IPv4, bracketed IPv6, and
/// names (some that can only mean this machine).
fn url_host() -> impl Strategy<Value = String> {
    prop_oneof![
        ipv4().prop_map(|ip| ip.to_string()),
        ipv4().prop_map(|ip| u32::from(ip).to_string()),
        ipv4().prop_map(|ip| format!("{:#x}", u32::from(ip))),
        ipv4().prop_map(|ip| {
            let [a, b, c, d] = ip.octets();
            format!("0{a:o}.{b}.0x{c:x}.{d}")
        }),
        ipv4().prop_map(|ip| {
            let [a, b, c, d] = ip.octets();
            format!("{a}.{}", u32::from_be_bytes([0, b, c, d]))
        }),
        ipv6().prop_map(|ip| format!("[{ip}]")),
        ipv4().prop_map(|ip| format!("[::ffff:{ip}]")),
        prop::sample::select(vec![
            "localhost",
            "LOCALHOST.",
            "a.localhost",
            "example.com",
            "example.com.",
            "hooks.example.internal",
            "printer.local",
            "intranet",
            "xn--bcher-kva.example",
            "%31%32%37.0.0.1",
            "１２７.0.0.1",
            "",
            "[::1",
            "[fe80::1%25eth0]",
        ])
        .prop_map(String::from),
    ]
}

fn url_text() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(vec!["https", "http", "HTTPS", "ftp", "javascript", ""]);
    let userinfo = prop::sample::select(vec!["", "", "", "user@", "user:pw@", "@", "a@b@"]);
    let port = prop::sample::select(vec!["", "", ":443", ":8080", ":0", ":65536", ":x"]);
    let path = "(/[a-z0-9%?#=&]{0,8}){0,3}";
    (scheme, userinfo, url_host(), port, path)
        .prop_map(|(s, u, h, p, path)| format!("{s}://{u}{h}{p}{path}"))
}

const STRICT: TargetPolicy = TargetPolicy {
    allow_private_targets: false,
    allow_http: false,
};
const OPEN: TargetPolicy = TargetPolicy {
    allow_private_targets: true,
    allow_http: true,
};

proptest! {
    #![proptest_config(config(6000))]

    /// The classifier agrees with the independent range list for every IPv4 address, and
    /// an IPv4-mapped address is judged as its IPv4 address.
    #[test]
    fn ipv4_classification_matches_the_reference(ip in ipv4()) {
        let public = is_public(IpAddr::V4(ip));
        prop_assert_eq!(public, !v4_refused_by_reference(ip), "{}", ip);
        prop_assert_eq!(is_public(IpAddr::V6(ip.to_ipv6_mapped())), public, "mapped {}", ip);
        prop_assert_eq!(STRICT.check_ip(IpAddr::V4(ip)).is_ok(), public);
        prop_assert!(OPEN.check_ip(IpAddr::V4(ip)).is_ok());
    }

    /// The classifier agrees with the independent range list for IPv6 addresses, and no
    /// IPv6 form of a refused IPv4 address (mapped, compatible, NAT64, 6to4) is allowed.
    #[test]
    fn ipv6_classification_matches_the_reference(ip in ipv6(), v4 in ipv4()) {
        let public = is_public(IpAddr::V6(ip));
        prop_assert_eq!(public, v6_public_by_reference(ip), "{}", ip);
        prop_assert_eq!(STRICT.check_ip(IpAddr::V6(ip)).is_ok(), public);
        prop_assert!(OPEN.check_ip(IpAddr::V6(ip)).is_ok());
        if !is_public(IpAddr::V4(v4)) {
            let bits = u128::from(u32::from(v4));
            for form in [
                v4.to_ipv6_mapped(),
                v4.to_ipv6_compatible(),
                Ipv6Addr::from((0x64_ff9b_u128 << 96) | bits),
                Ipv6Addr::from((0x2002_u128 << 112) | (bits << 80)),
            ] {
                prop_assert!(!is_public(IpAddr::V6(form)), "{} allows refused {}", form, v4);
            }
        }
    }

    /// `check_url` never panics; a URL it accepts under the default policy is https with
    /// no credentials and, for an IP literal in any spelling, a public address; accepting
    /// is stable (the returned URL is accepted again as itself).
    #[test]
    fn check_url_accepts_only_what_the_policy_allows(
        text in prop_oneof![
            4 => url_text(),
            1 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
        ],
    ) {
        let _ = OPEN.check_url(&text);
        if let Ok(url) = STRICT.check_url(&text) {
            prop_assert_eq!(url.scheme(), "https", "{}", text);
            prop_assert!(url.username().is_empty() && url.password().is_none(), "{}", text);
            match url.host() {
                Some(Host::Ipv4(ip)) => prop_assert!(is_public(IpAddr::V4(ip)), "{}", text),
                Some(Host::Ipv6(ip)) => prop_assert!(is_public(IpAddr::V6(ip)), "{}", text),
                Some(Host::Domain(name)) => {
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    prop_assert!(name != "localhost" && !name.ends_with(".localhost"), "{}", text);
                }
                None => prop_assert!(false, "{} has no host", text),
            }
            prop_assert_eq!(STRICT.check_url(url.as_str()), Ok(url.clone()));
        }
    }
}
