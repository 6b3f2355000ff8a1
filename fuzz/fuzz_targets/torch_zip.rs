//! libFuzzer entry point for [`sd_fuzz::torch_zip`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::torch_zip(data));
