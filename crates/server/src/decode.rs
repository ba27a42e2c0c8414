//! Request bodies with `Content-Encoding`: decoded with a cap on the decoded size, so a small
//! compressed bomb cannot exhaust memory.

use crate::error::GatewayError;
use bytes::Bytes;
use http::HeaderMap;
use std::io::Read;

/// Decodes `body` according to its `Content-Encoding` (gzip, deflate, br, zstd; a list is
/// undone last to first). Bodies without an encoding are returned as they are.
pub fn decode_body(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Bytes, GatewayError> {
    let Some(enc) = headers.get(http::header::CONTENT_ENCODING) else {
        return Ok(body);
    };
    let enc = enc
        .to_str()
        .map_err(|_| GatewayError::invalid("content-encoding header is not valid text"))?;
    let mut data = body;
    for coding in enc.rsplit(',').map(|c| c.trim().to_ascii_lowercase()) {
        data = match coding.as_str() {
            "" | "identity" => data,
            "gzip" | "x-gzip" => {
                read_capped(flate2::read::GzDecoder::new(&data[..]), max, &coding)?
            }
            "deflate" => {
                // HTTP "deflate" is zlib-wrapped, but raw deflate is common in the wild.
                match read_capped(flate2::read::ZlibDecoder::new(&data[..]), max, &coding) {
                    Ok(d) => d,
                    Err(e) if e.status == http::StatusCode::PAYLOAD_TOO_LARGE => return Err(e),
                    Err(_) => {
                        read_capped(flate2::read::DeflateDecoder::new(&data[..]), max, &coding)?
                    }
                }
            }
            "br" => read_capped(
                brotli_decompressor::Decompressor::new(&data[..], 8192),
                max,
                &coding,
            )?,
            "zstd" => {
                let dec = ruzstd::decoding::StreamingDecoder::new(&data[..]).map_err(|e| {
                    GatewayError::invalid(format!("request body is not valid zstd: {e}"))
                })?;
                read_capped(dec, max, &coding)?
            }
            other => {
                return Err(GatewayError::new(
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    crate::error::ErrorKind::InvalidRequest,
                    format!("unsupported content-encoding '{other}' (gzip, deflate, br, zstd)"),
                ));
            }
        };
    }
    Ok(data)
}

fn read_capped(r: impl Read, max: usize, coding: &str) -> Result<Bytes, GatewayError> {
    let mut out = Vec::new();
    let n = r
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GatewayError::invalid(format!("request body is not valid {coding}: {e}")))?;
    if n > max {
        return Err(GatewayError::too_large(format!(
            "decoded request body exceeds the gateway limit of {max} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("in memory");
        Bytes::from(e.finish().expect("in memory"))
    }

    fn with(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_ENCODING, enc.parse().expect("valid"));
        h
    }

    #[test]
    fn gzip_is_decoded_and_bombs_are_refused() {
        let body = decode_body(&with("gzip"), gz(b"{\"a\":1}"), 100).expect("decodes");
        assert_eq!(&body[..], b"{\"a\":1}");
        let bomb = gz(&vec![b'a'; 10_000]);
        let err = decode_body(&with("gzip"), bomb, 1000).expect_err("too big");
        assert_eq!(err.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        let bad = decode_body(&with("gzip"), Bytes::from_static(b"nope"), 100).expect_err("bad");
        assert_eq!(bad.status, http::StatusCode::BAD_REQUEST);
        let unknown = decode_body(&with("lzma"), Bytes::new(), 100).expect_err("unknown");
        assert_eq!(unknown.status, http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
