fn main() {
    std::process::exit(tgstack::cli::main());
}
