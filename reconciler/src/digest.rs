//! Hex text of bytes and of SHA-256 digests, for names and fingerprints.

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first `n` bytes of the SHA-256 digest of `data`, in hex (`2 * n` characters).
pub fn sha256_hex(data: &[u8], n: usize) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data);
    hex(&digest[..n.min(digest.len())])
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_are_the_known_sha256_prefixes() {
        // SHA-256("abc") = ba7816bf 8f01cfea ... (FIPS 180-2, appendix B.1).
        assert_eq!(super::sha256_hex(b"abc", 4), "ba7816bf");
        assert_eq!(super::hex(&[0, 15, 255]), "000fff");
    }
}
