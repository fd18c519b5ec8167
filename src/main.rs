//! The `clickgate` binary.

fn main() -> std::process::ExitCode {
    clickgate::cli::main()
}
