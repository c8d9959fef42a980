//! Error text for people: an error and its causes as `a: b: c`, each by its `Display`, never a
//! library type's `Debug` dump. Used wherever a library error (a transport, an SDK dispatch
//! failure) reaches a message, a log line or a `doctor` row.

use std::error::Error;

/// The errors in `err`'s chain, `err` first, looking inside `io::Error`s (which hide their
/// payload from `source()`).
pub(crate) fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => current.source(),
        };
        Some(current)
    })
}

/// `a: b: c` from `err` and its [`chain`], texts already contained in an earlier one left out.
pub fn causes(err: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for text in chain(err).map(|e| e.to_string()) {
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_joined_without_repeats() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        assert_eq!(causes(&Outer(inner)), "transport error: No such file or directory (os error 2)");
        let wrapped = std::io::Error::other(Outer(std::io::Error::other("refused")));
        assert_eq!(causes(&wrapped), "transport error: refused");
    }
}
