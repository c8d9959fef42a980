#![no_main]
//! See `csi_provider_aws_fuzz::targets::attributes`.

libfuzzer_sys::fuzz_target!(
    init: csi_provider_aws_fuzz::signals::report_stack_overflows(),
    |data: &[u8]| csi_provider_aws_fuzz::attributes(data)
);
