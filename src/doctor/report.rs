//! `doctor`'s table: one row per check (result, check, target, detail, and a hint on failure),
//! and the exit code (0 all pass, 1 any fails).

use std::fmt::Write as _;

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pass,
    /// Passes, with something worth knowing (a public address while private endpoints are not
    /// required).
    Warn,
    Fail,
    /// Not attempted (an earlier step failed, or the step does not apply).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub name: String,
    pub target: String,
    pub status: Status,
    pub detail: String,
    /// What to do about a failure (or a warning).
    pub hint: Option<String>,
}

impl Check {
    pub fn new(status: Status, name: impl Into<String>, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Check { name: name.into(), target: target.into(), status, detail: detail.into(), hint: None }
    }

    pub fn pass(name: impl Into<String>, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Check::new(Status::Pass, name, target, detail)
    }

    pub fn skip(name: impl Into<String>, target: impl Into<String>, detail: impl Into<String>) -> Self {
        Check::new(Status::Skip, name, target, detail)
    }

    pub fn fail(
        name: impl Into<String>,
        target: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Check::new(Status::Fail, name, target, detail).with_hint(hint)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every check, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub(crate) checks: Vec<Check>,
}

impl Report {
    /// Adds one check.
    pub(crate) fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Adds checks.
    pub(crate) fn extend(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
    }

    /// How many checks failed.
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| c.status == Status::Fail).count()
    }

    /// 0 when every check passed (or was skipped), 1 when any failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.failed() > 0)
    }

    /// The table and a summary line.
    pub fn render(&self) -> String {
        let width =
            |f: fn(&Check) -> &str, min: usize| self.checks.iter().map(|c| f(c).len()).max().unwrap_or(0).max(min);
        let (name_w, target_w) = (width(|c| &c.name, 5), width(|c| &c.target, 6));
        let mut out = format!("{:<6}  {:<name_w$}  {:<target_w$}  DETAIL\n", "RESULT", "CHECK", "TARGET");
        for c in &self.checks {
            let hint = c.hint.as_ref().map(|h| format!(" | hint: {h}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<6}  {:<name_w$}  {:<target_w$}  {}{hint}",
                c.status.label(),
                c.name,
                c.target,
                c.detail
            );
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let _ = writeln!(
            out,
            "\n{} checks: {} passed, {} warned, {} failed, {} skipped",
            self.checks.len(),
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Skip)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_check_hints_on_failure_and_the_exit_code() {
        let mut report = Report::default();
        report.push(Check::pass("region", "us-west-2", "from --region"));
        assert_eq!(report.exit_code(), 0);
        report.push(Check::fail("dns", "sts.us-west-2.amazonaws.com", "203.0.113.10 (public)", "enable private DNS"));
        report.push(Check::skip("tcp", "sts.us-west-2.amazonaws.com", "not attempted"));
        assert_eq!(report.exit_code(), 1);
        let text = report.render();
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows[0].starts_with("RESULT"));
        assert!(rows[2].starts_with("FAIL") && rows[2].ends_with("| hint: enable private DNS"), "{text}");
        assert!(text.contains("3 checks: 1 passed, 0 warned, 1 failed, 1 skipped"), "{text}");
    }
}
