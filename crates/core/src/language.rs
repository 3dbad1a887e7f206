//! The languages ShopChat answers in, and telling them apart.

use serde::{Deserialize, Serialize};

/// A language of the knowledge base and of shoppers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Zh,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Zh];

    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
        }
    }

    /// Parses a language tag such as `en`, `en-GB`, `zh`, `zh-CN`, `zh-Hans`.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Language::En),
            "zh" => Some(Language::Zh),
            _ => None,
        }
    }

    /// Guesses the language of a shopper's text: Chinese when a good share of
    /// its letters are CJK ideographs. A few ideographs in English text (a
    /// product name) do not make it Chinese; order numbers and emails, being
    /// ASCII, do not make Chinese text English.
    pub fn detect(text: &str) -> Self {
        let mut cjk = 0usize;
        let mut latin = 0usize;
        for c in text.chars() {
            if is_cjk(c) {
                cjk += 1;
            } else if c.is_alphabetic() {
                latin += 1;
            }
        }
        // An ideograph carries about a word; a Latin word is about 5 letters.
        if cjk > 0 && cjk * 5 >= latin {
            Language::Zh
        } else {
            Language::En
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// CJK ideographs and the punctuation used with them.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x3000..=0x303F | 0xFF00..=0xFFEF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_shoppers_language() {
        let check =
            |text: &str, expected: Language| assert_eq!(Language::detect(text), expected, "{text}");
        check("How long does shipping take?", Language::En);
        check("退货需要多长时间？", Language::Zh);
        check("我的订单 NW-100231 到哪里了？邮箱 li.wei@example.com", Language::Zh);
        check("Is the 旗袍 dress returnable?", Language::En);
        check("", Language::En);
        assert_eq!(Language::from_tag("zh-Hans"), Some(Language::Zh));
        assert_eq!(Language::from_tag("en-GB"), Some(Language::En));
        assert_eq!(Language::from_tag("fr"), None);
    }
}
