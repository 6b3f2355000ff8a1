//! libFuzzer entry point for [`sd_fuzz::embedding_png_pixels`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::embedding_png_pixels(data));
