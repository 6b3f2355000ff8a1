//! A1111's generation parameters ("infotext"): everything of the [`sd_infotext`] crate
//! (parse, write, PNG text chunks), and [`write_png_rgb8`], which writes the PNG file through
//! [`crate::fs::write_atomic`].

use std::path::Path;

pub use sd_infotext::*;

/// [`encode_png_rgb8`] with the infotext in a `parameters` chunk, written to `path` through a
/// temporary file beside it and a rename, so a crash never leaves half a file.
///
/// # Errors
/// As [`encode_png_rgb8`], and [`InfotextError::Io`] naming the file.
pub fn write_png_rgb8(
    path: &Path,
    width: u32,
    height: u32,
    pixels: &[u8],
    infotext: &str,
) -> Result<()> {
    let bytes = encode_png_rgb8(width, height, pixels, &[(PARAMETERS_KEY, infotext)])?;
    crate::fs::write_atomic(path, &bytes).map_err(|e| InfotextError::Io {
        path: e.path,
        source: e.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_write_read_round_trip_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/image.png");
        let pixels: Vec<u8> = (0..8 * 5 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let text = "猫, \"quoted\"\nNegative prompt: dog\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 8x5";
        write_png_rgb8(&path, 8, 5, &pixels, text).expect("write");
        assert_eq!(
            read_png_parameters_file(&path).expect("read").as_deref(),
            Some(text)
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            names,
            [std::ffi::OsString::from("image.png")],
            "no temporary file left"
        );
    }
}
