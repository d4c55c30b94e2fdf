//! The device's report (postcard) as the host reads it back from a board: arbitrary bytes
//! are a typed error or a report, never a panic; a report that decodes encodes within
//! the report's size bound and decodes again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tqc_shared::inspection::{REPORT_MAX_BYTES, Report};

fuzz_target!(|data: &[u8]| {
    let Ok(report) = Report::decode(data) else {
        return;
    };
    let mut buf = [0u8; REPORT_MAX_BYTES];
    let bytes = report.encode(&mut buf).expect("a decoded report fits REPORT_MAX_BYTES");
    assert_eq!(Report::decode(bytes).expect("re-encoded report decodes"), report);
});
