//! Newtypes for sensitive data: their `Debug` never shows the value and their memory is wiped
//! on drop.

use std::fmt;
use std::sync::Arc;
use zeroize::Zeroize;

/// Secret bytes (a secret value, a file's contents). `Debug` prints only the length. Clones
/// share one buffer (a cached value, the file rendered from it), wiped when the last one drops.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Arc<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Arc::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&str> for SecretBytes {
    fn from(text: &str) -> Self {
        Self::new(text.as_bytes().to_vec())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // Only the last clone can reach the buffer mutably; it wipes it.
        if let Some(bytes) = Arc::get_mut(&mut self.0) {
            bytes.zeroize();
        }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A secret string (a token, a session credential). `Debug` and `Display` redact it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(text: String) -> Self {
        Self(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for SecretString {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let bytes = SecretBytes::from("hunter2");
        let text = SecretString::new("eyJhbGciOi".to_string());
        assert_eq!(format!("{bytes:?}"), "SecretBytes(<7 bytes redacted>)");
        assert!(!format!("{text:?}").contains("eyJ"));
    }
}
