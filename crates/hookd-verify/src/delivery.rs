//! A borrowed view of a received webhook request (headers and raw body), so
//! verification works with any HTTP stack without depending on one.

/// Headers and exact body bytes of a received delivery.
///
/// Header lookup is ASCII case-insensitive; when a header appears more than
/// once, the first occurrence wins.
#[derive(Debug, Clone, Default)]
pub struct Delivery<'a> {
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
}

impl<'a> Delivery<'a> {
    /// A delivery with `body` (the exact received bytes) and no headers.
    pub fn new(body: &'a [u8]) -> Delivery<'a> {
        Delivery {
            headers: Vec::new(),
            body,
        }
    }

    /// A delivery from `(name, value)` header pairs and the exact body bytes.
    pub fn from_parts<I>(headers: I, body: &'a [u8]) -> Delivery<'a>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        Delivery {
            headers: headers.into_iter().collect(),
            body,
        }
    }

    /// A delivery from any borrowed header collection whose names are text and whose
    /// values are bytes: `&http::HeaderMap` (axum, hyper, reqwest), a
    /// `&HashMap<String, String>`, … Values that are not UTF-8 are skipped (no signature
    /// header of any scheme can be one).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use hookd_verify::Delivery;
    ///
    /// let headers = HashMap::from([("Webhook-Id".to_owned(), "evt_1".to_owned())]);
    /// let delivery = Delivery::from_headers(&headers, b"{}");
    /// assert_eq!(delivery.header("webhook-id"), Some("evt_1"));
    /// ```
    pub fn from_headers<I, K, V>(headers: I, body: &'a [u8]) -> Delivery<'a>
    where
        I: IntoIterator<Item = (&'a K, &'a V)>,
        K: AsRef<str> + ?Sized + 'a,
        V: AsRef<[u8]> + ?Sized + 'a,
    {
        Delivery {
            headers: headers
                .into_iter()
                .filter_map(|(name, value)| {
                    Some((name.as_ref(), std::str::from_utf8(value.as_ref()).ok()?))
                })
                .collect(),
            body,
        }
    }

    /// Adds a header (builder style).
    #[must_use]
    pub fn with_header(mut self, name: &'a str, value: &'a str) -> Delivery<'a> {
        self.headers.push((name, value));
        self
    }

    /// Adds a header.
    pub fn push_header(&mut self, name: &'a str, value: &'a str) {
        self.headers.push((name, value));
    }

    /// The first value of header `name`, compared ASCII case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value)
    }

    /// The body bytes exactly as received.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_is_case_insensitive_and_first_wins() {
        let delivery = Delivery::new(b"x")
            .with_header("Webhook-ID", "first")
            .with_header("webhook-id", "second");
        assert_eq!(delivery.header("webhook-id"), Some("first"));
        assert_eq!(delivery.header("WEBHOOK-ID"), Some("first"));
        assert_eq!(delivery.header("webhook-timestamp"), None);
        assert_eq!(delivery.body(), b"x");
    }

    #[test]
    fn from_headers_skips_values_that_are_not_utf8() {
        let headers: Vec<(String, Vec<u8>)> = vec![
            ("webhook-id".to_owned(), b"evt_1".to_vec()),
            ("x-binary".to_owned(), vec![0xff, 0xfe]),
        ];
        let pairs = headers.iter().map(|(n, v)| (n, v));
        let delivery = Delivery::from_headers(pairs, b"{}");
        assert_eq!(delivery.header("webhook-id"), Some("evt_1"));
        assert_eq!(delivery.header("x-binary"), None);
    }
}
