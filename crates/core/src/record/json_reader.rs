//! A JSON reader for one record: it walks the text once, hands out object keys and scalar
//! values borrowed from the input, and skips what nobody asked for while still checking it.
//!
//! The decoder (`record.rs`) needs a handful of fields of each record and nothing else. A
//! general deserializer visits every value through generic callbacks; this reader is driven
//! by the decoder instead (`next_key`, `string`, `number`, `skip_value`), so a field nobody listed
//! costs one pass over its bytes. It accepts exactly the JSON that serde_json accepts
//! (RFC 8259: the same number, string, escape and whitespace rules, the same numbers as
//! `u64`, `i64` or correctly rounded `f64`), which the tests check against serde_json on
//! generated and mutated text, with one difference: nesting deeper than [`MAX_DEPTH`] is
//! refused everywhere, where serde_json refuses it only in the values it builds.
//! Like serde_json, strings that are read in full (keys, kept values) must have paired
//! UTF-16 surrogate escapes, strings that are skipped only well-formed ones, and a number is
//! out of range only when it is read.
//!
//! The input is a `&str`: UTF-8 is validated once by the caller, before the walk.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use crate::short_bytes;

/// Deepest nesting of objects and arrays accepted (serde_json's recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Where and why the text is not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the offending byte (the text's length at an early end).
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for SyntaxError {}

/// The text is not JSON; the reader keeps where and why (`JsonReader::syntax_error`).
/// A zero-sized error keeps every `Result` of the reader as small as its value: most come
/// back in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// A number as serde_json reads it: non-negative integers that fit as `u64`, negative ones
/// that fit as `i64`, anything else (fraction, exponent, too many digits, `-0`) as `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    PosInt(u64),
    NegInt(i64),
    Float(f64),
}

/// An object key as compact JSON writes it after a value, `,"name":`, for
/// `JsonReader::next_key_is`: a known key is then matched in the raw text, without being
/// read as a string first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyText(Box<[u8]>);

impl KeyText {
    /// `None` for a name JSON must escape (a quote, a backslash, a control character): its
    /// raw text is not the name itself.
    pub fn new(name: &str) -> Option<KeyText> {
        if name.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            return None;
        }
        let mut text = Vec::with_capacity(name.len() + 4);
        text.extend_from_slice(b",\"");
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b"\":");
        Some(KeyText(text.into()))
    }
}

/// Bytes that end the plain run of a string: the closing quote, a backslash, and the
/// control characters, which JSON strings may not hold unescaped.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `word` (eight, little-endian) that end a string's plain run, as the high
/// bit of each such byte, and the same for the quotes alone. Only the lowest set bit is
/// exact (the borrows of the subtractions can flag bytes above a true one, never below),
/// which is all the callers use: the lowest stop is a quote exactly when the quote mask has
/// its bit. A quote or a backslash is a zero byte of `word ^ (that byte in every lane)`; a
/// control character is a byte below 0x20. Bytes from 0x80 (UTF-8 sequences) are never
/// flagged: `!word` clears their high bit.
fn string_stops(word: u64) -> (u64, u64) {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"'))) & HIGHS;
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote, quote | ((backslash | control) & HIGHS))
}

/// Where the plain run of a string from `from` ends, and whether it ends at the closing
/// quote (else at a backslash, a control character or the end of the text). Eight bytes at
/// a time (see [`string_stops`]), then byte by byte for the tail.
fn plain_run(bytes: &[u8], from: usize) -> (usize, bool) {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let (quotes, stops) = string_stops(u64::from_le_bytes(word));
        if stops != 0 {
            let lowest = stops & stops.wrapping_neg();
            return (
                i + (stops.trailing_zeros() / 8) as usize,
                quotes & lowest != 0,
            );
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if STRING_STOP[b as usize] {
            return (i, b == b'"');
        }
        i += 1;
    }
    (bytes.len(), false)
}

/// The reader: a position in the text and the kinds of the containers it is inside.
pub struct JsonReader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// Bit `d` is set when the container at depth `d` is an object (else an array).
    objects: u128,
    /// The first syntax error met.
    failure: Cell<Option<SyntaxError>>,
}

type Result<T> = std::result::Result<T, Invalid>;

impl<'a> JsonReader<'a> {
    pub fn new(text: &'a str) -> JsonReader<'a> {
        JsonReader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            objects: 0,
            failure: Cell::new(None),
        }
    }

    /// Records a syntax error at the current position.
    fn error(&self, reason: &'static str) -> Invalid {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, offset: usize, reason: &'static str) -> Invalid {
        if self.failure.get().is_none() {
            self.failure.set(Some(SyntaxError {
                offset: offset.min(self.bytes.len()),
                reason,
            }));
        }
        Invalid
    }

    /// Where and why the text is not JSON, after a call returned [`Invalid`].
    pub(crate) fn syntax_error(&self) -> SyntaxError {
        self.failure.get().unwrap_or(SyntaxError {
            offset: self.pos,
            reason: "invalid JSON",
        })
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, without consuming it.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        // Compact JSON has no whitespace between tokens: one comparison decides.
        match self.bytes.get(self.pos) {
            Some(&b) if b > b' ' => Some(b),
            _ => {
                self.skip_whitespace();
                self.bytes.get(self.pos).copied()
            }
        }
    }

    /// The next byte that is not whitespace; at the end of the text, an error.
    fn next_byte(&mut self, at_end: &'static str) -> Result<u8> {
        self.peek().ok_or_else(|| self.error(at_end))
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<()> {
        if self.next_byte(reason)? != byte {
            return Err(self.error(reason));
        }
        self.pos += 1;
        Ok(())
    }

    fn enter(&mut self, object: bool) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error("nesting deeper than 128 levels"));
        }
        if object {
            self.objects |= 1 << self.depth;
        } else {
            self.objects &= !(1 << self.depth);
        }
        self.depth += 1;
        self.pos += 1;
        Ok(())
    }

    fn in_object(&self) -> bool {
        self.objects & (1 << (self.depth - 1)) != 0
    }

    /// Consumes the `{` that `JsonReader::peek` showed; then call
    /// [`JsonReader::next_key`] until it returns `None`.
    pub fn begin_object(&mut self) -> Result<()> {
        if self.next_byte("EOF while parsing a value")? != b'{' {
            return Err(self.error("expected `{`"));
        }
        self.enter(true)
    }

    /// The next key of the object begun with [`JsonReader::begin_object`], its `:` consumed,
    /// or `None` after the closing `}`. `first` is true before the first call, and is
    /// cleared by it. The caller reads or skips the key's value before the next call.
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>> {
        let b = self.next_byte("EOF while parsing an object")?;
        if b == b'}' {
            self.pos += 1;
            self.depth -= 1;
            return Ok(None);
        }
        if *first {
            *first = false;
            if b != b'"' {
                return Err(self.error("expected a key or `}`"));
            }
        } else {
            if b != b',' {
                return Err(self.error("expected `,` or `}`"));
            }
            self.pos += 1;
            if self.next_byte("EOF while parsing an object")? != b'"' {
                return Err(self.error("expected a key"));
            }
        }
        let key = self.string_at_quote()?;
        if self.bytes.get(self.pos) == Some(&b':') {
            self.pos += 1;
        } else {
            self.expect(b':', "expected `:`")?;
        }
        Ok(Some(key))
    }

    /// Whether the object's next key is `key` written compactly (`,"name":`, or `"name":`
    /// for the first key): then it is consumed with its `:`, as [`JsonReader::next_key`]
    /// would. A fast path for that method: on `false` nothing is consumed, and the key may
    /// still be `key`, written with whitespace or escapes, which `next_key` then reads.
    #[inline]
    pub(crate) fn next_key_is(&mut self, first: &mut bool, key: &KeyText) -> bool {
        let text = if *first { &key.0[1..] } else { &key.0[..] };
        match self.bytes.get(self.pos..self.pos + text.len()) {
            Some(here) if short_bytes::equal(here, text) => {
                self.pos += text.len();
                *first = false;
                true
            }
            _ => false,
        }
    }

    /// Checks and passes over one value of any kind, nested ones included (without
    /// recursion: the container kinds are bits of `objects`).
    pub fn skip_value(&mut self) -> Result<()> {
        let base = self.depth;
        loop {
            // A value is expected here.
            match self.next_byte("EOF while parsing a value")? {
                b'{' => {
                    self.enter(true)?;
                    if self.next_byte("EOF while parsing an object")? == b'}' {
                        self.pos += 1;
                        self.depth -= 1;
                    } else {
                        self.skip_key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.enter(false)?;
                    if self.next_byte("EOF while parsing a list")? == b']' {
                        self.pos += 1;
                        self.depth -= 1;
                    } else {
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b'-' | b'0'..=b'9' => {
                    self.number_checked(false)?;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return Err(self.error("expected value")),
            }
            // A value ended: close the containers it ends, up to the next value.
            loop {
                if self.depth == base {
                    return Ok(());
                }
                let object = self.in_object();
                match self.next_byte(if object {
                    "EOF while parsing an object"
                } else {
                    "EOF while parsing a list"
                })? {
                    b',' => {
                        self.pos += 1;
                        if object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if object => {
                        self.pos += 1;
                        self.depth -= 1;
                    }
                    b']' if !object => {
                        self.pos += 1;
                        self.depth -= 1;
                    }
                    _ if object => return Err(self.error("expected `,` or `}`")),
                    _ => return Err(self.error("expected `,` or `]`")),
                }
            }
        }
    }

    /// A key of a skipped object and its `:`.
    fn skip_key(&mut self) -> Result<()> {
        if self.next_byte("EOF while parsing an object")? != b'"' {
            return Err(self.error("expected a key"));
        }
        self.skip_string()?;
        self.expect(b':', "expected `:`")
    }

    /// After the value: only whitespace may remain.
    pub fn end(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    /// Consumes `true`, `false` or `null`.
    pub(crate) fn literal(&mut self, word: &'static [u8]) -> Result<()> {
        self.skip_whitespace();
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected value"))
        }
    }

    /// Reads a string, borrowed unless it has escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        if self.next_byte("EOF while parsing a value")? != b'"' {
            return Err(self.error("expected a string"));
        }
        self.string_at_quote()
    }

    /// Reads a string at its opening quote.
    #[inline]
    fn string_at_quote(&mut self) -> Result<Cow<'a, str>> {
        let start = self.pos + 1;
        let (end, closed) = plain_run(self.bytes, start);
        if closed {
            self.pos = end + 1;
            return Ok(Cow::Borrowed(&self.text[start..end]));
        }
        self.pos = end;
        self.string_with_escapes(start).map(Cow::Owned)
    }

    /// The rest of a string whose plain run from `start` ends at `self.pos`, not at its
    /// closing quote.
    fn string_with_escapes(&mut self, start: usize) -> Result<String> {
        let mut owned = String::new();
        let mut run = start;
        loop {
            let Some(&stop) = self.bytes.get(self.pos) else {
                return Err(self.error("EOF while parsing a string"));
            };
            match stop {
                b'"' => {
                    owned.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    return Ok(owned);
                }
                b'\\' => {
                    owned.push_str(&self.text[run..self.pos]);
                    self.pos += 1;
                    let c = self.escape()?;
                    owned.push(c);
                    run = self.pos;
                }
                _ => return Err(self.error("control character in a string")),
            }
            self.pos = plain_run(self.bytes, self.pos).0;
        }
    }

    /// Passes over a string at its opening quote. Escapes must be well-formed, but
    /// surrogates need not pair (as serde_json, which checks pairing only when it reads).
    fn skip_string(&mut self) -> Result<()> {
        self.pos += 1;
        loop {
            let (end, closed) = plain_run(self.bytes, self.pos);
            self.pos = end;
            if closed {
                self.pos += 1;
                return Ok(());
            }
            let Some(&stop) = self.bytes.get(self.pos) else {
                return Err(self.error("EOF while parsing a string"));
            };
            match stop {
                b'\\' => {
                    self.pos += 1;
                    match self.bytes.get(self.pos) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        Some(_) => return Err(self.error("invalid escape")),
                        None => return Err(self.error("EOF while parsing a string")),
                    }
                }
                _ => return Err(self.error("control character in a string")),
            }
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Result<char> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let n = self.hex4()?;
                match n {
                    0xDC00..=0xDFFF => return Err(self.error("lone surrogate in hex escape")),
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(self.error("unpaired surrogate in hex escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(self.error("lone surrogate in hex escape"));
                        }
                        let c =
                            0x10000 + ((u32::from(n) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        char::from_u32(c).ok_or_else(|| self.error("invalid escape"))?
                    }
                    _ => {
                        char::from_u32(u32::from(n)).ok_or_else(|| self.error("invalid escape"))?
                    }
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.error("invalid escape"));
            }
        })
    }

    fn hex4(&mut self) -> Result<u16> {
        let mut n: u16 = 0;
        for _ in 0..4 {
            let digit = match self.bytes.get(self.pos) {
                Some(&b @ b'0'..=b'9') => b - b'0',
                Some(&b @ b'a'..=b'f') => b - b'a' + 10,
                Some(&b @ b'A'..=b'F') => b - b'A' + 10,
                Some(_) => return Err(self.error("invalid hex escape")),
                None => return Err(self.error("EOF while parsing a string")),
            };
            n = n * 16 + u16::from(digit);
            self.pos += 1;
        }
        Ok(n)
    }

    fn digit(&self) -> Option<u8> {
        match self.bytes.get(self.pos) {
            Some(&b @ b'0'..=b'9') => Some(b - b'0'),
            _ => None,
        }
    }

    /// Reads a number.
    pub fn number(&mut self) -> Result<Number> {
        match self.next_byte("EOF while parsing a value")? {
            b'-' | b'0'..=b'9' => self.number_checked(true),
            _ => Err(self.error("expected a number")),
        }
    }

    /// Passes over a run of digits; how many.
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Reads a number at its first byte, checking its grammar; with `convert` false it is
    /// only checked, and `Number::PosInt(0)` returned.
    fn number_checked(&mut self, convert: bool) -> Result<Number> {
        let start = self.pos;
        let negative = self.bytes[self.pos] == b'-';
        if negative {
            self.pos += 1;
        }
        let integer = self.pos;
        match self.digit() {
            Some(0) => {
                self.pos += 1;
                if self.digit().is_some() {
                    return Err(self.error("invalid number"));
                }
            }
            Some(_) => {
                self.digits();
            }
            None => return Err(self.error("invalid number")),
        }
        let integer_end = self.pos;
        let mut fraction = 0;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            fraction = self.digits();
            if fraction == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let mut exponent: Option<(bool, usize)> = None;
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            let negative_exponent = self.bytes.get(self.pos) == Some(&b'-');
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            let at = self.pos;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
            exponent = Some((negative_exponent, at));
        }
        if !convert {
            return Ok(Number::PosInt(0));
        }
        let integer_digits = &self.bytes[integer..integer_end];
        if fraction == 0 && exponent.is_none() {
            if let Some(significand) = decimal(integer_digits) {
                return Ok(match (negative, significand) {
                    (false, s) => Number::PosInt(s),
                    (true, 0) => Number::Float(-0.0),
                    (true, s) if s <= 1 << 63 => Number::NegInt((s as i64).wrapping_neg()),
                    (true, s) => Number::Float(-(s as f64)),
                });
            }
        }
        if let Some(value) = self.exact_float(integer, integer_end, fraction, exponent) {
            return Ok(Number::Float(if negative { -value } else { value }));
        }
        // The grammar is checked, so the standard parser (correctly rounded, as serde_json's
        // `float_roundtrip`) accepts the text.
        let value: f64 = self.text[start..self.pos]
            .parse()
            .map_err(|_| self.error("invalid number"))?;
        if !value.is_finite() {
            return Err(self.error_at(start, "number out of range"));
        }
        Ok(Number::Float(value))
    }

    /// A float whose digits, taken as an integer m, and decimal exponent e are both exact
    /// in f64 (m <= 2^53, |e| <= 22): then m·10^e, a single correctly rounded operation on
    /// exact operands, is the correctly rounded value of the text (Clinger's fast path, the
    /// first step of every correct float parser). `None` otherwise.
    fn exact_float(
        &self,
        integer: usize,
        integer_end: usize,
        fraction: usize,
        exponent: Option<(bool, usize)>,
    ) -> Option<f64> {
        /// 10^0 ..= 10^22, all exact.
        const POWERS: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        let mut m = decimal(&self.bytes[integer..integer_end])?;
        let fraction_start = integer_end + 1;
        for &d in self.bytes.get(fraction_start..fraction_start + fraction)? {
            m = m.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        if m > 1 << 53 {
            return None;
        }
        let mut e = -(fraction as i64);
        if let Some((negative, at)) = exponent {
            let digits = self.bytes.get(at..self.pos)?;
            let written = i64::try_from(decimal(digits).filter(|&x| x <= 1000)?).ok()?;
            e += if negative { -written } else { written };
        }
        let power = *POWERS.get(e.unsigned_abs() as usize)?;
        let m = m as f64;
        Some(if e >= 0 { m * power } else { m / power })
    }
}

/// The value of a run of ASCII digits, if it fits in a `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.len() <= 19 {
        // At most 19 digits: below 10^19 < 2^64, no overflow.
        Some(
            digits
                .iter()
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
        )
    } else {
        digits.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> std::result::Result<(), SyntaxError> {
        let mut r = JsonReader::new(text);
        r.skip_value()
            .and_then(|()| r.end())
            .map_err(|Invalid| r.syntax_error())
    }

    fn number(text: &str) -> std::result::Result<Number, SyntaxError> {
        let mut r = JsonReader::new(text);
        let n = r.number().and_then(|n| r.end().map(|()| n));
        n.map_err(|Invalid| r.syntax_error())
    }

    fn string(text: &str) -> std::result::Result<Cow<'_, str>, SyntaxError> {
        let mut r = JsonReader::new(text);
        let s = r.string().and_then(|s| r.end().map(|()| s));
        s.map_err(|Invalid| r.syntax_error())
    }

    #[test]
    fn numbers_as_serde_json_reads_them() {
        assert_eq!(number("0").unwrap(), (Number::PosInt(0)));
        assert_eq!(
            number("18446744073709551615").unwrap(),
            (Number::PosInt(u64::MAX))
        );
        assert_eq!(
            number("18446744073709551616").unwrap(),
            (Number::Float(18446744073709551616.0))
        );
        assert_eq!(
            number("-9223372036854775808").unwrap(),
            (Number::NegInt(i64::MIN))
        );
        assert_eq!(
            number("-9223372036854775809").unwrap(),
            (Number::Float(-9223372036854775809.0))
        );
        assert!(
            matches!(number("-0").unwrap(), Number::Float(f) if f == 0.0 && f.is_sign_negative())
        );
        assert_eq!(number("1.5e3").unwrap(), (Number::Float(1500.0)));
        assert_eq!(number("1e400").unwrap_err().reason, "number out of range");
        assert!(skip("1e400").is_ok(), "skipped numbers are not converted");
        for bad in [
            "01", "1.", ".5", "-", "1e", "1e+", "+1", "--1", "1.e3", "0x1", "Infinity", "NaN",
        ] {
            assert!(skip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(r#""plain""#).unwrap(), Cow::Borrowed("plain"));
        assert_eq!(
            string(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#).unwrap(),
            Cow::<str>::Owned("a\"b\\c/d\u{8}\u{c}\n\r\t\u{e9}\u{1F600}".into())
        );
        assert!(string(r#""\ud83d""#).is_err());
        assert!(string(r#""\ude00""#).is_err());
        assert!(
            skip(r#""\ud83d""#).is_ok(),
            "skipped strings need not pair surrogates"
        );
        for bad in ["\"\\x\"", "\"\\u12g4\"", "\"a\u{1}b\"", "\"open", "\"\\"] {
            assert!(skip(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn containers_are_checked_when_skipped() {
        for good in [
            "{}",
            "[]",
            r#"{"a":[1,{"b":null}],"c":{}}"#,
            " [ 1 , 2 ] ",
            "[[[]]]",
        ] {
            assert!(skip(good).is_ok(), "{good}");
        }
        for bad in [
            "{",
            "[",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{1:2}",
            "[}",
            "{]",
            "{} {}",
            "",
        ] {
            assert!(skip(bad).is_err(), "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skip(&deep).is_ok());
        let deeper = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            skip(&deeper).unwrap_err().reason,
            "nesting deeper than 128 levels"
        );
    }

    #[test]
    fn objects_key_by_key() {
        let mut r = JsonReader::new(r#" { "a" : 1 , "b\n" : [2] , "c" : "x" } "#);
        r.begin_object().unwrap();
        let mut first = true;
        assert_eq!(r.next_key(&mut first).unwrap().as_deref(), Some("a"));
        assert_eq!(r.number().unwrap(), Number::PosInt(1));
        assert_eq!(r.next_key(&mut first).unwrap().as_deref(), Some("b\n"));
        r.skip_value().unwrap();
        assert_eq!(r.next_key(&mut first).unwrap().as_deref(), Some("c"));
        assert_eq!(r.peek(), Some(b'"'));
        assert_eq!(r.string().unwrap(), "x");
        assert_eq!(r.next_key(&mut first).unwrap(), None);
        r.end().unwrap();
    }

    #[test]
    fn the_first_string_stop_of_a_word_is_the_tables() {
        // Every byte value in every lane, over a background of each other byte value.
        for background in 0..=255u8 {
            for lane in 0..8 {
                for b in 0..=255u8 {
                    let mut word = [background; 8];
                    word[lane] = b;
                    let expected = word.iter().position(|&x| STRING_STOP[x as usize]);
                    let (quotes, stops) = string_stops(u64::from_le_bytes(word));
                    let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
                    assert_eq!(found, expected, "{word:?}");
                    let lowest = stops & stops.wrapping_neg();
                    assert_eq!(
                        quotes & lowest != 0,
                        expected.is_some_and(|i| word[i] == b'"')
                    );
                }
            }
        }
    }

    #[test]
    fn known_keys_match_only_their_compact_text() {
        assert_eq!(KeyText::new("a\"b"), None);
        assert_eq!(KeyText::new("a\\b"), None);
        assert_eq!(KeyText::new("a\nb"), None);
        let id = KeyText::new("id").unwrap();
        let model = KeyText::new("model").unwrap();
        let mut reader = JsonReader::new(r#"{"id":1,"model" :2,"models":3}"#);
        reader.begin_object().unwrap();
        let mut first = true;
        assert!(!reader.next_key_is(&mut first, &model));
        assert!(first, "a failed match consumes nothing");
        assert!(reader.next_key_is(&mut first, &id));
        assert!(!first);
        assert_eq!(reader.number().unwrap(), Number::PosInt(1));
        // With a space before `:`, the fast path declines and `next_key` reads the key.
        assert!(!reader.next_key_is(&mut first, &model));
        assert_eq!(
            reader.next_key(&mut first).unwrap().as_deref(),
            Some("model")
        );
        assert_eq!(reader.number().unwrap(), Number::PosInt(2));
        assert!(!reader.next_key_is(&mut first, &model));
        assert_eq!(
            reader.next_key(&mut first).unwrap().as_deref(),
            Some("models")
        );
    }

    #[test]
    fn errors_name_the_offset() {
        let e = skip(r#"{"a" 1}"#).unwrap_err();
        assert_eq!((e.offset, e.reason), (5, "expected `:`"));
        assert_eq!(e.to_string(), "expected `:` at byte 5");
    }
}
