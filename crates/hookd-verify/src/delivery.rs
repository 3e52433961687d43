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
}
