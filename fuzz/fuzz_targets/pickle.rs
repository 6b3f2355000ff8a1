//! libFuzzer entry point for [`sd_fuzz::pickle`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::pickle(data));
