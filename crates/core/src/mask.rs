//! Masking e-mail addresses and phone numbers before text reaches a log.
//!
//! Logs are read by more people, kept longer and copied to more places than
//! the transcripts, so they must not hold a shopper's contact details. The
//! masked form keeps just enough to tell two entries apart when debugging
//! (`e***@example.com`, `***21`) without identifying anyone.

use crate::scan::{phone_spans, EMAIL};

/// `text` with every e-mail address reduced to its first character and its
/// domain, and every phone number to its last two digits.
pub fn mask_pii(text: &str) -> String {
    let emails_masked = EMAIL.replace_all(text, |caps: &regex::Captures<'_>| {
        let address = &caps[0];
        let (local, domain) = address.split_once('@').unwrap_or((address, ""));
        let first = local.chars().next().map(String::from).unwrap_or_default();
        format!("{first}***@{domain}")
    });
    let text = emails_masked.as_ref();
    let mut masked = String::with_capacity(text.len());
    let mut last = 0;
    for span in phone_spans(text) {
        masked.push_str(&text[last..span.start]);
        let digits: Vec<char> = text[span.clone()].chars().filter(char::is_ascii_digit).collect();
        masked.push_str("***");
        masked.extend(&digits[digits.len().saturating_sub(2)..]);
        last = span.end;
    }
    masked.push_str(&text[last..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_emails_and_phone_numbers_only() {
        let check = |text: &str, expected: &str| assert_eq!(mask_pii(text), expected, "{text}");
        check("ethan.walker@example.com", "e***@example.com");
        check("Mail Ethan.Walker@Example.COM now", "Mail E***@Example.COM now");
        check("a@b.co and z.y@sub.example.org.", "a***@b.co and z***@sub.example.org.");
        check("call +44 20 7946 0321, or (555) 123-4567", "call ***21, or ***67");
        check(
            "我的邮箱是 wang.fang@example.com，电话 13812345678",
            "我的邮箱是 w***@example.com，电话 ***78",
        );
        // What is not contact data stays readable for debugging.
        check("order NW-100231 delivered 2026-08-05", "order NW-100231 delivered 2026-08-05");
        check("tracking RM003710149GB, €4.95, 3-5 days", "tracking RM003710149GB, €4.95, 3-5 days");
        check("not an address: me@localhost, @home", "not an address: me@localhost, @home");
        check("", "");
        // Digits of a masked address are gone before phones are looked for.
        check("1234567@example.com", "1***@example.com");
    }
}
