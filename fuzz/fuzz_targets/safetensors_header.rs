//! libFuzzer entry point for [`sd_fuzz::safetensors_header`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sd_fuzz::safetensors_header(data));
