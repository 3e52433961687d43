//! The benchmark on PostgreSQL, through `hookd_bench::run` as `hookd bench` calls it: a
//! very short run of `throughput` and `cluster` on the server named by
//! `HOOKD_TEST_POSTGRES_URL` (skipped with a note when that is unset, except under
//! `CI=true`, where it must run — the convention of hookd's other PostgreSQL tests).
//! No speed is asserted: only that the scenarios deliver and the schemas they made are
//! gone afterwards. Also: `cluster` on SQLite is skipped, with its reason.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookd_bench::{BenchOptions, DatabaseChoice, SCHEMA_PREFIX, Scenario, Status};
use tokio_postgres::NoTls;

const URL_VARIABLE: &str = "HOOKD_TEST_POSTGRES_URL";

/// The configured server, or `None` after saying the test is skipped (a panic under
/// `CI=true`, so CI cannot pass by skipping).
fn server_url(test: &str) -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {URL_VARIABLE} is not set; CI must run the PostgreSQL variants")
        }
        _ => {
            eprintln!("skipping {test}: {URL_VARIABLE} is not set");
            None
        }
    }
}

/// Those of `made` that still exist, found among the schemas named with the bench's prefix.
fn schemas_left(url: &str, made: &[String]) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
        let driver = tokio::spawn(connection);
        let pattern = format!("{}%", SCHEMA_PREFIX.replace('_', "\\_"));
        let rows = client
            .query(
                "SELECT schema_name::text FROM information_schema.schemata WHERE schema_name LIKE $1",
                &[&pattern],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        rows.iter()
            .map(|row| row.get::<_, String>(0))
            // Other benchmark runs on the same server may have schemas of their own.
            .filter(|name| made.contains(name))
            .collect()
    })
}

#[test]
fn postgres_throughput_and_cluster_deliver_and_drop_their_schemas() {
    let test = "postgres_throughput_and_cluster_deliver_and_drop_their_schemas";
    let Some(url) = server_url(test) else {
        return;
    };
    let options = BenchOptions {
        scenarios: vec![Scenario::Throughput, Scenario::Cluster],
        database: DatabaseChoice::parse(Some(&url)).unwrap(),
        duration: Duration::from_millis(300),
        connections: 8,
        backlog_size: 1000,
        ..BenchOptions::new("test")
    };
    let report = hookd_bench::run(&options, &mut |_| {}).unwrap();

    assert!(
        report.machine.database.starts_with("PostgreSQL "),
        "{}",
        report.machine.database
    );
    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["throughput", "cluster"]);
    for scenario in &report.scenarios {
        assert_eq!(scenario.status, Status::Ok, "{scenario:#?}");
    }

    let throughput = &report.scenarios[0];
    let delivered = throughput.value("total events delivered").unwrap();
    assert!(delivered > 0.0, "{throughput:#?}");
    assert_eq!(throughput.value("total events accepted"), Some(delivered));
    assert!(throughput.value("deliveries end to end").unwrap() > 0.0);
    assert!(throughput.value("hookd CPU per 1000 deliveries").unwrap() > 0.0);
    // PostgreSQL has no writer thread of hookd's own.
    assert!(
        throughput
            .metrics
            .iter()
            .all(|m| !m.name.starts_with("SQLite writer")),
        "{throughput:#?}"
    );

    let cluster = &report.scenarios[1];
    for phase in ["one node", "two nodes"] {
        let delivered = cluster
            .value(&format!("{phase}: total events delivered"))
            .unwrap();
        assert!(delivered > 0.0, "{cluster:#?}");
        let accepted = cluster
            .value(&format!("{phase}: total events accepted"))
            .unwrap();
        assert!(delivered >= accepted, "{cluster:#?}");
        assert!(
            cluster
                .value(&format!("{phase}: deliveries end to end"))
                .unwrap()
                > 0.0
        );
    }
    assert!(
        cluster
            .value("two nodes / one node (deliveries end to end)")
            .unwrap()
            > 0.0
    );

    // The idle hookd's, throughput's, and one per cluster phase.
    assert_eq!(
        report.database_schemas.len(),
        4,
        "{:?}",
        report.database_schemas
    );
    for schema in &report.database_schemas {
        assert!(schema.starts_with(SCHEMA_PREFIX), "{schema}");
    }
    let left = schemas_left(&url, &report.database_schemas);
    assert!(left.is_empty(), "schemas left behind: {left:?}");
}

#[test]
fn cluster_is_skipped_on_sqlite() {
    let options = BenchOptions {
        scenarios: vec![Scenario::Cluster],
        duration: Duration::from_millis(100),
        ..BenchOptions::new("test")
    };
    let report = hookd_bench::run(&options, &mut |_| {}).unwrap();
    assert!(
        report.machine.database.starts_with("SQLite"),
        "{}",
        report.machine.database
    );
    assert_eq!(report.scenarios.len(), 1);
    let cluster = &report.scenarios[0];
    assert_eq!(cluster.status, Status::Skipped);
    assert_eq!(
        cluster.problem.as_deref(),
        Some("needs PostgreSQL: one SQLite file has one server")
    );
    assert!(cluster.metrics.is_empty(), "{cluster:#?}");
    assert!(report.database_schemas.is_empty());
    assert!(report.to_table().contains("SKIPPED"));
}
