//! `mioperf`: parse the command line, set up logging, run, map the outcome
//! to the contract's exit codes (0 success, 1 refused, 2 usage/network/timeout).

use clap::Parser;
use mioperf::app::{self, Failure};
use mioperf::cli::{Cli, Command};
use mioperf::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(logging::level(cli.verbose, cli.quiet));
    app::output::set_quiet(cli.quiet > 0);
    let result = match &cli.command {
        Command::Serve(args) => app::serve(args),
        Command::Hello(args) => app::hello_client(args),
        Command::Lab(args) => app::lab_client(args),
        Command::Msg(args) => app::msg_client(args),
        Command::Get(args) => app::get_client(args),
        Command::Put(args) => app::put_client(args),
        Command::Stopwait(args) => app::stopwait_client(args),
        Command::Tftp(args) => app::tftp_client(args),
        Command::Window(args) => app::window_client(args),
        Command::Proxy(args) => app::proxy::run(args),
        Command::Bench(args) => mioperf::bench::run(args),
        Command::Tunstack(args) => app::tunstack_client(args),
        Command::Completions(args) => app::generate::completions(args.shell),
        Command::Man => app::generate::man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match &failure {
                // A refusal's answer was printed already, and an interrupted
                // run says nothing (as curl): say nothing more.
                Failure::Refused(_) | Failure::Signal(_) => {}
                Failure::Error(message) => eprintln!("mioperf: {message}"),
            }
            ExitCode::from(u8::try_from(failure.exit_code()).unwrap_or(2))
        }
    }
}
