//! The dashboard's files, embedded at build time by `build.rs` from `web/assets.txt`.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The content type and bytes of the file served at `path`.
pub fn find(path: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(url, _, _)| *url == path)
        .map(|(_, ct, bytes)| (*ct, *bytes))
}
