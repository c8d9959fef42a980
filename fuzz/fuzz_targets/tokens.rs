#![no_main]
//! See `csi_provider_aws_fuzz::tokens`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| csi_provider_aws_fuzz::tokens(data));
