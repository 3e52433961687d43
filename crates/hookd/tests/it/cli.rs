//! The command line itself: client creation output and start-up errors.

use std::process::Command;

use hookd_testkit::postgres::TestSchema;
use hookd_testkit::{Backend, backend_tests};
use tempfile::TempDir;

use crate::bin;

backend_tests!(
    clients_create_prints_json_once,
    bad_settings_stop_start_up_with_one_line,
    a_config_file_carries_the_same_settings,
);

/// A fresh, empty database of a backend.
enum Database {
    Sqlite(TempDir),
    Postgres(TestSchema),
}

impl Database {
    async fn new(backend: Backend) -> Database {
        match backend {
            Backend::Sqlite => Database::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Database::Postgres(TestSchema::create().await),
        }
    }

    fn url(&self) -> String {
        match self {
            Database::Sqlite(dir) => format!("sqlite://{}", dir.path().join("h.db").display()),
            Database::Postgres(schema) => schema.url().to_owned(),
        }
    }

    /// Everything the database holds, as the raw bytes of each place it keeps them.
    async fn stored(&self) -> Vec<Vec<u8>> {
        match self {
            Database::Sqlite(dir) => vec![
                std::fs::read(dir.path().join("h.db")).unwrap(),
                std::fs::read(dir.path().join("h.db-wal")).unwrap_or_default(),
            ],
            Database::Postgres(schema) => vec![schema.all_rows_as_text().await.into_bytes()],
        }
    }
}

async fn clients_create_prints_json_once(backend: Backend) {
    let db = Database::new(backend).await;
    let database = db.url();
    let output = Command::new(bin())
        .args([
            "clients",
            "create",
            "--name",
            "acme",
            "--json",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let object = printed.as_object().unwrap();
    assert_eq!(object.len(), 2, "{printed}");
    assert!(printed["client_id"].as_str().unwrap().starts_with("cl_"));
    let secret = printed["client_secret"].as_str().unwrap();
    // 256 random bits, base64url without padding, after the prefix.
    assert_eq!(secret.strip_prefix("hks_").unwrap().len(), 43);
    // The database keeps only a digest of the secret.
    let stored = db.stored().await;
    assert!(stored.iter().any(|s| !s.is_empty()), "nothing was stored");
    let needle = secret.as_bytes();
    for file in &stored {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle),
            "secret stored in clear"
        );
    }
}

async fn bad_settings_stop_start_up_with_one_line(backend: Backend) {
    let db = Database::new(backend).await;
    let database = db.url();
    let cases: [&[&str]; 6] = [
        &["--database", &database, "--retry-schedule", "0s,soon"],
        &["--database", &database, "--attempt-timeout", "forever"],
        &["--database", &database, "--retention", "a while"],
        &["--database", &database, "--retention", "0s"],
        &["--database", &database, "--listen", "nowhere"],
        &["--database", "mysql://x"],
    ];
    for args in cases {
        let output = Command::new(bin())
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("hookd: "), "{stderr}");
    }
}

async fn a_config_file_carries_the_same_settings(backend: Backend) {
    let db = Database::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(&config, "retry_schedule = \"0s,nonsense\"\n").unwrap();
    let output = Command::new(bin())
        .args(["serve", "--config", config.to_str().unwrap(), "--database"])
        .arg(db.url())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("retry-schedule"));
    std::fs::write(&config, "unknown_setting = 1\n").unwrap();
    let output = Command::new(bin())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown_setting"));
}
