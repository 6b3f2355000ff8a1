//! libFuzzer entry point for [`sd_fuzz::lr_schedule`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::lr_schedule(data));
