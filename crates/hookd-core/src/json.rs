//! Canonical JSON for webhook bodies.
//!
//! Receivers verify our HMAC over `JSON.stringify(JSON.parse(body))` computed
//! in JavaScript, so every body we send must be a fixed point of that round
//! trip. This module turns client JSON into such text once, at ingest, and
//! refuses what JavaScript cannot carry unchanged.
//!
//! The output matches V8 byte for byte:
//! - no whitespace;
//! - object keys that are array indices (`"0"`..=`"4294967294"` in canonical
//!   decimal) come first in ascending numeric order, other keys follow in
//!   insertion order; a duplicated key keeps the position of its first
//!   occurrence and the value of its last, like `JSON.parse`;
//! - strings escape only `"`, `\` and control characters (short forms where
//!   JavaScript has them, otherwise `\u00xx` in lowercase hex);
//! - numbers are printed as ECMAScript `Number.prototype.toString` would,
//!   via `ryu-js`, with `-0` printed as `0`.
//!
//! Client text is parsed by a small parser in this module rather than by
//! `serde_json`: `serde_json` without `float_roundtrip` may round decimal
//! floats to a neighbouring `f64` (about a third of 17-digit inputs), which
//! would make our bytes differ from what JavaScript makes of the same text,
//! and it hides how a number was spelled. Our parser is iterative, so deep
//! input fails with [`JsonError::TooDeep`] instead of exhausting the stack.
//!
//! Number policy, so that every integer-looking number in canonical text is
//! exact for JavaScript and non-JavaScript receivers alike:
//! - an integer literal (no fraction, no exponent) whose magnitude exceeds
//!   2^53 is refused, because JavaScript would silently change it;
//! - any number whose value is an integer with 2^53 < |x| < 1e21 is refused
//!   too (for example `1.5e17`), because JavaScript would print it as a long
//!   integer literal that the first rule refuses, which would break
//!   re-ingesting canonical text; from [`serde_json::Value`] these rules
//!   apply to `u64`/`i64` and `f64` values alike, since a `Value` no longer
//!   knows how its numbers were spelled;
//! - numbers that overflow to infinity (`1e400`) are refused; numbers that
//!   underflow (`1e-400`) become `0`, as in JavaScript.
//!
//! Lone surrogate escapes (`"\ud800"`) are refused as syntax errors because
//! Rust strings cannot hold them.

use std::fmt;

use serde_json::{Map, Number, Value};

/// 2^53: larger integers are not all representable as `f64`.
const MAX_SAFE_MAGNITUDE: u64 = 1 << 53;
/// From 1e21 on, JavaScript prints numbers with an exponent.
const EXPONENT_THRESHOLD: f64 = 1e21;
/// The largest array index, 2^32 - 2.
const MAX_ARRAY_INDEX: u64 = 4_294_967_294;
/// Client text quoted in errors is cut to this many characters.
const MAX_QUOTED_CHARS: usize = 40;

/// JSON text that is a fixed point of JavaScript's `JSON.stringify(JSON.parse(text))`.
#[derive(Clone, PartialEq, Eq)]
pub struct CanonicalJson(String);

impl CanonicalJson {
    /// Parses client text and canonicalizes it.
    pub fn parse(raw: &str, limits: JsonLimits) -> Result<CanonicalJson, JsonError> {
        let value = Parser::new(raw, limits.max_depth).parse()?;
        CanonicalJson::from_value(&value, limits)
    }

    /// Canonicalizes an already parsed value.
    ///
    /// Prefer [`CanonicalJson::parse`] for client text: `serde_json::from_str` may have
    /// rounded its floats differently from JavaScript.
    pub fn from_value(value: &Value, limits: JsonLimits) -> Result<CanonicalJson, JsonError> {
        let mut out = String::new();
        write_value(value, 0, limits.max_depth, &mut out)?;
        Ok(CanonicalJson(out))
    }

    /// Wraps text that was canonicalized before, such as text read back from our own storage.
    pub fn from_canonical_unchecked(text: String) -> CanonicalJson {
        CanonicalJson(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Parses the text back into a value.
    ///
    /// Canonical text always parses; text smuggled in through
    /// [`CanonicalJson::from_canonical_unchecked`] that does not yields `Value::Null`.
    pub fn to_value(&self) -> Value {
        // Our parser rounds floats exactly, so the value canonicalizes back to the same text.
        Parser::new(&self.0, usize::MAX)
            .parse()
            .unwrap_or(Value::Null)
    }
}

impl fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CanonicalJson").field(&self.0).finish()
    }
}

impl fmt::Display for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bounds on the client JSON we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonLimits {
    /// Maximum nesting of objects and arrays; the outermost container is level 1.
    pub max_depth: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        JsonLimits { max_depth: 64 }
    }
}

/// Why client JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error(
        "JSON nests objects/arrays deeper than {max_depth} levels; flatten the payload or move deep parts into strings"
    )]
    TooDeep { max_depth: usize },
    #[error(
        "number {number} would not reach JavaScript receivers unchanged (integers must lie within ±2^53 and numbers must be finite); send large integers as strings"
    )]
    NumberOutOfRange { number: String },
}

fn out_of_range(spelling: &str) -> JsonError {
    // Quote only a prefix so a megabyte of digits does not end up in a response or log.
    let number = match spelling.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &spelling[..cut]),
        None => spelling.to_owned(),
    };
    JsonError::NumberOutOfRange { number }
}

/// Applies the number policy to a float and returns it if allowed.
fn check_float(value: f64, spelling: impl FnOnce() -> String) -> Result<f64, JsonError> {
    let magnitude = value.abs();
    let unsafe_integer = value.fract() == 0.0
        && magnitude > MAX_SAFE_MAGNITUDE as f64
        && magnitude < EXPONENT_THRESHOLD;
    if !value.is_finite() || unsafe_integer {
        return Err(out_of_range(&spelling()));
    }
    Ok(value)
}

fn write_value(
    value: &Value,
    depth: usize,
    max_depth: usize,
    out: &mut String,
) -> Result<(), JsonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out)?,
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            if depth >= max_depth {
                return Err(JsonError::TooDeep { max_depth });
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, depth + 1, max_depth, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            if depth >= max_depth {
                return Err(JsonError::TooDeep { max_depth });
            }
            out.push('{');
            for (i, (key, item)) in ordered_entries(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, depth + 1, max_depth, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Orders entries the way JavaScript enumerates own properties.
fn ordered_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut indexed = Vec::new();
    let mut named = Vec::with_capacity(map.len());
    for (key, value) in map {
        match array_index(key) {
            Some(index) => indexed.push((index, key, value)),
            None => named.push((key, value)),
        }
    }
    // Keys are unique, so indices are too and an unstable sort is deterministic.
    indexed.sort_unstable_by_key(|&(index, _, _)| index);
    indexed
        .into_iter()
        .map(|(_, key, value)| (key, value))
        .chain(named)
        .collect()
}

/// Returns the index if `key` is a canonical decimal array index.
fn array_index(key: &str) -> Option<u64> {
    let bytes = key.as_bytes();
    let canonical = !bytes.is_empty()
        && bytes.len() <= 10
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes.len() == 1 || bytes[0] != b'0');
    if !canonical {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|&index| index <= MAX_ARRAY_INDEX)
}

fn write_number(number: &Number, out: &mut String) -> Result<(), JsonError> {
    let value = if let Some(unsigned) = number.as_u64() {
        if unsigned > MAX_SAFE_MAGNITUDE {
            return Err(out_of_range(&unsigned.to_string()));
        }
        // Exact: the magnitude is at most 2^53.
        unsigned as f64
    } else if let Some(signed) = number.as_i64() {
        if signed.unsigned_abs() > MAX_SAFE_MAGNITUDE {
            return Err(out_of_range(&signed.to_string()));
        }
        signed as f64
    } else {
        let Some(float) = number.as_f64() else {
            return Err(out_of_range(&number.to_string()));
        };
        check_float(float, || number.to_string())?
    };
    if value == 0.0 {
        // JavaScript prints negative zero as "0".
        out.push('0');
    } else {
        out.push_str(ryu_js::Buffer::new().format_finite(value));
    }
    Ok(())
}

fn write_string(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so these slice bounds are char boundaries.
        out.push_str(&text[start..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// An open container while parsing; an explicit stack keeps deep input off the call stack.
enum Frame {
    Array(Vec<Value>),
    Object(Map<String, Value>, String),
}

/// Strict RFC 8259 parser that accepts exactly what `JSON.parse` accepts,
/// except lone surrogate escapes.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, max_depth: usize) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            max_depth,
        }
    }

    fn parse(mut self) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            self.skip_whitespace();
            let mut value = match self.peek() {
                Some(b'[') => {
                    self.open_container(stack.len())?;
                    self.skip_whitespace();
                    if self.eat(b']') {
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue;
                    }
                }
                Some(b'{') => {
                    self.open_container(stack.len())?;
                    self.skip_whitespace();
                    if self.eat(b'}') {
                        Value::Object(Map::new())
                    } else {
                        let key = self.parse_key()?;
                        stack.push(Frame::Object(Map::new(), key));
                        continue;
                    }
                }
                Some(b'"') => Value::String(self.parse_string()?),
                Some(b'-' | b'0'..=b'9') => Value::Number(self.parse_number()?),
                Some(b't') => self.parse_literal("true", Value::Bool(true))?,
                Some(b'f') => self.parse_literal("false", Value::Bool(false))?,
                Some(b'n') => self.parse_literal("null", Value::Null)?,
                Some(_) => return Err(self.error("expected a value")),
                None => return Err(self.error("unexpected end of input, expected a value")),
            };
            // Attach the finished value to its parent, closing containers as they end.
            loop {
                match stack.last_mut() {
                    None => {
                        self.skip_whitespace();
                        if self.pos < self.bytes.len() {
                            return Err(self.error("unexpected characters after the JSON value"));
                        }
                        return Ok(value);
                    }
                    Some(Frame::Array(items)) => {
                        items.push(value);
                        self.skip_whitespace();
                        if self.eat(b',') {
                            break;
                        }
                        if !self.eat(b']') {
                            return Err(self.error("expected ',' or ']'"));
                        }
                        let Some(Frame::Array(items)) = stack.pop() else {
                            unreachable!("the top frame was just matched as an array");
                        };
                        value = Value::Array(items);
                    }
                    Some(Frame::Object(map, key)) => {
                        // Like JSON.parse, a repeated key keeps its first position and takes
                        // the last value; IndexMap::insert does exactly that.
                        map.insert(std::mem::take(key), value);
                        self.skip_whitespace();
                        if self.eat(b',') {
                            *key = self.parse_key()?;
                            break;
                        }
                        if !self.eat(b'}') {
                            return Err(self.error("expected ',' or '}'"));
                        }
                        let Some(Frame::Object(map, _)) = stack.pop() else {
                            unreachable!("the top frame was just matched as an object");
                        };
                        value = Value::Object(map);
                    }
                }
            }
        }
    }

    /// Consumes `[` or `{` after checking that one more level is allowed.
    fn open_container(&mut self, open: usize) -> Result<(), JsonError> {
        if open >= self.max_depth {
            return Err(JsonError::TooDeep {
                max_depth: self.max_depth,
            });
        }
        self.pos += 1;
        Ok(())
    }

    fn parse_key(&mut self) -> Result<String, JsonError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let key = self.parse_string()?;
        self.skip_whitespace();
        if !self.eat(b':') {
            return Err(self.error("expected ':'"));
        }
        Ok(key)
    }

    fn parse_literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn parse_number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(self.error("expected a digit")),
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error("expected a digit after '.'"));
            }
            self.skip_digits();
        }
        if self.eat(b'e') || self.eat(b'E') {
            integer = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.skip_digits();
        }
        let spelling = &self.text[start..self.pos];
        if integer {
            return integer_literal(spelling);
        }
        // Rust's float parsing is correctly rounded, like JavaScript's.
        let value: f64 = spelling
            .parse()
            .map_err(|_| self.error_at(start, "malformed number"))?;
        let value = check_float(value, || spelling.to_owned())?;
        Number::from_f64(value).ok_or_else(|| out_of_range(spelling))
    }

    fn parse_string(&mut self) -> Result<String, JsonError> {
        // The caller saw the opening quote.
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run stops at an ASCII byte or the end, both char boundaries.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.parse_escape()?);
                }
                Some(_) => {
                    return Err(self.error("control character in string; escape it"));
                }
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    fn parse_escape(&mut self) -> Result<char, JsonError> {
        let escape_start = self.pos - 1;
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.pos += 1;
        let decoded = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.parse_hex4()?;
                match unit {
                    0xd800..=0xdbff => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.lone_surrogate(escape_start));
                        }
                        self.pos += 2;
                        let low = self.parse_hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(self.lone_surrogate(escape_start));
                        }
                        let code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                        char::from_u32(code).ok_or_else(|| self.lone_surrogate(escape_start))?
                    }
                    0xdc00..=0xdfff => return Err(self.lone_surrogate(escape_start)),
                    _ => char::from_u32(unit).ok_or_else(|| self.lone_surrogate(escape_start))?,
                }
            }
            _ => return Err(self.error_at(escape_start, "invalid escape")),
        };
        Ok(decoded)
    }

    fn lone_surrogate(&self, pos: usize) -> JsonError {
        self.error_at(
            pos,
            "unpaired surrogate escape cannot be represented; send valid Unicode",
        )
    }

    fn parse_hex4(&mut self) -> Result<u32, JsonError> {
        let mut unit = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
            unit = unit * 16 + digit;
            self.pos += 1;
        }
        Ok(unit)
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn skip_whitespace(&mut self) {
        // JSON whitespace is exactly these four; JSON.parse rejects others such as a BOM.
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error(&self, message: &str) -> JsonError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, pos: usize, message: &str) -> JsonError {
        let before = &self.bytes[..pos];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Columns count chars, not bytes, so clients can find the spot in their editor.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        JsonError::Syntax(format!("{message} at line {line} column {column}"))
    }
}

/// Converts an integer literal, refusing magnitudes beyond 2^53.
fn integer_literal(spelling: &str) -> Result<Number, JsonError> {
    let digits = spelling.trim_start_matches('-');
    // Literals have no leading zeros, so length orders them: 2^53 has 16 digits.
    let too_big = digits.len() > 16 || (digits.len() == 16 && digits > "9007199254740992");
    if too_big {
        return Err(out_of_range(spelling));
    }
    let value: i64 = spelling.parse().map_err(|_| out_of_range(spelling))?;
    Ok(match u64::try_from(value) {
        Ok(unsigned) => Number::from(unsigned),
        Err(_) => Number::from(value),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use serde_json::json;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn canon(raw: &str) -> Result<String, JsonError> {
        CanonicalJson::parse(raw, JsonLimits::default()).map(CanonicalJson::into_string)
    }

    fn canon_value(value: &Value) -> Result<String, JsonError> {
        CanonicalJson::from_value(value, JsonLimits::default()).map(CanonicalJson::into_string)
    }

    fn assert_cases(cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            assert_eq!(canon(input).as_deref(), Ok(*expected), "input: {input:?}");
        }
    }

    #[test]
    fn whitespace_and_literals() {
        assert_cases(&[
            (
                " \t\r\n{ \"a\" : [ 1 , true , false , null ] }\n",
                r#"{"a":[1,true,false,null]}"#,
            ),
            ("null", "null"),
            ("true", "true"),
            ("[ ]", "[]"),
            ("{ }", "{}"),
            ("\"x\"", "\"x\""),
        ]);
    }

    #[test]
    fn array_index_keys_come_first_in_numeric_order() {
        assert_cases(&[
            (
                r#"{"b":1,"4294967295":2,"4294967294":3,"1":4,"01":5,"a":6,"0":7,"4294967296":8,"-1":9}"#,
                r#"{"0":7,"1":4,"4294967294":3,"b":1,"4294967295":2,"01":5,"a":6,"4294967296":8,"-1":9}"#,
            ),
            (
                r#"{"10":1,"9":2,"1.0":3,"":4}"#,
                r#"{"9":2,"10":1,"1.0":3,"":4}"#,
            ),
            (r#"{"z":1,"y":2,"x":3}"#, r#"{"z":1,"y":2,"x":3}"#),
            // An escaped digit is still an index key.
            (r#"{"a":1,"\u0031":2,"0":3}"#, r#"{"0":3,"1":2,"a":1}"#),
            (
                r#"{" 1":1,"1 ":2,"+1":3,"1e0":4,"2":5}"#,
                r#"{"2":5," 1":1,"1 ":2,"+1":3,"1e0":4}"#,
            ),
        ]);
        let value = json!({"b": 1, "2": 2, "a": 3, "1": 4});
        assert_eq!(canon_value(&value).unwrap(), r#"{"1":4,"2":2,"b":1,"a":3}"#);
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        assert_cases(&[
            (r#"{"a":1,"b":2,"a":3}"#, r#"{"a":3,"b":2}"#),
            (r#"{"1":1,"0":2,"1":3}"#, r#"{"0":2,"1":3}"#),
            (r#"{"a":{"x":1},"b":0,"a":[2]}"#, r#"{"a":[2],"b":0}"#),
            (r#"{"a":1,"a":2,"a":3}"#, r#"{"a":3}"#),
        ]);
    }

    #[test]
    fn strings_escape_like_javascript() {
        assert_cases(&[
            (
                r#""\"\\\/\b\f\n\r\t\u0000\u001F\u007f\u2028\u2029\u00E9\ud83d\ude00é😀""#,
                "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}\u{2028}\u{2029}é😀é😀\"",
            ),
            (r#""\u0001""#, r#""\u0001""#),
            (r#""\u000b\u001b""#, r#""\u000b\u001b""#),
            (r#""中文 ☃ \uFEFF""#, "\"中文 ☃ \u{feff}\""),
            (r#"{"\n":"\u0041"}"#, r#"{"\n":"A"}"#),
        ]);
        let value = json!({"k\u{1f}": "\u{8}\u{c}/"});
        assert_eq!(canon_value(&value).unwrap(), r#"{"k\u001f":"\b\f/"}"#);
    }

    #[test]
    fn numbers_print_like_javascript() {
        // Expected outputs were taken from Node 20.
        assert_cases(&[
            (
                "[1.0,1e2,-0,-0.0,1e21,1E21,0.000001,1e-7,1.5,-1.5e-10,0.1,100e-2,1e+2]",
                "[1,100,0,0,1e+21,1e+21,0.000001,1e-7,1.5,-1.5e-10,0.1,1,100]",
            ),
            (
                "[9007199254740992,-9007199254740992,1e-400,5e-324,1.7976931348623157e308]",
                "[9007199254740992,-9007199254740992,0,5e-324,1.7976931348623157e+308]",
            ),
            (
                "[123456789e-5,9007199254740993.0,0.0000001,123e-20,1e300,1.2345e21]",
                "[1234.56789,9007199254740992,1e-7,1.23e-18,1e+300,1.2345e+21]",
            ),
            // serde_json's default float parsing rounds this one wrongly.
            ("6.162599865641032e196", "6.162599865641032e+196"),
        ]);
        assert_eq!(canon_value(&json!(-0.0)).unwrap(), "0");
        assert_eq!(
            canon_value(&json!(9_007_199_254_740_992_u64)).unwrap(),
            "9007199254740992"
        );
        assert_eq!(
            canon_value(&json!(-9_007_199_254_740_992_i64)).unwrap(),
            "-9007199254740992"
        );
        assert_eq!(canon_value(&json!(1e300)).unwrap(), "1e+300");
    }

    #[test]
    fn numbers_javascript_would_change_are_refused() {
        for input in [
            "9007199254740993",
            "-9007199254740993",
            "12345678901234567890",
            "1000000000000000000000",
            "1e400",
            "-1e400",
            "1.5e17",
            "1.2345e20",
            "9007199254740994.0",
            "[1,{\"a\":18446744073709551616}]",
        ] {
            assert!(
                matches!(canon(input), Err(JsonError::NumberOutOfRange { .. })),
                "input: {input} gave {:?}",
                canon(input)
            );
        }
        for value in [
            json!(u64::MAX),
            json!(i64::MIN),
            json!(9_007_199_254_740_993_u64),
            json!(1.5e17),
        ] {
            assert!(
                matches!(canon_value(&value), Err(JsonError::NumberOutOfRange { .. })),
                "{value}"
            );
        }
        let err = canon(&"9".repeat(1000)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("send large integers as strings"),
            "{message}"
        );
        assert!(message.len() < 300, "long numbers are cut: {message}");
    }

    #[test]
    fn syntax_errors() {
        for input in [
            "",
            " ",
            "{",
            "[1,]",
            "[1 2]",
            "01",
            "-",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "tru",
            "nul",
            "NaN",
            "Infinity",
            "{'a':1}",
            "{\"a\" 1}",
            "{\"a\":1,}",
            "{1:1}",
            "[1] x",
            "\u{feff}{}",
            "\"\u{1}\"",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\ud800x\"",
            "\u{a0}1",
        ] {
            assert!(
                matches!(canon(input), Err(JsonError::Syntax(_))),
                "input: {input:?} gave {:?}",
                canon(input)
            );
        }
        let err = canon("{\n  \"é\": tru }").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JSON: expected a value at line 2 column 8"
        );
        let err = canon(r#""\ud800""#).unwrap_err();
        assert!(err.to_string().contains("unpaired surrogate"), "{err}");
    }

    #[test]
    fn depth_is_limited() {
        let limits = JsonLimits { max_depth: 3 };
        assert_eq!(
            CanonicalJson::parse("[[[1]]]", limits).unwrap().as_str(),
            "[[[1]]]"
        );
        assert_eq!(
            CanonicalJson::parse("[[[]]]", limits).unwrap().as_str(),
            "[[[]]]"
        );
        for input in [
            "[[[[1]]]]",
            "[[[[]]]]",
            r#"{"a":{"b":{"c":{}}}}"#,
            "[1,[2,[3,{}]]]",
        ] {
            assert_eq!(
                CanonicalJson::parse(input, limits),
                Err(JsonError::TooDeep { max_depth: 3 }),
                "{input}"
            );
        }
        let deep = json!([[[[1]]]]);
        assert_eq!(
            CanonicalJson::from_value(&deep, limits),
            Err(JsonError::TooDeep { max_depth: 3 })
        );

        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(canon(&nested(64)).is_ok());
        assert_eq!(
            canon(&nested(65)),
            Err(JsonError::TooDeep { max_depth: 64 })
        );
        // Far deeper than any call stack would survive, and still a clean error.
        assert_eq!(
            canon(&"[".repeat(1_000_000)),
            Err(JsonError::TooDeep { max_depth: 64 })
        );
        let limits = JsonLimits { max_depth: 0 };
        assert_eq!(CanonicalJson::parse("1", limits).unwrap().as_str(), "1");
        assert_eq!(
            CanonicalJson::parse("[]", limits),
            Err(JsonError::TooDeep { max_depth: 0 })
        );
    }

    #[test]
    fn accessors_and_formatting() {
        let canonical =
            CanonicalJson::parse(r#"{ "b": [1.50, "x"], "0": null }"#, JsonLimits::default())
                .unwrap();
        assert_eq!(canonical.as_str(), r#"{"0":null,"b":[1.5,"x"]}"#);
        assert_eq!(canonical.to_string(), canonical.as_str());
        assert_eq!(
            format!("{canonical:?}"),
            r#"CanonicalJson("{\"0\":null,\"b\":[1.5,\"x\"]}")"#
        );
        assert_eq!(canonical.to_value(), json!({"0": null, "b": [1.5, "x"]}));
        let copy = CanonicalJson::from_canonical_unchecked(canonical.as_str().to_owned());
        assert_eq!(copy, canonical);
        assert_eq!(
            canonical.clone().into_string(),
            r#"{"0":null,"b":[1.5,"x"]}"#
        );
        assert_eq!(
            CanonicalJson::from_canonical_unchecked("{oops".to_owned()).to_value(),
            Value::Null
        );
        assert_eq!(JsonLimits::default().max_depth, 64);
    }

    // ---- generators -------------------------------------------------------

    fn whitespace() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", "", "", " ", "\n", "\t", "\r\n  "])
    }

    fn interesting_char() -> impl Strategy<Value = char> {
        prop_oneof![
            6 => prop::char::range(' ', '~'),
            1 => prop::char::range('\0', '\u{1f}'),
            2 => prop::sample::select(vec![
                '"', '\\', '/', '\u{7f}', '\u{80}', 'é', '中', '😀', '\u{2028}', '\u{2029}',
                '\u{feff}', '\u{ffff}', '\u{10ffff}', '\u{d7ff}', '\u{e000}',
            ]),
            1 => any::<char>(),
        ]
    }

    /// Renders a JSON string literal, spelling each char raw, short-escaped or
    /// `\u`-escaped (lower or upper hex) according to its style.
    fn render_string(chars: &[(char, u8)]) -> String {
        let mut out = String::from("\"");
        for &(c, style) in chars {
            let must_escape = c < ' ' || c == '"' || c == '\\';
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                _ => None,
            };
            match (style, short) {
                (0, _) if !must_escape => out.push(c),
                (1, Some(short)) => out.push_str(short),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        if style == 3 {
                            out.push_str(&format!("\\u{unit:04X}"));
                        } else {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                }
            }
        }
        out.push('"');
        out
    }

    fn string_literal() -> impl Strategy<Value = String> {
        prop::collection::vec((interesting_char(), 0u8..4), 0..8)
            .prop_map(|chars| render_string(&chars))
    }

    const KEY_POOL: &[&str] = &[
        "0",
        "1",
        "2",
        "7",
        "10",
        "42",
        "01",
        "00",
        "-1",
        "-0",
        "1.0",
        "1e3",
        " 1",
        "4294967294",
        "4294967295",
        "4294967296",
        "9007199254740993",
        "a",
        "b",
        "__proto__",
        "",
        "é",
        "😀",
    ];

    fn key_literal() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => (prop::sample::select(KEY_POOL), 0u8..4).prop_map(|(key, style)| {
                let chars: Vec<(char, u8)> = key.chars().map(|c| (c, style)).collect();
                render_string(&chars)
            }),
            1 => string_literal(),
        ]
    }

    fn number_literal() -> impl Strategy<Value = String> {
        let finite = any::<f64>().prop_filter("finite", |f| f.is_finite());
        prop_oneof![
            3 => (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| n.to_string()),
            3 => (-1000i64..1000).prop_map(|n| n.to_string()),
            2 => finite.clone().prop_map(|f| format!("{f:e}")),
            2 => finite.clone().prop_map(|f| format!("{f:?}")),
            1 => finite.prop_map(|f| format!("{f:E}").replace("E", "E+").replace("E+-", "E-")),
            3 => "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20}([eE][+-]?[0-9]{1,2})?|[eE][+-]?[0-9]{1,2})",
            1 => "-?[1-9][0-9]{0,3}[eE][+-]?3[0-3][0-9]",
            1 => prop::sample::select(vec![
                "0", "-0", "0.0", "-0.0", "1E2", "1e+2", "1e21", "1e-7", "0.000001", "1e-400",
                "9007199254740992", "-9007199254740992", "5e-324", "1.7976931348623157e308",
                "0.1", "0.30000000000000004", "123456789012345678901234567890e-10",
            ]).prop_map(String::from),
            // Rare, because one refused number refuses the whole document.
            1 => "-?[1-9][0-9]{16,30}",
        ]
    }

    /// Arbitrary JSON text with varied spelling: whitespace, escapes, number forms, duplicate keys.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            1 => prop::sample::select(vec!["null", "true", "false"]).prop_map(String::from),
            3 => number_literal(),
            3 => string_literal(),
        ];
        let tree = leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                (
                    whitespace(),
                    prop::collection::vec((whitespace(), inner.clone(), whitespace()), 0..6)
                )
                    .prop_map(|(pad, items)| {
                        let items: Vec<String> = items
                            .into_iter()
                            .map(|(a, v, b)| format!("{a}{v}{b}"))
                            .collect();
                        format!("[{pad}{}]", items.join(","))
                    }),
                (
                    whitespace(),
                    prop::collection::vec(
                        (
                            whitespace(),
                            key_literal(),
                            whitespace(),
                            inner,
                            whitespace()
                        ),
                        0..6
                    )
                )
                    .prop_map(|(pad, entries)| {
                        let entries: Vec<String> = entries
                            .into_iter()
                            .map(|(a, k, b, v, c)| format!("{a}{k}{b}:{v}{c}"))
                            .collect();
                        format!("{{{pad}{}}}", entries.join(","))
                    }),
            ]
        });
        (whitespace(), tree, whitespace()).prop_map(|(a, t, b)| format!("{a}{t}{b}"))
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1000i64..1000).prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            prop::collection::vec(interesting_char(), 0..6)
                .prop_map(|c| Value::String(c.into_iter().collect())),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            let key = prop_oneof![
                prop::sample::select(KEY_POOL).prop_map(String::from),
                prop::collection::vec(interesting_char(), 0..4)
                    .prop_map(|c| c.into_iter().collect()),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn canonical_text_is_idempotent(text in json_text()) {
            if let Ok(canonical) = CanonicalJson::parse(&text, JsonLimits::default()) {
                let again = CanonicalJson::parse(canonical.as_str(), JsonLimits::default());
                prop_assert_eq!(again.as_ref(), Ok(&canonical));
                let via_value =
                    CanonicalJson::from_value(&canonical.to_value(), JsonLimits::default());
                prop_assert_eq!(via_value.as_ref(), Ok(&canonical));
            }
        }

        #[test]
        fn from_value_agrees_with_parse(value in json_value()) {
            let direct = CanonicalJson::from_value(&value, JsonLimits::default());
            let text = serde_json::to_string(&value).unwrap();
            let parsed = CanonicalJson::parse(&text, JsonLimits::default());
            match (&direct, &parsed) {
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a, b);
                    let again = CanonicalJson::parse(a.as_str(), JsonLimits::default());
                    prop_assert_eq!(again.as_ref(), Ok(a));
                }
                (
                    Err(JsonError::NumberOutOfRange { .. }),
                    Err(JsonError::NumberOutOfRange { .. }),
                ) => {}
                _ => prop_assert!(
                    false,
                    "from_value {:?} but parse {:?} for {}",
                    direct,
                    parsed,
                    text
                ),
            }
        }
    }

    // ---- differential test against JavaScript -----------------------------

    /// For each `[original, ours]` pair prints `[JSON.stringify(JSON.parse(original)) or null,
    /// whether ours is a fixed point]`.
    const NODE_SCRIPT: &str = r#"
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const results = cases.map(([original, ours]) => {
    let expected = null;
    try { expected = JSON.stringify(JSON.parse(original)); } catch (e) { expected = null; }
    const fixed = ours === null ? null : JSON.stringify(JSON.parse(ours)) === ours;
    return [expected, fixed];
  });
  process.stdout.write(JSON.stringify(results));
});
"#;

    fn node_available() -> bool {
        Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    }

    fn run_node(cases: &[(String, Option<String>)]) -> Vec<(Option<String>, Option<bool>)> {
        let input = serde_json::to_string(cases).unwrap();
        let mut child = Command::new("node")
            .args(["-e", NODE_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Write from another thread so a full stdout pipe cannot deadlock us.
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(output.status.success(), "node failed");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    #[test]
    fn matches_javascript_round_trip() {
        if !node_available() {
            eprintln!(
                "note: `node` is not on PATH; skipping the differential test against JavaScript"
            );
            return;
        }
        let count: usize = std::env::var("HOOKD_JSON_DIFF_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(3000);
        let mut originals: Vec<String> = [
            r#"{"b":1,"4294967295":2,"4294967294":3,"1":4,"01":5,"a":6,"0":7,"4294967296":8,"-1":9}"#,
            r#"{"a":1,"b":2,"a":3,"__proto__":{"x":1},"__proto__":[]}"#,
            r#"[1.0,1e2,-0,1e21,0.000001,1e-7,1e-400,5e-324,1.7976931348623157e308,6.162599865641032e196]"#,
            r#""\"\\\/\b\f\n\r\t\u0000\u001F\u007f\u2028\u2029\u00E9\ud83d\ude00é😀""#,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let strategy = json_text();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for _ in 0..count {
            originals.push(strategy.new_tree(&mut runner).unwrap().current());
        }

        let mut cases = Vec::with_capacity(originals.len());
        let mut accepted = 0;
        for original in &originals {
            match CanonicalJson::parse(original, JsonLimits::default()) {
                Ok(canonical) => {
                    accepted += 1;
                    cases.push((original.clone(), Some(canonical.into_string())));
                }
                Err(JsonError::NumberOutOfRange { .. }) => cases.push((original.clone(), None)),
                Err(err) => panic!("valid JSON {original:?} refused: {err}"),
            }
        }
        let results = run_node(&cases);
        assert_eq!(results.len(), cases.len());
        for ((original, ours), (expected, fixed)) in cases.iter().zip(&results) {
            let Some(ours) = ours else { continue };
            assert_eq!(Some(ours), expected.as_ref(), "original: {original:?}");
            assert_eq!(*fixed, Some(true), "not a fixed point: {ours:?}");
        }
        assert!(
            accepted * 2 > cases.len(),
            "too few accepted cases ({accepted}) to be meaningful"
        );
    }
}
