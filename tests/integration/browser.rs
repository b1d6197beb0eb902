//! A real browser for the dashboard tests: headless Chromium driven over WebDriver
//! (`chromedriver`, through the `fantoccini` client), with a fresh profile per browser and no
//! network beyond the local test server.
//!
//! The tests need Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them).
//! A missing browser fails the test with the command that installs it; it never skips.
//! `CHROMEDRIVER` and `CHROME_BIN` override where they are looked for.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

/// How long to wait for an element or a navigation.
const PATIENCE: Duration = Duration::from_secs(15);

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn find_program(env: &str, names: &[&str], what: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    on_path(names).unwrap_or_else(|| {
        panic!(
            "the dashboard's browser tests need {what} ({}), which is not installed.\n\
             Install Chromium and its WebDriver: `apt-get install -y chromium chromium-driver` \
             (`.ci/run` does this), or point {env} at the program.",
            names.join(" or ")
        )
    })
}

/// Where test artifacts (screenshots) go: `<target>/test-artifacts/dashboard/`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("test-artifacts").join("dashboard");
    std::fs::create_dir_all(&dir).expect("creating the test artifacts directory");
    dir
}

/// A headless Chromium session; chromedriver is killed on drop.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    profile: TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Browser {
        let driver_bin = find_program("CHROMEDRIVER", &["chromedriver"], "chromedriver");
        let chrome_bin = find_program(
            "CHROME_BIN",
            &["chromium", "chromium-browser", "google-chrome"],
            "Chromium",
        );
        let profile = tempfile::Builder::new()
            .prefix("tailor-chromium-")
            .tempdir()
            .expect("browser profile directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))
            .expect("chromedriver log file");
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver_bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-extensions",
                    "--disable-default-apps",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
            },
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    // chromedriver is still starting.
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "could not start headless Chromium through {}: {e}\n{}",
                    driver_bin.display(),
                    std::fs::read_to_string(profile.path().join("chromedriver.log"))
                        .unwrap_or_default()
                ),
            }
        };
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current URL")
            .to_string()
    }

    /// The element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(e) => return e,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!(
                    "no element `{css}` on {} within {PATIENCE:?}: {e}\n{}",
                    self.url().await,
                    self.client.source().await.unwrap_or_default()
                ),
            }
        }
    }

    /// Every element matching `css` (none is fine).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("finding elements")
    }

    /// The rendered text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
    }

    /// Waits until the URL contains `part`.
    pub async fn wait_for_url(&self, part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the browser did not reach a URL containing `{part}`; it is at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Resizes the window to `width` and the page's full height, then saves a PNG screenshot
    /// of the whole page as `<artifacts>/<name>.png`; returns the path.
    pub async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        self.client
            .set_window_size(width, 900)
            .await
            .expect("resizing the window");
        let height = self
            .client
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight)",
                vec![],
            )
            .await
            .expect("page height")
            .as_u64()
            .unwrap_or(900)
            .clamp(400, 12_000);
        // The window may be taller than its viewport: grow it until the page fits.
        let mut window = height as u32;
        for _ in 0..3 {
            self.client
                .set_window_size(width, window)
                .await
                .expect("resizing the window");
            let inner = self
                .client
                .execute("return window.innerHeight", vec![])
                .await
                .expect("viewport height")
                .as_u64()
                .unwrap_or(height);
            if inner >= height {
                break;
            }
            window += (height - inner) as u32;
        }
        let png = self.client.screenshot().await.expect("screenshot");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("writing the screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// The viewport's width in CSS pixels.
    pub async fn viewport_width(&self) -> u64 {
        self.client
            .execute("return window.innerWidth", vec![])
            .await
            .expect("viewport width")
            .as_u64()
            .unwrap_or(0)
    }

    /// Ends the browser session (chromedriver closes Chromium), then stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills the Chromium processes that use `profile` (started for this browser by chromedriver,
/// which does not take them down when it is killed itself, e.g. after a failed assertion).
fn kill_browser_processes(profile: &Path) {
    let marker = format!("--user-data-dir={}", profile.join("profile").display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let matches = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == marker.as_bytes());
        if matches {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_browser_processes(self.profile.path());
    }
}
