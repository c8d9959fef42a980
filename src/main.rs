//! `csi-provider-aws`: flags → logging → run → exit code. The work lives in the library.

use clap::Parser;
use csi_provider_aws::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = Cli::parse().into_command();
    if let Err(e) = csi_provider_aws::telemetry::init(command.log()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(csi_provider_aws::WORKER_STACK_BYTES)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serving = matches!(command, Command::Serve(_));
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        // Once: as a log line when serving (log collectors read those), else on stderr.
        Err(e) if serving => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => csi_provider_aws::app::serve(*args).await?,
        Command::Mount(args) => csi_provider_aws::client::mount_command(args).await?,
        Command::Doctor(args) => return Ok(doctor(&args).await),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the table; 0 when every check passed, 1 when any failed.
async fn doctor(args: &csi_provider_aws::doctor::DoctorArgs) -> ExitCode {
    let report = csi_provider_aws::doctor::run(args, |k| std::env::var(k).ok()).await;
    print!("{}", report.render());
    ExitCode::from(report.exit_code())
}
