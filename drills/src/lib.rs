//! BCP drills: run real `mizugiwa` processes, inject faults (partitions, flapping links, kill -9,
//! clock skew, disk full), check the invariants and write a report.
//!
//! Not built yet: see issue 8. Drives the binaries from outside; imports no other crate.
