//! Embeds the dashboard into the binary: every file listed in `web/assets.txt` (the page and
//! the npm packages it uses: MapLibre GL JS, topojson-client, the Natural Earth basemap from
//! world-atlas), so the daemons serve it without touching the network or the disk.

use std::fmt::Write as _;
use std::path::Path;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let list = root.join("assets.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", list.display()));
    let mut out = String::from("/// Embedded dashboard files: (URL path, content type, bytes).\npub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (url, file) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("{}: expected 'URL<TAB>FILE', got {line:?}", list.display()));
        let path = root.join(file.trim());
        if !path.is_file() {
            panic!(
                "dashboard asset {} is missing. The npm packages are installed by `make deps` \
                 (npm ci in command/web); run it, then build again.",
                path.display()
            );
        }
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({url:?}, {:?}, include_bytes!({:?})),",
            content_type(url),
            path.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(dest, out).unwrap();
}
