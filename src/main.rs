//! The `hpcmap` command; everything it does is in `hpcmap::cli`.

fn main() -> std::process::ExitCode {
    hpcmap::cli::main()
}
