//! The `hms-host` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    hms_host::cli::main()
}
