//! libFuzzer entry point for [`sd_fuzz::infotext`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::infotext(data));
