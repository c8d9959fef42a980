#![no_main]
//! See `csi_provider_aws_fuzz::attributes`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| csi_provider_aws_fuzz::attributes(data));
