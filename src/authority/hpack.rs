//! One header block: decode it with the client's HPACK context, fix `:authority`, re-encode it
//! with literal representations only (nothing is ever added to the server's dynamic table).

use fluke_hpack::Decoder;
use fluke_hpack::decoder::DecoderError;

/// Largest header block (input fragment, or re-encoded output) handled; larger ones are passed
/// through so that h2 rejects them itself.
pub(super) const MAX_BLOCK: usize = 64 * 1024;

/// The HPACK dynamic table limit the client may use: h2's (and so tonic's) default
/// `SETTINGS_HEADER_TABLE_SIZE`, which the server never changes.
const MAX_TABLE_SIZE: usize = 4096;

/// HPACK integers longer than this (prefix octet included) are rejected, as fluke-hpack does.
const MAX_INT_OCTETS: usize = 5;

/// What a non-authority-shaped `:authority` is replaced with.
const REPLACEMENT: &[u8] = b"localhost";

/// Why a header block could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub(super) enum BlockError {
    #[error("malformed HPACK block")]
    Malformed,
    #[error("HPACK decoding failed: {0:?}")]
    Decode(DecoderError),
    #[error("decoded header list exceeds {MAX_BLOCK} bytes")]
    TooLarge,
}

/// Follows the client's HPACK encoder context across the blocks of one connection.
pub(super) struct BlockCodec {
    decoder: Decoder<'static>,
    logged: bool,
}

impl BlockCodec {
    pub(super) fn new() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
        Self { decoder, logged: false }
    }

    /// Decodes `block` and appends its literal-only re-encoding to `out`; whether a `:authority`
    /// was replaced. After an error the decoder's table may have diverged from the client's, so
    /// the codec must not be used again.
    pub(super) fn rewrite(&mut self, block: &[u8], out: &mut Vec<u8>) -> Result<bool, BlockError> {
        check_structure(block)?;
        let start = out.len();
        let (mut too_large, mut replaced) = (false, None);
        let decoded = self.decoder.decode_with_cb(block, |name, value| {
            if too_large {
                return;
            }
            let value = match fixed_authority(&name, &value) {
                Some(fixed) => {
                    replaced.get_or_insert_with(|| String::from_utf8_lossy(&value).into_owned());
                    fixed
                }
                None => &value,
            };
            encode_literal(&name, value, out);
            too_large = out.len() - start > MAX_BLOCK;
        });
        decoded.map_err(BlockError::Decode)?;
        if too_large {
            return Err(BlockError::TooLarge);
        }
        let was_replaced = replaced.is_some();
        self.log_replacement(replaced);
        Ok(was_replaced)
    }

    fn log_replacement(&mut self, replaced: Option<String>) {
        if let Some(authority) = replaced.filter(|_| !self.logged) {
            self.logged = true;
            tracing::debug!(%authority, "replacing a non-authority :authority with localhost");
        }
    }
}

/// `Some(localhost)` when `name` is `:authority` and `value` is not authority-shaped.
fn fixed_authority(name: &[u8], value: &[u8]) -> Option<&'static [u8]> {
    (name == b":authority" && !is_authority_shaped(value)).then_some(REPLACEMENT)
}

/// Whether `value` is a `host[:port]` the `http` crate (and so h2) accepts: a registered name of
/// unreserved / sub-delim characters or a bracketed IPv6 literal, then an optional decimal port.
/// Deliberately stricter than `http` (no userinfo, no `%`): anything else becomes `localhost`.
pub fn is_authority_shaped(value: &[u8]) -> bool {
    let (host, port) = split_host_port(value);
    let host_ok = match host {
        [b'[', inner @ .., b']'] => is_ipv6_literal(inner),
        _ => is_reg_name(host),
    };
    host_ok && port.is_none_or(is_port)
}

fn split_host_port(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    let host_end = match value.first() {
        Some(b'[') => value.iter().position(|&b| b == b']').map_or(value.len(), |i| i + 1),
        _ => value.iter().position(|&b| b == b':').unwrap_or(value.len()),
    };
    let (host, rest) = value.split_at(host_end);
    match rest.split_first() {
        None => (host, None),
        Some((b':', port)) => (host, Some(port)),
        // Something other than `:port` follows `]`: make the host invalid.
        Some(_) => (value, None),
    }
}

fn is_reg_name(host: &[u8]) -> bool {
    !host.is_empty() && host.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b))
}

fn is_ipv6_literal(inner: &[u8]) -> bool {
    !inner.is_empty()
        && inner.iter().filter(|&&b| b == b':').count() <= 8
        && inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

fn is_port(port: &[u8]) -> bool {
    (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit)
}

/// "Literal Header Field without Indexing — New Name", strings not Huffman-coded.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    encode_string(name, out);
    encode_string(value, out);
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    encode_int(s.len(), 7, out);
    out.extend_from_slice(s);
}

/// An HPACK integer with a `prefix`-bit prefix, the other bits of the first octet zero.
pub(super) fn encode_int(mut value: usize, prefix: u8, out: &mut Vec<u8>) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Walks the block's representations without decoding them, so that fluke-hpack (which panics
/// on a malformed size update) only ever sees well-formed integers, and so that size updates
/// appear only at the start of the block (RFC 7541 §4.2) and within [`MAX_TABLE_SIZE`].
pub(super) fn check_structure(mut block: &[u8]) -> Result<(), BlockError> {
    let mut fields_seen = false;
    while let Some(&first) = block.first() {
        let used = if first & 0xe0 == 0x20 {
            check_size_update(block, fields_seen)?
        } else {
            fields_seen = true;
            field_len(block)?
        };
        block = &block[used..];
    }
    Ok(())
}

fn check_size_update(block: &[u8], fields_seen: bool) -> Result<usize, BlockError> {
    let (size, used) = decode_int(block, 5)?;
    if fields_seen || size > MAX_TABLE_SIZE {
        return Err(BlockError::Malformed);
    }
    Ok(used)
}

/// Encoded length of the header field representation at the start of `block`.
fn field_len(block: &[u8]) -> Result<usize, BlockError> {
    let first = block[0];
    if first & 0x80 != 0 {
        return Ok(decode_int(block, 7)?.1);
    }
    let prefix = if first & 0x40 != 0 { 6 } else { 4 };
    let (name_index, mut used) = decode_int(block, prefix)?;
    if name_index == 0 {
        used += string_len(&block[used..])?;
    }
    Ok(used + string_len(&block[used..])?)
}

fn string_len(buf: &[u8]) -> Result<usize, BlockError> {
    let (len, used) = decode_int(buf, 7)?;
    match used.checked_add(len) {
        Some(total) if total <= buf.len() => Ok(total),
        _ => Err(BlockError::Malformed),
    }
}

/// Decodes an HPACK integer: `(value, octets used)`.
pub(super) fn decode_int(buf: &[u8], prefix: u8) -> Result<(usize, usize), BlockError> {
    let max = (1usize << prefix) - 1;
    let first = usize::from(*buf.first().ok_or(BlockError::Malformed)?) & max;
    if first < max {
        return Ok((first, 1));
    }
    let mut value = first;
    for (i, &b) in buf.iter().enumerate().skip(1).take(MAX_INT_OCTETS - 1) {
        value += usize::from(b & 0x7f) << (7 * (i - 1));
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(BlockError::Malformed)
}
