//! What each binary's `--help` must give an operator: every subcommand a
//! one-line description and an example (`after_help` starting `Example:`).
//! The binaries' tests call [`undocumented`] on their clap command.

/// `"<path>: no description"` / `"<path>: no example"` for every
/// subcommand (at any depth, `help` aside) that lacks one.
pub fn undocumented(command: &clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    walk(command, command.get_name(), &mut missing);
    missing
}

fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() {
            missing.push(format!("{path}: no description"));
        }
        let example = sub.get_after_help().map(|h| h.to_string());
        if !example.is_some_and(|h| h.starts_with("Example")) {
            missing.push(format!("{path}: no example"));
        }
        walk(sub, &path, missing);
    }
}

#[cfg(test)]
mod tests {
    use super::undocumented;

    #[test]
    fn names_every_subcommand_without_a_description_or_an_example() {
        let command = clap::Command::new("tool")
            .subcommand(
                clap::Command::new("good")
                    .about("Does a thing.")
                    .after_help("Example:\n  tool good"),
            )
            .subcommand(
                clap::Command::new("group")
                    .about("A group.")
                    .after_help("Example:\n  tool group bare")
                    .subcommand(clap::Command::new("bare")),
            );
        assert_eq!(
            undocumented(&command),
            [
                "tool group bare: no description",
                "tool group bare: no example"
            ]
        );
    }
}
