//! The command center (`mizugiwa command`): sync hub for every site, the live web map, the
//! alert workflow, node health, the Cursor-on-Target gateway to TAK and the audit log.
//!
//! Not built yet: see issue 3.
