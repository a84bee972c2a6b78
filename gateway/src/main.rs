use clap::Parser;

fn main() -> std::process::ExitCode {
    tg_gateway::main_with(tg_gateway::cli::Cli::parse())
}
