//! PNG chunk CRCs, recomputed so a fuzzer's mutations reach the parsers behind the CRC check.

/// CRC-32 (PNG's, the zlib polynomial), bitwise: inputs are small.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// Rewrites the CRC of every complete chunk of a PNG so mutations reach the chunk parsers
/// behind the CRC check (a fuzzer cannot compute CRCs). Stops at the first chunk whose
/// length runs past the end.
pub(crate) fn fix_png_crcs(png: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= png.len()) else {
            return;
        };
        let crc = crc32(&[&png[at + 4..end]]);
        png[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}
