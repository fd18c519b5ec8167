//! Secrets every layer shares: the per-process hash seed and constant-time comparison.

/// A secret per-process seed for the hashes that place keys in shared structures (velocity
/// sketch, dedup filters), from the OS.
pub fn secret_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: still unpredictable enough to differ per process.
        return fastrand::u64(..) ^ std::process::id() as u64;
    }
    u64::from_le_bytes(b)
}

/// Whether two byte strings are equal, in a time that depends only on their lengths: every byte
/// is compared, so a MAC or a key hash does not leak through timing how much of it matched.
/// Lengths are public; unequal lengths return at once.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_compares_whole_strings() {
        let check = |a: &[u8], b: &[u8], want: bool| assert_eq!(ct_eq(a, b), want, "{a:?} {b:?}");
        check(b"", b"", true);
        check(b"mac-bytes", b"mac-bytes", true);
        check(b"mac-bytes", b"Mac-bytes", false);
        check(b"mac-bytes", b"mac-byteS", false);
        check(b"mac-bytes", b"mac-byte", false);
        check(b"mac", b"mac-bytes", false);
        check(&[0xff; 32], &[0xfe; 32], false);
    }
}
