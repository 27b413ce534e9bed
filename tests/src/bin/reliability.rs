//! The reliability suite: runs each case against a freshly started server of each deployment (as a child
//! process) and prints its figures; exits non-zero when an acceptance point fails.
//!
//! cargo run --release -p classify-tests --bin reliability -- [--profile short|full] [--deployment native|edge]
//!     [--case NAME]… [--servers DIR]

use std::process::ExitCode;

use clap::Parser;
use classify_tests::reliability::cases::{CASES, Profile};
use classify_tests::reliability::{Deployment, build_servers, use_servers_in};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ProfileName {
    Short,
    Full,
}

#[derive(Parser)]
struct Options {
    /// short: a few seconds a case (CI); full: the figures for the README.
    #[arg(long, value_enum, default_value = "full")]
    profile: ProfileName,
    /// Deployments to attack (default: both).
    #[arg(long, value_enum)]
    deployment: Vec<Deployment>,
    /// Cases to run (default: all).
    #[arg(long)]
    case: Vec<String>,
    /// Seed of the fuzzed bodies.
    #[arg(long)]
    seed: Option<u64>,
    /// Attack the `classify-native` and `edge-host` in this directory (e.g. an older version) instead of building
    /// the suite's own.
    #[arg(long)]
    servers: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let mut profile = match options.profile {
        ProfileName::Short => Profile::SHORT,
        ProfileName::Full => Profile::FULL,
    };
    if let Some(seed) = options.seed {
        profile.seed = seed;
    }
    if let Some(unknown) = options
        .case
        .iter()
        .find(|c| CASES.iter().all(|(name, _)| name != c))
    {
        let names: Vec<&str> = CASES.iter().map(|(name, _)| *name).collect();
        eprintln!(
            "unknown case `{unknown}`; the cases are {}",
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    match options.servers {
        Some(dir) => use_servers_in(dir),
        None => {
            if let Err(e) = build_servers() {
                eprintln!("{e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let deployments = if options.deployment.is_empty() {
        vec![Deployment::Native, Deployment::Edge]
    } else {
        options.deployment
    };
    let mut failed = 0;
    for deployment in deployments {
        for (name, case) in CASES {
            if !options.case.is_empty() && !options.case.iter().any(|c| c == name) {
                continue;
            }
            let started = std::time::Instant::now();
            let verdict = match case(&runtime, deployment, &profile) {
                Ok(report) if report.failures.is_empty() => {
                    format!("ok    {}", report.figures)
                }
                Ok(report) => {
                    failed += 1;
                    format!("FAIL  {} — {}", report.failures.join("; "), report.figures)
                }
                Err(e) => {
                    failed += 1;
                    format!("FAIL  could not run: {e:#}")
                }
            };
            println!(
                "{:<7} {:<17} {:>5.1}s {verdict}",
                format!("{deployment:?}").to_lowercase(),
                name,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if failed > 0 {
        println!("{failed} case(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
