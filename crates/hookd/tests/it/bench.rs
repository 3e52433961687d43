//! `hookd bench` runs end to end and reports figures; no speed is asserted, only that the
//! instrument works (a short run of three scenarios). SQLite only: it checks the
//! instrument, not a backend.

use std::process::Command;

use serde_json::Value;

use crate::bin;

#[test]
fn bench_reports_every_chosen_scenario_with_figures() {
    let output = Command::new(bin())
        .args([
            "bench",
            "--scenario",
            "ceiling,throughput",
            "--scenario",
            "retry-storm",
            "--duration",
            "1s",
            "--connections",
            "16",
            "--json",
        ])
        .env_remove("HOOKD_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(
        !report["machine"]["build_profile"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(report["rss_idle_mb"].as_f64().unwrap() > 0.0);

    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ceiling", "throughput", "retry-storm"]);
    for scenario in scenarios {
        assert_eq!(scenario["status"], "ok", "{scenario:#}");
        for metric in scenario["metrics"].as_array().unwrap() {
            let value = metric["value"].as_f64().unwrap();
            assert!(value.is_finite() && value >= 0.0, "{metric}");
        }
    }
    let value = |scenario: usize, name: &str| {
        scenarios[scenario]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["value"].as_f64())
            .unwrap_or_else(|| panic!("no `{name}` in {:#}", scenarios[scenario]))
    };
    assert!(value(0, "requests") > 0.0);
    assert!(value(1, "deliveries end to end") > 0.0);
    assert_eq!(
        value(1, "total events delivered"),
        value(1, "total events accepted")
    );
    assert!(value(1, "hookd CPU per 1000 deliveries") > 0.0);
    assert!(value(2, "total attempts") > value(2, "total events published"));
    assert!(value(2, "succeeded (receiver)") > 0.0);
    // Rates are also given relative to the ceiling measured in the same run.
    assert!(report["ceiling_per_s"].as_f64().unwrap() > 0.0);
    let throughput_ratio = scenarios[1]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "deliveries end to end")
        .and_then(|m| m["vs_ceiling"].as_f64());
    assert!(throughput_ratio.is_some_and(|r| r > 0.0));
    // Progress goes to stderr as scenarios finish.
    assert!(stderr.contains("retry-storm done"), "{stderr}");
}
