//! Passwords, random tokens and token digests: what the store keeps instead
//! of secrets.
//!
//! Passwords are hashed with argon2id at the `argon2` crate's default cost
//! (19 MiB, 2 passes), tens of milliseconds per guess. Tokens are 32 random
//! bytes, so a plain SHA-256 is enough to store them: nobody can guess one
//! back from its digest, and a digest can be looked up by equality.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The shortest password a staff account may have, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The hash checked when a login names no existing account, so that the
/// answer takes as long as for a real one and does not reveal which names
/// exist. Its parameters must be those `hash_password` uses (a unit test
/// checks); its digest was made up, so no known password matches it.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXktc2FsdC1mb3ItdGltaW5n$5Ofs6Wj0dD1lj4qn3gmx5dTQjnBMrXAx06o9HW8/hw0";

pub(crate) fn check_password_strength(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::WeakPassword { min_chars: MIN_PASSWORD_CHARS });
    }
    Ok(())
}

/// An argon2id hash of the password in PHC string form, with a fresh salt.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Whether the password matches the stored hash; with no hash (an unknown
/// account) it spends the same time and says no.
pub(crate) fn verify_password(password: &str, stored: Option<&str>) -> Result<bool> {
    let hash = PasswordHash::new(stored.unwrap_or(DUMMY_HASH))?;
    // The comparison inside `verify_password` is constant-time.
    match Argon2::default().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(stored.is_some()),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A new secret token: 32 random bytes as 64 hex digits.
pub(crate) fn random_token() -> Result<String> {
    Ok(hex(&random_bytes::<32>()?))
}

/// What the database keeps of a token: its SHA-256 as hex.
pub(crate) fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::Params;

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("the dummy hash parses");
        let real_hash = hash_password("correct horse").expect("hashes");
        let real = PasswordHash::new(&real_hash).expect("parses");
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        let default = Params::default();
        assert_eq!(dummy.params.get_decimal("m"), Some(default.m_cost()));
        assert_eq!(dummy.params.get_decimal("t"), Some(default.t_cost()));
        assert_eq!(dummy.params.get_decimal("p"), Some(default.p_cost()));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse").expect("hashes");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password("correct horse", Some(&hash)).expect("verifies"));
        assert!(!verify_password("correct hors", Some(&hash)).expect("verifies"));
        assert!(!verify_password("correct horse", None).expect("verifies"));
        assert!(check_password_strength("1234567").is_err());
        assert!(check_password_strength("密码密码密码密码").is_ok());
    }

    #[test]
    fn tokens_are_random_hex_and_digests_are_sha256() {
        let (a, b) = (random_token().expect("random"), random_token().expect("random"));
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(
            token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
