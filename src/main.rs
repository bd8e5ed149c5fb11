fn main() {
    std::process::exit(resticpilot::main());
}
