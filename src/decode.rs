//! `objectEncoding`: decoding a value's bytes before they are written (`base64` with the
//! standard alphabet and optional padding, `hex` in either case, `utf-8` checked). Errors say
//! what was wrong, never a byte of the value.

use crate::params::Encoding;
use crate::secret::SecretBytes;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The standard alphabet, accepting a value with or without its `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a value did not decode; never shows the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value is not valid {encoding} ({problem}) as objectEncoding says")]
pub struct DecodeError {
    pub encoding: &'static str,
    pub problem: &'static str,
}

/// `value` decoded as `encoding` says, or as it is when no encoding is set.
pub fn decode(value: &SecretBytes, encoding: Option<Encoding>) -> Result<SecretBytes, DecodeError> {
    let bytes = value.expose();
    match encoding {
        None => Ok(value.clone()),
        Some(Encoding::Base64) => BASE64.decode(bytes).map(SecretBytes::new).map_err(|e| DecodeError {
            encoding: "base64",
            problem: match e {
                base64::DecodeError::InvalidByte(..) => "a character outside the standard alphabet",
                base64::DecodeError::InvalidLength(_) => "a length no base64 text can have",
                base64::DecodeError::InvalidLastSymbol(..) => "stray bits in the last character",
                base64::DecodeError::InvalidPadding => "misplaced padding",
            },
        }),
        Some(Encoding::Hex) => hex(bytes).map(SecretBytes::new),
        Some(Encoding::Utf8) => match std::str::from_utf8(bytes) {
            Ok(_) => Ok(value.clone()),
            Err(_) => Err(DecodeError { encoding: "utf-8", problem: "an invalid byte sequence" }),
        },
    }
}

/// Hex digits in either case, two per byte.
fn hex(text: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let err = |problem| DecodeError { encoding: "hex", problem };
    if !text.len().is_multiple_of(2) {
        return Err(err("an odd number of digits"));
    }
    let digit =
        |b: u8| (b as char).to_digit(16).map(|d| d as u8).ok_or_else(|| err("a character that is not a hex digit"));
    text.chunks_exact(2).map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &[u8], encoding: Encoding) -> Result<Vec<u8>, DecodeError> {
        decode(&SecretBytes::new(text.to_vec()), Some(encoding)).map(|v| v.expose().to_vec())
    }

    #[test]
    fn base64_standard_alphabet_with_or_without_padding() {
        assert_eq!(run(b"aGk=", Encoding::Base64), Ok(b"hi".to_vec()));
        assert_eq!(run(b"aGk", Encoding::Base64), Ok(b"hi".to_vec()));
        assert_eq!(run(b"+/8=", Encoding::Base64), Ok(vec![0xfb, 0xff]));
        let url_safe = run(b"-_8=", Encoding::Base64).expect_err("url-safe alphabet");
        assert_eq!(url_safe.problem, "a character outside the standard alphabet");
        assert!(run(b"aGk=\n", Encoding::Base64).is_err(), "no whitespace");
    }

    #[test]
    fn hex_either_case() {
        assert_eq!(run(b"00fFaB", Encoding::Hex), Ok(vec![0, 0xff, 0xab]));
        assert_eq!(run(b"abc", Encoding::Hex).map_err(|e| e.problem), Err("an odd number of digits"));
        assert!(run(b"zz", Encoding::Hex).is_err());
        assert!(run("é1".as_bytes(), Encoding::Hex).is_err());
    }

    #[test]
    fn utf8_is_checked_and_kept() {
        assert_eq!(run("héllo".as_bytes(), Encoding::Utf8), Ok("héllo".as_bytes().to_vec()));
        let err = run(&[0x66, 0xff, 0x6f], Encoding::Utf8).expect_err("invalid");
        assert_eq!(err.to_string(), "the value is not valid utf-8 (an invalid byte sequence) as objectEncoding says");
    }

    #[test]
    fn no_encoding_keeps_the_bytes() {
        let raw = SecretBytes::new(vec![0xff, 0]);
        assert_eq!(decode(&raw, None).map(|v| v.expose().to_vec()), Ok(vec![0xff, 0]));
    }
}
