//! The record decoder's JSON reader against serde_json, the oracle: on generated JSON and
//! near-JSON (valid text with bytes deleted, inserted or cut off), the reader accepts
//! exactly what serde_json accepts, and reads the same strings and numbers.

use feedback_loop_core::record::json_reader::{JsonReader, Number};
use proptest::prelude::*;

fn digits(range: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::range('0', '9'), range).prop_map(|d| d.into_iter().collect())
}

/// Number-like text: valid numbers of every form, with leading zeros, empty fractions and
/// exponents, and more digits than 64 bits hold, among them.
fn number_text() -> impl Strategy<Value = String> {
    let integer = prop_oneof![
        Just("0".to_string()),
        digits(1..4),
        digits(15..22),
        digits(25..40),
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775808".to_string()),
        Just("9223372036854775809".to_string()),
    ];
    let fraction = prop::option::of(digits(0..6).prop_map(|d| format!(".{d}")));
    let exponent = prop::option::of(
        (
            prop::sample::select(vec!["e", "E"]),
            prop::sample::select(vec!["", "+", "-"]),
            prop_oneof![digits(0..3), digits(3..4)],
        )
            .prop_map(|(e, s, d)| format!("{e}{s}{d}")),
    );
    (any::<bool>(), integer, fraction, exponent).prop_map(|(negative, i, f, e)| {
        format!(
            "{}{i}{}{}",
            if negative { "-" } else { "" },
            f.unwrap_or_default(),
            e.unwrap_or_default()
        )
    })
}

/// String-like text: plain runs (ASCII and not), every escape, hex escapes in and around
/// the surrogate ranges, invalid escapes and raw control characters.
fn string_text() -> impl Strategy<Value = String> {
    let hex = prop_oneof![
        (0u32..0x10000).prop_map(|n| format!("{n:04x}")),
        (0xD800u32..0xE000).prop_map(|n| format!("{n:04X}")),
        Just("D83D\\uDE00".to_string()),
        Just("d83d\\ude00".to_string()),
        Just("12g4".to_string()),
    ];
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 _.:-]{1,12}",
        1 => prop::sample::select(vec!["é", "ß", "😀", "日本"]).prop_map(str::to_string),
        2 => prop::sample::select(vec!["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"])
            .prop_map(str::to_string),
        2 => hex.prop_map(|h| format!("\\u{h}")),
        1 => prop::sample::select(vec!["\\x", "\\", "\u{1}", "\t", "\u{1f}"]).prop_map(str::to_string),
    ];
    (prop::collection::vec(piece, 0..5), any::<bool>()).prop_map(|(pieces, closed)| {
        format!("\"{}{}", pieces.concat(), if closed { "\"" } else { "" })
    })
}

fn whitespace() -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(vec!["", "", "", " ", "\n", "\t ", "\r\n"])
}

/// A JSON-like value: mostly valid, nested up to a few levels.
fn value_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => number_text(),
        3 => string_text(),
        1 => prop::sample::select(vec!["true", "false", "null", "tru", "nul", "NaN"])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let ws = whitespace();
        prop_oneof![
            (
                prop::collection::vec((inner.clone(), ws.clone()), 0..6),
                ws.clone()
            )
                .prop_map(|(items, w)| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(v, w)| format!("{w}{v}{w}"))
                        .collect();
                    format!("[{w}{}]", items.join(","))
                }),
            (
                prop::collection::vec((string_text(), inner, ws.clone()), 0..6),
                ws
            )
                .prop_map(|(entries, w)| {
                    let entries: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v, w)| format!("{w}{k}{w}:{w}{v}"))
                        .collect();
                    format!("{{{w}{}}}", entries.join(","))
                }),
        ]
    })
}

/// A value's text, then some edits: deleting, inserting or replacing characters with ones
/// that matter to the grammar, or cutting the text off.
fn near_json() -> impl Strategy<Value = String> {
    let edit = (
        0usize..3,
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            '{', '}', '[', ']', ',', ':', '"', '\\', ' ', '0', '-', '.', 'e', 'a',
        ]),
    );
    (value_text(), prop::collection::vec(edit, 0..3)).prop_map(|(text, edits)| {
        let mut chars: Vec<char> = text.chars().collect();
        for (kind, at, c) in edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match kind {
                0 => {
                    chars.remove(i);
                }
                1 => chars.insert(i, c),
                _ => chars.truncate(i),
            }
        }
        chars.into_iter().collect()
    })
}

fn reader_skips(text: &str) -> bool {
    let mut reader = JsonReader::new(text);
    reader.skip_value().and_then(|()| reader.end()).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn skipping_accepts_what_serde_json_accepts(text in near_json()) {
        let serde = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
        prop_assert_eq!(reader_skips(&text), serde, "{}", text);
    }

    #[test]
    fn numbers_read_as_serde_json_reads_them(text in number_text()) {
        let mut reader = JsonReader::new(&text);
        let ours = reader.number().and_then(|n| reader.end().map(|()| n));
        match (ours, serde_json::from_str::<serde_json::Number>(&text)) {
            (Ok(Number::PosInt(u)), Ok(n)) => prop_assert_eq!(n.as_u64(), Some(u), "{}", text),
            (Ok(Number::NegInt(i)), Ok(n)) => {
                prop_assert!(n.is_i64() && !n.is_u64(), "{}", text);
                prop_assert_eq!(n.as_i64(), Some(i), "{}", text);
            }
            (Ok(Number::Float(f)), Ok(n)) => {
                prop_assert!(n.is_f64(), "{}", text);
                prop_assert_eq!(n.as_f64().map(f64::to_bits), Some(f.to_bits()), "{}", text);
            }
            (Err(_), Err(_)) => {}
            (ours, theirs) => prop_assert!(false, "{}: ours {:?}, serde_json {:?}", text, ours, theirs),
        }
    }

    #[test]
    fn strings_read_as_serde_json_reads_them(text in string_text()) {
        let mut reader = JsonReader::new(&text);
        let ours = reader.string().and_then(|s| reader.end().map(|()| s));
        let theirs = serde_json::from_str::<String>(&text);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a.as_ref(), b.as_str(), "{}", text),
            (Err(_), Err(_)) => {}
            (ours, theirs) => prop_assert!(false, "{}: ours {:?}, serde_json {:?}", text, ours, theirs),
        }
    }

    /// Keys are read in full, like strings; their values are skipped here.
    #[test]
    fn object_keys_read_as_serde_json_reads_them(text in value_text()) {
        let text = format!("{{\"k\":{text}}}");
        let mut reader = JsonReader::new(&text);
        let mut keys = Vec::new();
        let ours = reader.begin_object().and_then(|()| {
            let mut first = true;
            while let Some(key) = reader.next_key(&mut first)? {
                keys.push(key.into_owned());
                reader.skip_value()?;
            }
            reader.end()
        });
        let theirs = serde_json::from_str::<serde::de::IgnoredAny>(&text);
        prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{}", text);
        if ours.is_ok() {
            prop_assert_eq!(keys, vec!["k".to_string()]);
        }
    }
}

#[test]
fn deep_nesting_is_refused_past_the_limit() {
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(reader_skips(&deep(
        feedback_loop_core::record::json_reader::MAX_DEPTH
    )));
    assert!(!reader_skips(&deep(
        feedback_loop_core::record::json_reader::MAX_DEPTH + 1
    )));
}
