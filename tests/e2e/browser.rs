//! The web pages in a real browser: headless Chromium (installed by
//! `scripts/install-test-tools.sh` from Debian's packages) loads each page of a finished example
//! campaign, the DOM it built is checked for the expected content, and a screenshot of each
//! is saved under `target/test-artefacts/pages/` with a report of each page's weight and the
//! browser's time to load and render it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::serve::served_eve_mc;
use crate::support::{TempDir, root, text};

fn chromium() -> &'static str {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate).arg("--version").output().is_ok() {
            return candidate;
        }
    }
    panic!(
        "no Chromium on this machine: `bash scripts/install-test-tools.sh` installs it (apt package `chromium`)"
    );
}

/// Runs headless Chromium on `url` with `args`; returns what it printed and how long it took.
fn browse(profile: &Path, url: &str, args: &[&str]) -> (String, f64) {
    let start = Instant::now();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let took = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "chromium {args:?} {url}: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), took)
}

fn artefacts() -> PathBuf {
    let dir = root().join("target/test-artefacts/pages");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn chromium_renders_every_page_with_its_content() {
    let (_state, server) = served_eve_mc("browser");
    let profile = TempDir::new("browser-profile");
    let base = format!("http://{}", server.addr);
    let (_, _, css) = server.request("GET", "/assets/cascade.css");
    let (_, _, js) = server.request("GET", "/assets/live.js");
    // (file name, path, what the rendered DOM must hold)
    let pages: [(&str, &str, &[&str]); 6] = [
        ("campaigns", "/", &["eve/eve-mc", "Succeeded"]),
        (
            "campaign",
            "/campaigns/eve/eve-mc",
            &["<svg", "mc-detsim", "%.reco.root", "state-Completed"],
        ),
        (
            "stage",
            "/stages/eve/mc-reco",
            &["eve.mc-reco.1", "Why it is where it is", "needed"],
        ),
        (
            "submission",
            "/submissions/eve.mc-reco.1",
            &["Launch log", "History", "Located", ".reco.root"],
        ),
        (
            "catalog",
            "/catalog?q=file_name%20like%20%27%25.ana.root%27",
            &[
                "2 files",
                "href=\"/catalog/files/eve.mc-ana.1_0.ana.root\"",
                "Definitions",
            ],
        ),
        (
            "catalog-error",
            "/catalog?q=size%20%3E",
            &["query:1:7: error"],
        ),
    ];
    let dir = artefacts();
    let mut report = String::from("page                 html bytes  with css+js  load+render s\n");
    for (name, path, wanted) in pages {
        let url = format!("{base}{path}");
        let (dom, _) = browse(&profile, &url, &["--dump-dom"]);
        for w in wanted {
            assert!(
                dom.contains(w),
                "{name}: the rendered page has no {w:?}:\n{dom}"
            );
        }
        assert!(
            dom.contains("id=\"live\""),
            "{name}: the page's frame is there"
        );
        let shot = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        let (_, took) = browse(
            &profile,
            &url,
            &[&format!("--screenshot={}", shot.display())],
        );
        let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{name}: no screenshot: {e}"));
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
            "{name}: a real PNG ({} bytes)",
            png.len()
        );
        let (_, _, html) = server.request("GET", path);
        writeln!(
            report,
            "{name:<20} {:>10}  {:>11}  {took:>13.2}",
            html.len(),
            html.len() + css.len() + js.len()
        )
        .unwrap();
    }
    std::fs::write(dir.join("report.txt"), &report).unwrap();
    eprintln!("{report}(screenshots in {})", dir.display());
}
