//! What a run found: one [`Report`] with the machine's facts and, per scenario, named
//! figures with units; printed as a table or as one JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use crate::system::MachineFacts;

/// The whole result of `hookd bench`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: MachineFacts,
    /// Seconds each timed phase published for.
    pub duration_s: f64,
    pub connections: usize,
    pub backlog_size: u64,
    /// Resident memory of the whole process before any hookd started, in MB.
    pub rss_before_hookd_mb: Option<f64>,
    /// Resident memory of the whole process with one hookd started and idle, in MB.
    pub rss_idle_mb: Option<f64>,
    /// The `ceiling` scenario's requests/s, which `vs_ceiling` ratios divide by.
    pub ceiling_per_s: Option<f64>,
    /// PostgreSQL: every schema this run created (`hookd_bench_…`), each dropped when its
    /// scenario was over unless a note says otherwise. Empty on SQLite.
    pub database_schemas: Vec<String>,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything measured as planned.
    Ok,
    /// Figures exist but something was not reached in time (e.g. not all delivered).
    Incomplete,
    /// The scenario could not run to the end; figures may be missing.
    Failed,
    /// The scenario does not apply here (`problem` says why); nothing was measured.
    Skipped,
}

/// One scenario's figures.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    pub status: Status,
    /// Why the status is not `ok`.
    pub problem: Option<String>,
    /// Wall-clock time the scenario took, set-up and shut-down included.
    pub seconds: f64,
    pub metrics: Vec<Metric>,
    pub notes: Vec<String>,
}

/// One figure.
#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// `value` divided by the ceiling's requests/s, for rates.
    pub vs_ceiling: Option<f64>,
    #[serde(skip)]
    pub(crate) is_rate: bool,
}

impl ScenarioReport {
    pub(crate) fn new(name: &str) -> ScenarioReport {
        ScenarioReport {
            name: name.to_owned(),
            status: Status::Ok,
            problem: None,
            seconds: 0.0,
            metrics: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A figure to show as it is.
    pub(crate) fn metric(&mut self, name: impl Into<String>, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit: unit.to_owned(),
            vs_ceiling: None,
            is_rate: false,
        });
    }

    /// A per-second rate, also shown as a ratio to the ceiling.
    pub(crate) fn rate(&mut self, name: impl Into<String>, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.into(),
            value,
            unit: unit.to_owned(),
            vs_ceiling: None,
            is_rate: true,
        });
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Marks the scenario incomplete (unless it already failed); the first reason stays.
    pub(crate) fn incomplete(&mut self, reason: impl Into<String>) {
        if self.status == Status::Ok {
            self.status = Status::Incomplete;
            self.problem = Some(reason.into());
        } else {
            self.notes.push(reason.into());
        }
    }

    /// Marks the scenario as not applicable here.
    pub(crate) fn skip(&mut self, reason: impl Into<String>) {
        self.status = Status::Skipped;
        self.problem = Some(reason.into());
    }

    pub(crate) fn fail(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if let Some(earlier) = self.problem.take() {
            self.notes.push(earlier);
        }
        self.status = Status::Failed;
        self.problem = Some(reason);
    }

    /// A figure by name, for tests and for other scenarios.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

impl Report {
    /// Fills every rate's ratio to the ceiling, if the ceiling was measured.
    pub(crate) fn compare_to_ceiling(&mut self) {
        self.ceiling_per_s = self
            .scenarios
            .iter()
            .find(|s| s.name == "ceiling")
            .and_then(|s| s.value(crate::scenarios::CEILING_METRIC))
            .filter(|rate| *rate > 0.0);
        let Some(ceiling) = self.ceiling_per_s else {
            return;
        };
        for metric in self.scenarios.iter_mut().flat_map(|s| s.metrics.iter_mut()) {
            if metric.is_rate {
                metric.vs_ceiling = Some(metric.value / ceiling);
            }
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable table, with the machine's facts above and notes below.
    pub fn to_table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "hookd bench: hookd {}, {} build, {} cores ({}){}{}",
            m.hookd_version,
            m.build_profile,
            m.cores,
            m.cpu_model,
            m.memory_total_mb
                .map(|mb| format!(", {:.1} GiB", mb as f64 / 1024.0))
                .unwrap_or_default(),
            m.kernel
                .as_deref()
                .map(|k| format!(", Linux {k}"))
                .unwrap_or_default(),
        );
        let _ = writeln!(out, "database: {}", m.database);
        let _ = writeln!(
            out,
            "timed phases {:?}, {} connections, backlog {}; load generator, receiver and hookd share this machine",
            std::time::Duration::from_secs_f64(self.duration_s.max(0.0)),
            self.connections,
            self.backlog_size
        );
        if let (Some(before), Some(idle)) = (self.rss_before_hookd_mb, self.rss_idle_mb) {
            let _ = writeln!(
                out,
                "RSS (whole process): {before:.1} MB before hookd started, {idle:.1} MB with hookd idle"
            );
        }
        let _ = writeln!(out);

        let header = ["scenario", "metric", "value", "unit", "vs ceiling"];
        let mut rows: Vec<[String; 5]> = Vec::new();
        for scenario in &self.scenarios {
            if scenario.status != Status::Ok {
                rows.push([
                    scenario.name.clone(),
                    format!("{:?}", scenario.status).to_uppercase(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
            for metric in &scenario.metrics {
                rows.push([
                    scenario.name.clone(),
                    metric.name.clone(),
                    format_value(metric.value, metric.unit.is_empty()),
                    metric.unit.clone(),
                    metric
                        .vs_ceiling
                        .map(|r| format!("{:.1} %", r * 100.0))
                        .unwrap_or_default(),
                ]);
            }
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 5]| {
            format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {:>w4$}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
                w4 = widths[4],
            )
            .trim_end()
            .to_owned()
        };
        let _ = writeln!(out, "{}", line(header));
        let mut previous = "";
        for row in &rows {
            if !previous.is_empty() && previous != row[0] {
                let _ = writeln!(out);
            }
            previous = &row[0];
            let _ = writeln!(
                out,
                "{}",
                line([&row[0], &row[1], &row[2], &row[3], &row[4]])
            );
        }

        let mut notes = Vec::new();
        for scenario in &self.scenarios {
            if let Some(problem) = &scenario.problem {
                notes.push(format!("{}: {problem}", scenario.name));
            }
            for note in &scenario.notes {
                notes.push(format!("{}: {note}", scenario.name));
            }
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "\nnotes:");
            for note in notes {
                let _ = writeln!(out, "  - {note}");
            }
        }
        out
    }
}

/// Large numbers with thousands separators, small ones with a few significant digits;
/// counts as whole numbers.
fn format_value(value: f64, is_count: bool) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let magnitude = value.abs();
    if magnitude >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(' ');
            }
            grouped.push(c);
        }
        if rounded < 0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if magnitude >= 100.0 || is_count {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str) -> ScenarioReport {
        ScenarioReport::new(name)
    }

    #[test]
    fn skipped_scenarios_show_why() {
        let mut skipped = scenario("cluster");
        skipped.skip("needs PostgreSQL: one SQLite file has one server");
        let mut measured = scenario("throughput");
        measured.rate("deliveries end to end", 1234.0, "del/s");
        let report = Report {
            machine: MachineFacts {
                cores: 2,
                cpu_model: "test".to_owned(),
                memory_total_mb: None,
                kernel: None,
                build_profile: "debug",
                hookd_version: "0".to_owned(),
                database: "SQLite".to_owned(),
            },
            duration_s: 1.0,
            connections: 1,
            backlog_size: 1,
            rss_before_hookd_mb: None,
            rss_idle_mb: None,
            ceiling_per_s: None,
            database_schemas: Vec::new(),
            scenarios: vec![measured, skipped],
        };
        let table = report.to_table();
        assert!(table.contains("cluster     SKIPPED"), "{table}");
        assert!(
            table.contains("cluster: needs PostgreSQL: one SQLite file has one server"),
            "{table}"
        );
        assert!(report.to_json().contains(r#""status": "skipped""#));
    }

    #[test]
    fn values_read_well() {
        assert_eq!(format_value(1_234_567.4, false), "1 234 567");
        assert_eq!(format_value(512.6, false), "513");
        assert_eq!(format_value(12.34, false), "12.3");
        assert_eq!(format_value(2.346, false), "2.35");
        assert_eq!(format_value(0.01234, false), "0.012");
        assert_eq!(format_value(1.0, false), "1.00");
        assert_eq!(format_value(40.0, true), "40");
    }
}
