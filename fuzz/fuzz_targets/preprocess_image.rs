//! libFuzzer entry point for [`sd_fuzz::preprocess_image`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::preprocess_image(data));
