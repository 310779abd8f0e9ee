//! Equality of short byte strings (field names, join keys) without a library call.
//!
//! Slice equality calls `memcmp`, whose call and dispatch cost more than the comparison
//! itself for the few bytes of a field name or a request id; the decoder and the join
//! store compare such strings several times per record. Up to 16 bytes, two overlapping
//! loads per side cover every byte: the first 8 (or 4) and the last 8 (or 4); up to 32,
//! four: the first 16 and the last 16.

/// `a == b`.
#[inline]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match (a, b) {
        _ if n > 32 => a == b,
        _ if n > 16 => {
            word8(a, 0) == word8(b, 0)
                && word8(a, 8) == word8(b, 8)
                && word8(a, n - 16) == word8(b, n - 16)
                && word8(a, n - 8) == word8(b, n - 8)
        }
        _ if n >= 8 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ if n >= 4 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        _ => a.iter().zip(b).all(|(x, y)| x == y),
    }
}

fn word8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(word)
}

fn word4(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_slice_equality() {
        for len in 0..40usize {
            let a: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            assert!(equal(&a, &a.clone()), "{len}");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!equal(&a, &b), "{len} {at}");
            }
            assert!(!equal(&a, &a[..len.saturating_sub(1)]) || len == 0);
        }
    }
}
