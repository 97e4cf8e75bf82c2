//! `pg-hotswap plan` and `run --dry-run`: the plan printed (text or JSON), exit 3 when a run
//! would refuse; nothing is changed.

use super::flags::OutputFormat;
use super::run::RunArgs;
use crate::dryrun;
use crate::error::{Error, Kind, Result};
use crate::state::target::TargetSpec;

impl RunArgs {
    /// The target and the options of `plan` (and `run --dry-run`).
    pub fn into_plan_options(self) -> Result<(TargetSpec, dryrun::PlanOptions)> {
        let (observe, sample_rows, df_on_server) =
            (self.observe, self.sample_rows, self.df_on_server);
        let (target, run) = self.into_options()?;
        Ok((
            target,
            dryrun::PlanOptions {
                run,
                observe,
                sample_rows,
                df_on_server,
            },
        ))
    }
}

/// The command: the plan printed; exit 3 (a refusal, printed as the error) when a run would
/// refuse. Interruptible: the plan's transactions are rolled back.
pub(super) async fn command(args: RunArgs) -> Result<i32> {
    let output = args.output;
    let (spec, opts) = args.into_plan_options()?;
    let work = async {
        let target = spec.resolve("plan").await?;
        dryrun::plan(target, &opts).await
    };
    tokio::select! {
        r = work => {
            let report = r.map_err(|e| e.or_state("nothing was changed", "fix the cause and plan again"))?;
            match output {
                OutputFormat::Json => super::print_json(&report),
                OutputFormat::Text => crate::output::ui::out!("{}", dryrun::render_text(&report)),
            }
            match &report.refused {
                Some(why) => Err(Error::new(Kind::Refused, why.clone()).with_state("nothing was changed")),
                None => Ok(report.exit_code),
            }
        }
        sig = super::shutdown_signal() => Err(
            Error::new(Kind::Interrupted, format!("interrupted by {sig}"))
                .with_state("nothing was changed: the plan's transactions were rolled back"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::commands::{Cli, Command};
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn plan_and_dry_run_take_the_run_options() {
        for args in [
            vec![
                "pg-hotswap",
                "plan",
                "--dsn",
                "host=h",
                "--table",
                "t",
                "--jobs",
                "2",
            ],
            vec![
                "pg-hotswap",
                "run",
                "--dry-run",
                "--dsn",
                "host=h",
                "--table",
                "t",
                "--jobs",
                "2",
            ],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let a = match cli.command {
                Command::Plan(a) => a,
                Command::Run(a) => {
                    assert!(a.dry_run);
                    a
                }
                _ => panic!("not plan"),
            };
            let (_, o) = a.into_plan_options().unwrap();
            assert_eq!(o.run.jobs, 2);
            assert_eq!(o.observe, Duration::from_secs(2));
        }
        let cli = Cli::try_parse_from([
            "pg-hotswap",
            "plan",
            "--dsn",
            "host=h",
            "--table",
            "t",
            "--observe",
            "500ms",
            "--sample-rows",
            "1000",
        ])
        .unwrap();
        let Command::Plan(a) = cli.command else {
            panic!()
        };
        let (_, o) = a.into_plan_options().unwrap();
        assert_eq!(o.observe, Duration::from_millis(500));
        assert_eq!(o.sample_rows, Some(1000));
    }
}
