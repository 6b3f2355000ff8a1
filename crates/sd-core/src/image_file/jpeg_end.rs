//! Whether a JPEG stream is whole: its markers walked from SOI to EOI.
//!
//! The `image` crate runs zune-jpeg in its lenient mode, which fills the rows a cut file lacks
//! with grey and reports success; Pillow raises `OSError: image file is truncated` instead (its
//! `ImageFile.LOAD_TRUNCATED_IMAGES` is off by default, and A1111 leaves it off). A cut file is
//! recognised here without decoding: the header segments are skipped by their lengths, the
//! entropy-coded data is scanned for the next marker (inside it a `0xFF` byte is always
//! followed by `0x00` stuffing, a restart marker `0xD0..=0xD7` or fill `0xFF`), and the stream
//! is whole when an EOI marker (`FF D9`) is reached. Bytes after EOI (cameras append some) are
//! ignored, as libjpeg ignores them.

use std::io::{self, BufRead};

/// Start of image.
const SOI: u8 = 0xD8;
/// End of image.
const EOI: u8 = 0xD9;
/// Start of scan: entropy-coded data follows its header.
const SOS: u8 = 0xDA;

/// Reads `r` from the start of a JPEG stream; `Ok(true)` when it starts with SOI and ends
/// before an EOI marker. Data that does not start with SOI is no JPEG: not judged here (the
/// decoder refuses it).
///
/// # Errors
/// What reading `r` returns.
pub(super) fn is_cut_short<R: BufRead>(r: &mut R) -> io::Result<bool> {
    if next(r)? != Some(0xFF) || next(r)? != Some(SOI) {
        return Ok(false);
    }
    Ok(!reaches_eoi(r)?)
}

/// After SOI: whether the markers lead to EOI before the data ends.
fn reaches_eoi<R: BufRead>(r: &mut R) -> io::Result<bool> {
    let mut marker = next_marker(r)?;
    loop {
        let Some(code) = marker else {
            return Ok(false);
        };
        match code {
            EOI => return Ok(true),
            // Standalone markers carry no length: restart markers and TEM.
            0xD0..=0xD7 | 0x01 => marker = next_marker(r)?,
            _ => {
                let (Some(hi), Some(lo)) = (next(r)?, next(r)?) else {
                    return Ok(false);
                };
                let length = u64::from(u16::from_be_bytes([hi, lo]));
                let body = length.saturating_sub(2);
                if io::copy(&mut io::Read::take(&mut *r, body), &mut io::sink())? < body {
                    return Ok(false);
                }
                marker = if code == SOS {
                    scan_entropy_data(r)?
                } else {
                    next_marker(r)?
                };
            }
        }
    }
}

/// One byte, `None` at the end.
fn next<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    let byte = r.fill_buf()?.first().copied();
    if byte.is_some() {
        r.consume(1);
    }
    Ok(byte)
}

/// The code of the next marker between segments: skips to a `0xFF` (libjpeg skips
/// extraneous bytes the same way, with a warning), then over fill bytes.
fn next_marker<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    loop {
        match next(r)? {
            None => return Ok(None),
            Some(0xFF) => loop {
                match next(r)? {
                    Some(0xFF) => continue,
                    other => return Ok(other),
                }
            },
            Some(_) => continue,
        }
    }
}

/// Skips entropy-coded data; returns the code of the marker that ends it.
fn scan_entropy_data<R: BufRead>(r: &mut R) -> io::Result<Option<u8>> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(None);
        }
        match buf.iter().position(|&b| b == 0xFF) {
            None => {
                let n = buf.len();
                r.consume(n);
            }
            Some(i) => {
                r.consume(i + 1);
                // Fill bytes may repeat the 0xFF.
                let code = loop {
                    match next(r)? {
                        Some(0xFF) => continue,
                        other => break other,
                    }
                };
                match code {
                    None => return Ok(None),
                    // Byte stuffing and restart markers stay inside the scan.
                    Some(0x00 | 0xD0..=0xD7) => continue,
                    Some(code) => return Ok(Some(code)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> bool {
        !is_cut_short(&mut io::Cursor::new(bytes)).expect("in memory")
    }

    fn jpeg() -> Vec<u8> {
        let image = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&image)
            .expect("encode");
        out
    }

    #[test]
    fn a_whole_jpeg_reaches_eoi_and_every_cut_does_not() {
        let bytes = jpeg();
        assert!(whole(&bytes));
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"camera trailer \xFF\xD8");
        assert!(whole(&trailing), "bytes after EOI are ignored");
        // A cut inside the SOI marker is no JPEG at all: the decoder's to refuse.
        assert!(whole(&bytes[..1]));
        for cut in [2, 3, 20, bytes.len() / 2, bytes.len() - 2, bytes.len() - 1] {
            assert!(!whole(&bytes[..cut]), "cut at {cut} of {}", bytes.len());
        }
    }

    #[test]
    fn stuffing_and_restart_markers_do_not_end_the_scan() {
        // SOI, SOS with an empty header body, scan data with FF00 and FFD0, EOI.
        let bytes = [
            0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF,
            0xFF, 0xD9,
        ];
        assert!(whole(&bytes));
        assert!(!whole(&bytes[..bytes.len() - 1]));
        assert!(whole(b"not a jpeg"), "not judged: no SOI");
    }
}
