fn main() {
    std::process::exit(relu::cli::main());
}
