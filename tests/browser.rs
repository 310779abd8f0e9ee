//! The page in a real browser (headless Chromium over WebDriver), checked for structure and
//! data, not pixels:
//!
//! - the live page against `demo`: it loads without console errors or warnings, draws its
//!   charts, switches model (and the charts change), and shows a new window without a
//!   reload;
//! - the report of a `replay` of `examples/`: it opens from a `file://` URL, requests
//!   nothing beyond its own file, and shows every model.
//!
//! Ignored unless asked for: they need Debian's `chromium` and `chromium-driver`.
//! `.ci/run` installs both and runs them with `--ignored`. `FEEDBACK_LOOP_SCREENSHOT=path`
//! saves the live page as a PNG, `FEEDBACK_LOOP_SCREENSHOT_AFTER=<s>` that many seconds
//! later (docs/live-page.png: `FEEDBACK_LOOP_SCREENSHOT=$PWD/docs/live-page.png
//! FEEDBACK_LOOP_SCREENSHOT_AFTER=170 cargo test --test browser live -- --ignored`).

mod common;

use std::time::Duration;

use common::browser::Browser;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (Debian): cargo test --test browser -- --ignored (.ci/run does)"]
async fn the_live_page_shows_the_demo_and_updates_without_a_reload() {
    let port = common::free_port();
    let dir = std::env::temp_dir().join(common::kafka::unique("browser"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = common::binary_command();
    command.args([
        "demo",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--rate",
        "50",
    ]);
    let demo = common::Service::spawn(command, &dir.join("demo.log"));

    let browser = Browser::start().await;
    browser.goto(&format!("http://127.0.0.1:{port}/")).await;
    // The demo's windows are 10 s long: the first closes within ~20 s.
    browser
        .wait_for(
            "the live page shows a model's windows",
            "return document.body.dataset.mode === 'live' && document.body.dataset.state === 'ready' \
             && Number(document.body.dataset.windows) > 0 \
             && [...document.querySelectorAll('#quality-chart svg path.series-line')]\
                  .some(l => Number(l.dataset.values) > 0)",
            Duration::from_secs(60),
        )
        .await;

    // Charts are drawn: every version's quality line with a value has a non-empty path
    // (the first window may close before any outcome arrives: its value is null, its line
    // has no point yet), the volume chart has bars.
    let drawn = browser
        .eval(
            "const lines = [...document.querySelectorAll('#quality-chart svg path.series-line')]\
                .filter(l => Number(l.dataset.values) > 0);\
             return {lines: lines.length, empty: lines.filter(l => !(l.getAttribute('d') || '').trim()).length,\
                     bars: document.querySelectorAll('#counts-chart svg rect.count-bar').length,\
                     models: [...document.querySelectorAll('#model-select option')].map(o => o.value),\
                     model: document.body.dataset.model};",
            json!([]),
        )
        .await;
    assert!(
        drawn["lines"].as_u64() > Some(0),
        "no quality line: {drawn}"
    );
    assert_eq!(drawn["empty"], 0, "an empty line: {drawn}");
    assert!(drawn["bars"].as_u64() > Some(0), "no volume bars: {drawn}");
    let models: Vec<String> = serde_json::from_value(drawn["models"].clone()).unwrap();
    assert!(
        models.len() >= 2,
        "the demo has two models, the page lists {models:?}"
    );

    // Switching the model changes the charts.
    let before = browser
        .eval(
            "return document.getElementById('quality-chart').innerHTML",
            json!([]),
        )
        .await;
    let current = drawn["model"].as_str().unwrap_or_default().to_string();
    let other = models.iter().find(|m| **m != current).unwrap().clone();
    browser
        .eval(
            "const s = document.getElementById('model-select'); s.value = arguments[0];\
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([other]),
        )
        .await;
    browser
        .wait_for(
            "the page switched model",
            &format!(
                "return document.body.dataset.model === {other:?} && document.body.dataset.state === 'ready' \
                 && Number(document.body.dataset.windows) > 0"
            ),
            Duration::from_secs(20),
        )
        .await;
    let after = browser
        .eval(
            "return document.getElementById('quality-chart').innerHTML",
            json!([]),
        )
        .await;
    assert_ne!(
        before, after,
        "the quality chart did not change with the model"
    );

    // A new window appears without a reload (a reload would drop the marker).
    let last = browser
        .eval(
            "window.__noReload = true; return document.body.dataset.lastWindow",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "a new window arrives",
            &format!(
                "return window.__noReload === true && document.body.dataset.lastWindow > {last}"
            ),
            Duration::from_secs(45),
        )
        .await;

    if let Ok(path) = std::env::var("FEEDBACK_LOOP_SCREENSHOT") {
        // FEEDBACK_LOOP_SCREENSHOT_AFTER=<seconds> lets more windows (and the drift) come.
        let after = std::env::var("FEEDBACK_LOOP_SCREENSHOT_AFTER")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(after)).await;
        std::fs::write(&path, browser.screenshot().await).expect("writing the screenshot");
        eprintln!("screenshot written to {path}");
    }
    // The demo's one instance publishes its windows: the health panel says so, no banner.
    let health = browser
        .eval(
            "const p = document.querySelector('#dead-letters [data-publishes]');\
             return {publishes: p && p.dataset.publishes, banner: document.getElementById('banner').hidden};",
            json!([]),
        )
        .await;
    assert_eq!(health["publishes"], "true", "{health}");
    assert_eq!(health["banner"], true, "no banner: {health}");
    // An instance whose group has another publisher (its status says `publishes: false`,
    // tests/rolling_deploy.rs checks the service's side): a banner points to that one.
    browser
        .eval(
            "const real = window.fetch;\
             window.fetch = async (url, opts) => {\
               const res = await real(url, opts);\
               if (!String(url).includes('api/v1/status')) return res;\
               const body = await res.json(); body.publishes = false;\
               return new Response(JSON.stringify(body), {status: 200, headers: {'Content-Type': 'application/json'}});\
             };",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "a banner says another instance publishes",
            "const b = document.getElementById('banner');\
             return !b.hidden && b.dataset.kind === 'info' && b.textContent.includes('another instance')\
               && document.querySelector('#dead-letters [data-publishes=\"false\"]') !== null;",
            Duration::from_secs(30),
        )
        .await;
    let problems = browser.console_problems().await;
    assert!(problems.is_empty(), "console: {problems:#?}");
    browser.quit().await;
    drop(demo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromium-driver (Debian): cargo test --test browser -- --ignored (.ci/run does)"]
async fn the_replay_report_opens_offline_and_shows_every_model() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(common::kafka::unique("report"));
    std::fs::create_dir_all(&dir).unwrap();
    let report = match std::env::var("FEEDBACK_LOOP_REPORT") {
        // A report made elsewhere (e.g. of a large backtest), to time its opening.
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => {
            let report = dir.join("report.html");
            let output = common::binary_command()
                .current_dir(&root)
                .args([
                    "replay",
                    "--config",
                    "examples/feedback-loop.toml",
                    "--predictions",
                    "examples/predictions.jsonl",
                    "--outcomes",
                    "examples/outcomes.jsonl",
                    "--report",
                ])
                .arg(&report)
                .output()
                .expect("running replay");
            assert!(output.status.success(), "replay: {output:?}");
            report
        }
    };
    let url = format!("file://{}", report.display());

    let browser = Browser::start().await;
    let started = std::time::Instant::now();
    browser.goto(&url).await;
    browser
        .wait_for(
            "the report is drawn",
            "return document.body.dataset.mode === 'report' && document.body.dataset.state === 'ready' \
             && Number(document.body.dataset.windows) > 0",
            Duration::from_secs(30),
        )
        .await;
    eprintln!(
        "report {} ({} bytes) ready in {:?}",
        report.display(),
        std::fs::metadata(&report).map_or(0, |m| m.len()),
        started.elapsed()
    );

    let shown = browser
        .eval(
            "return {models: [...document.querySelectorAll('#model-select option')].map(o => o.value),\
                     lines: document.querySelectorAll('#quality-chart svg path.series-line').length};",
            json!([]),
        )
        .await;
    let models: Vec<String> = serde_json::from_value(shown["models"].clone()).unwrap();
    if std::env::var("FEEDBACK_LOOP_REPORT").is_err() {
        assert_eq!(models, vec!["fraud", "intent"], "the report's models");
    }
    assert!(
        shown["lines"].as_u64() > Some(0),
        "no quality line: {shown}"
    );
    // Every model can be shown.
    for model in &models {
        browser
            .eval(
                "const s = document.getElementById('model-select'); s.value = arguments[0];\
                 s.dispatchEvent(new Event('change', {bubbles: true}));",
                json!([model]),
            )
            .await;
        browser
            .wait_for(
                &format!("the report shows {model}"),
                &format!(
                    "return document.body.dataset.model === {model:?} && document.body.dataset.state === 'ready' \
                     && document.querySelectorAll('#quality-chart svg path.series-line').length > 0"
                ),
                Duration::from_secs(10),
            )
            .await;
    }

    let requests = browser.requested_urls().await;
    // `data:` URLs (the page's inline icons) are not requests to anywhere.
    let elsewhere: Vec<&String> = requests
        .iter()
        .filter(|u| **u != url && !u.starts_with("data:"))
        .collect();
    assert!(
        requests.contains(&url),
        "the network log missed the page itself: {requests:?}"
    );
    assert!(
        elsewhere.is_empty(),
        "the report requested more than its own file: {elsewhere:?}"
    );
    let problems = browser.console_problems().await;
    assert!(problems.is_empty(), "console: {problems:#?}");
    browser.quit().await;
}
