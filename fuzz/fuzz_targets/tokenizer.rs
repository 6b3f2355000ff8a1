//! libFuzzer entry point for [`sd_fuzz::tokenizer`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::tokenizer(data));
